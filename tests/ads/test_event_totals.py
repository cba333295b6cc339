"""The counter rebuild from the event totals plus the tail of events decided after them gives
exactly what the scan of the whole table gives (SQLite and PostgreSQL alike), keys with zero
included, through a late event written behind the totals."""

from datetime import timedelta
from itertools import count

import pytest
from django.utils import timezone

from ads import services
from ads.delivery import keys
from ads.delivery.tokens import TrackingClaim, make_token
from ads.models import AdEvent, EventTotal, EventTotalMark
from ads.services.events import _summed_values
from ads.services.totals import sealed_before, totals_read
from tests.ads.conftest import line_item_with_creative

pytestmark = pytest.mark.django_db
PLAYER = "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) InterludePlayer/1.0"
_decisions = count(1)


def store(world, line_item, decided_at, *, types=("impression",), after=timedelta(minutes=1)):
    """One decision's events, reported `after` it, stored as ingestion stores them."""
    creative = line_item.creatives.first()
    claim = TrackingClaim(
        decision_id=f"00000000-0000-0000-0000-{next(_decisions):012d}",
        creative_id=creative.pk,
        line_item_id=line_item.pk,
        advertiser_id=line_item.campaign.advertiser_id,
        viewer_id=world.viewer.pk,
        title_id=world.title.pk,
        ad_break_id=world.ad_break.pk,
        position=1,
        device="ctv",
        region="us_west",
        price_micros=12_500 if line_item.pricing == "cpm" else 900_000,
        is_cpm=line_item.pricing == "cpm",
        issued_at=decided_at.replace(microsecond=0),
    )
    token = make_token(claim)
    at = claim.issued_at + after
    outcomes = services.events_record(
        events=[services.IncomingEvent(token, kind, "", at) for kind in types],
        user_agent=PLAYER,
        at=at,
    )
    assert [outcome.status for outcome in outcomes] == ["accepted"] * len(types)


def both_ways(since):
    """(totals + tail, scan) as plain dicts: a key set to zero counts."""
    return dict(_summed_values(since)), dict(_summed_values(since, scan=True))


def test_totals_and_tail_equal_the_scan_through_a_late_event(world):
    now = timezone.now()
    world.globex.timezone = "Pacific/Kiritimati"  # UTC+14: local days differ from UTC's
    world.globex.save()
    cpm = line_item_with_creative(world.acme, start_at=now - timedelta(days=5))
    cpc = line_item_with_creative(
        world.globex, pricing="cpc", start_at=now - timedelta(days=5), creatives=2
    )
    watched = line_item_with_creative(world.initech, start_at=now - timedelta(days=5))
    full = ("impression", "first_quartile", "complete", "click")
    # Decided before the sealed hour: summed into the totals. One click comes 3 h after its
    # decision (another local day for some), one decision has no cost at all (a CPC impression).
    for hours_ago in (75, 50, 30, 26, 7, 6):
        store(world, cpm, now - timedelta(hours=hours_ago), types=full)
        store(world, cpc, now - timedelta(hours=hours_ago), types=full)
    store(world, cpc, now - timedelta(hours=9), types=full, after=timedelta(hours=3))
    store(world, watched, now - timedelta(hours=8), types=("impression", "midpoint"))
    covered = services.event_totals_advance(at=now)
    assert covered == sealed_before(now) <= now - timedelta(hours=4, minutes=15)
    assert EventTotal.objects.count() == 4 + 4 + 2  # per creative and type
    # The tail: decided after the totals' end, stored after their run.
    for minutes_ago in (200, 30, 2):
        store(world, cpm, now - timedelta(minutes=minutes_ago), types=full)
        store(world, cpc, now - timedelta(minutes=minutes_ago), types=("impression", "click"))

    since = now - timedelta(days=2)
    assert totals_read(since=since) is not None  # the rebuild reads the totals, not the table
    from_totals, scanned = both_ways(since)
    assert from_totals == scanned
    spent_cpm = 12_500 * 9  # 6 sealed decisions and 3 in the tail, each one impression
    spent_cpc = 900_000 * (7 + 3)
    assert from_totals[(keys.spent_lifetime, cpm.pk)] == spent_cpm
    assert from_totals[(keys.spent_lifetime, cpc.pk)] == spent_cpc
    assert from_totals[(keys.spent_lifetime, watched.pk)] == 12_500

    # A loader of history writes an event decided 3 days ago: behind the totals, which it drops
    # (a live token never reaches so far back: it expires after TOKEN_TTL).
    store(world, cpm, now - timedelta(days=3, minutes=7), types=("impression", "click"))
    assert not EventTotalMark.objects.exists()
    assert totals_read(since=since) is None
    from_totals, scanned = both_ways(since)
    assert from_totals == scanned
    assert from_totals[(keys.spent_lifetime, cpm.pk)] == spent_cpm + 12_500
    # The next run sums the table again, the late event included.
    services.event_totals_advance(at=now)
    assert totals_read(since=since) is not None
    assert both_ways(since)[0] == scanned
    assert AdEvent.objects.count() == sum(EventTotal.objects.values_list("events", flat=True)) + (
        AdEvent.objects.filter(decided_at__gte=covered).count()
    )


def test_a_run_adds_only_the_newly_sealed_hours(world):
    now = timezone.now()
    line_item = line_item_with_creative(world.acme, start_at=now - timedelta(days=5))
    store(world, line_item, now - timedelta(hours=30))
    first = services.event_totals_advance(at=now)
    store(world, line_item, now - timedelta(hours=1))  # live: after the totals' end
    assert services.event_totals_advance(at=now) == first  # nothing newly sealed
    (total,) = EventTotal.objects.all()
    assert (total.events, total.cost_micros) == (1, 12_500)
    later = services.event_totals_advance(at=now + timedelta(hours=6))
    services.event_totals_advance(at=now + timedelta(hours=6))  # again: adds nothing
    assert later > first
    total.refresh_from_db()
    assert (total.events, total.cost_micros) == (2, 25_000)
