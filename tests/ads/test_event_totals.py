"""The counter rebuild from the event totals plus the tail of events stored after them gives
exactly what the scan of the whole table gives (SQLite and PostgreSQL alike), keys with zero
included, through late events and history written after the totals."""

from datetime import timedelta
from itertools import count

import pytest
from django.utils import timezone

from ads import services
from ads.delivery import keys
from ads.delivery.tokens import TrackingClaim, make_token
from ads.models import AdEvent, EventTotal
from ads.services.rebuild import _summed_values
from ads.services.totals import SEAL_MARGIN, totals_read
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


def summed_in_two_runs(now):
    """The beat task notes the events stored, and sums them on its run SEAL_MARGIN later."""
    assert services.event_totals_advance(at=now) is None  # noted, not summed yet
    return services.event_totals_advance(at=now + SEAL_MARGIN)


def test_totals_and_tail_equal_the_scan_through_late_events(world):
    now = timezone.now()
    world.globex.timezone = "Pacific/Kiritimati"  # UTC+14: local days differ from UTC's
    world.globex.save()
    cpm = line_item_with_creative(world.acme, start_at=now - timedelta(days=5))
    cpc = line_item_with_creative(
        world.globex, pricing="cpc", start_at=now - timedelta(days=5), creatives=2
    )
    watched = line_item_with_creative(world.initech, start_at=now - timedelta(days=5))
    full = ("impression", "first_quartile", "complete", "click")
    # Stored before the runs: summed into the totals. One click comes 3 h after its decision
    # (another local day for some), one decision has no cost at all (a CPC impression).
    for hours_ago in (75, 50, 30, 26, 7, 6):
        store(world, cpm, now - timedelta(hours=hours_ago), types=full)
        store(world, cpc, now - timedelta(hours=hours_ago), types=full)
    store(world, cpc, now - timedelta(hours=9), types=full, after=timedelta(hours=3))
    store(world, watched, now - timedelta(hours=8), types=("impression", "midpoint"))
    covered = summed_in_two_runs(now)
    assert covered == AdEvent.objects.order_by("-id").values_list("id", flat=True).first()
    assert EventTotal.objects.count() == 4 + 4 + 2  # per creative and type
    # The tail: stored after the runs, decided a while ago or just now.
    for minutes_ago in (200, 30, 2):
        store(world, cpm, now - timedelta(minutes=minutes_ago), types=full)
        store(world, cpc, now - timedelta(minutes=minutes_ago), types=("impression", "click"))

    since = now - timedelta(days=2)
    assert totals_read(since=since) is not None  # the rebuild reads the totals, not the table
    from_totals, scanned = both_ways(since)
    assert from_totals == scanned
    # Integers, as the counters take them (PostgreSQL's SUM of a bigint is a numeric, which
    # equals its int here but which Redis refuses to be sent).
    assert {type(value) for value in from_totals.values()} == {int}
    spent_cpm = 12_500 * 9  # 6 summed decisions and 3 in the tail, each one impression
    spent_cpc = 900_000 * (7 + 3)
    assert from_totals[(keys.spent_lifetime, cpm.pk)] == spent_cpm
    assert from_totals[(keys.spent_lifetime, cpc.pk)] == spent_cpc
    assert from_totals[(keys.spent_lifetime, watched.pk)] == 12_500

    # A loader of history writes an event decided 3 days ago, and one a day ago: they have
    # the latest ids, so they are in the tail until a run sums them.
    store(world, cpm, now - timedelta(days=3, minutes=7), types=("impression", "click"))
    store(world, cpc, now - timedelta(days=1), types=("impression", "click"))
    from_totals, scanned = both_ways(since)
    assert from_totals == scanned
    assert from_totals[(keys.spent_lifetime, cpm.pk)] == spent_cpm + 12_500
    assert from_totals[(keys.spent_lifetime, cpc.pk)] == spent_cpc + 900_000
    # The next runs sum the tail into the totals, each event once.
    later = now + 2 * SEAL_MARGIN
    assert services.event_totals_advance(at=later) == covered  # notes the tail
    assert services.event_totals_advance(at=later + SEAL_MARGIN) > covered
    assert not AdEvent.objects.filter(id__gt=services.event_totals_advance(at=later)).exists()
    assert both_ways(since)[0] == scanned
    assert AdEvent.objects.count() == sum(EventTotal.objects.values_list("events", flat=True))


def test_a_run_sums_only_what_an_earlier_run_noted_a_margin_before(world):
    now = timezone.now()
    line_item = line_item_with_creative(world.acme, start_at=now - timedelta(days=5))
    store(world, line_item, now - timedelta(hours=30))
    assert services.event_totals_advance(at=now) is None
    assert services.event_totals_advance(at=now + SEAL_MARGIN / 2) is None  # noted too recently
    assert not EventTotal.objects.exists()
    first = services.event_totals_advance(at=now + SEAL_MARGIN)
    store(world, line_item, now - timedelta(minutes=1))  # after the run's new note: the tail
    assert services.event_totals_advance(at=now + SEAL_MARGIN * 3 / 2) == first  # noted
    assert services.event_totals_advance(at=now + SEAL_MARGIN * 2) == first  # too recently
    (total,) = EventTotal.objects.all()
    assert (total.events, total.cost_micros) == (1, 12_500)
    later = services.event_totals_advance(at=now + SEAL_MARGIN * 3)
    assert services.event_totals_advance(at=now + SEAL_MARGIN * 4) == later  # adds nothing
    assert later > first
    total.refresh_from_db()
    assert (total.events, total.cost_micros) == (2, 25_000)
