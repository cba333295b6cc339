"""The event table partitioned by day on PostgreSQL: partitions made ahead and dropped by the
beat tasks, idempotency across midnight, and reads that touch only the partitions they need."""

import re
import threading
import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ads import services
from ads import tasks as ads_tasks
from ads.delivery import keys
from ads.delivery.counters import counters
from ads.delivery.tokens import TrackingClaim, make_token
from ads.models import AdEvent
from ads.services.partitions import event_partition_days, is_partitioned, partition_name
from analytics import services as analytics_services
from analytics import tasks as analytics_tasks
from analytics.models import DailyDelivery, RetiredEventDay
from tests.factories import (
    AdBreakFactory,
    AdvertiserFactory,
    CreativeFactory,
    TitleFactory,
    ViewerFactory,
)

pytestmark = pytest.mark.services


@pytest.fixture
def slot(db):
    """A creative of an account in UTC (its local days are the partitions' days)."""
    advertiser = AdvertiserFactory(timezone="UTC")
    creative = CreativeFactory(advertiser=advertiser, line_item__campaign__advertiser=advertiser)
    title = TitleFactory()
    return {
        "creative": creative,
        "viewer": ViewerFactory(),
        "title": title,
        "ad_break": AdBreakFactory(title=title),
    }


def token(slot, *, decided: datetime) -> str:
    creative = slot["creative"]
    return make_token(
        TrackingClaim(
            str(uuid.uuid4()),
            creative.pk,
            creative.line_item_id,
            creative.advertiser_id,
            slot["viewer"].pk,
            slot["title"].pk,
            slot["ad_break"].pk,
            1,
            "ctv",
            "us_west",
            12_500,
            True,
            decided,
        )
    )


def record(token_: str, event_type: str, *, at: datetime, occurred: datetime | None = None):
    (outcome,) = services.events_record(
        events=[services.IncomingEvent(token=token_, event_type=event_type, occurred_at=occurred)],
        at=at,
    )
    return outcome.status


def partition_of(event: AdEvent) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM ads_adevent WHERE id = %s", [event.pk])
        return cursor.fetchone()[0]


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_the_suite_runs_on_the_partitioned_table(db):
    assert is_partitioned()
    today = timezone.now().date()
    assert set(days(today - timedelta(days=1), today + timedelta(days=7))) <= set(
        event_partition_days()
    )


def test_a_duplicate_across_midnight_is_counted_once(slot):
    """The decision at 23:59:30; its impression reported by a tracking link at 23:59:50, then
    again by a batch after midnight with a time of its own (00:00:20): the second report is a
    duplicate, as both carry the decision's time, the partition key; the click after midnight
    lands in the decision's day too."""
    today = midnight(timezone.now().date())
    decided = today - timedelta(seconds=30)
    sealed = token(slot, decided=decided)
    assert record(sealed, "impression", at=today - timedelta(seconds=10)) == "accepted"
    assert (
        record(
            sealed,
            "impression",
            at=today + timedelta(seconds=30),
            occurred=today + timedelta(seconds=20),
        )
        == "duplicate"
    )
    assert record(sealed, "click", at=today + timedelta(seconds=40)) == "accepted"

    impression = AdEvent.objects.get(event_type="impression")
    click = AdEvent.objects.get(event_type="click")
    assert AdEvent.objects.count() == 2
    yesterday = partition_name(decided.date())
    assert (partition_of(impression), partition_of(click)) == (yesterday, yesterday)
    assert click.occurred_at.date() == today.date()  # occurred today, kept with its decision
    creative = slot["creative"]
    assert counters().get_many(
        [keys.creative_impressions(creative.pk), keys.creative_clicks(creative.pk)]
    ) == [1, 1]


def test_an_insert_for_a_day_without_a_partition_makes_it(slot):
    """The beat task stopped: a genuine token's day has no partition yet. The insert makes it
    and is retried; the event is accepted, not answered as an error."""
    day = timezone.now().date() - timedelta(days=40)
    assert day not in event_partition_days()
    noon = midnight(day) + timedelta(hours=12)
    assert record(token(slot, decided=noon), "impression", at=noon + timedelta(seconds=5)) == (
        "accepted"
    )
    assert day in event_partition_days()
    assert partition_of(AdEvent.objects.get()) == partition_name(day)


def test_a_batch_with_a_stored_event_and_a_day_without_a_partition(slot):
    """One batch: a decision's impression already stored (a player's retry), its click, and
    the next decision's impression, just after midnight, on a day with no partition yet. The
    insert meets both (the stored key, then the missing day) and ends with the two new events
    stored and counted, the stored one a duplicate."""
    first_day = timezone.now().date() - timedelta(days=47)  # no other test's days
    next_day = first_day + timedelta(days=1)
    before = token(slot, decided=midnight(next_day) - timedelta(seconds=30))
    after = token(slot, decided=midnight(next_day) + timedelta(seconds=10))
    at = midnight(next_day) + timedelta(seconds=40)
    assert record(before, "impression", at=at - timedelta(seconds=20)) == "accepted"
    assert next_day not in event_partition_days()
    outcomes = services.events_record(
        events=[
            services.IncomingEvent(before, "impression", "again"),
            services.IncomingEvent(before, "click", "click"),
            services.IncomingEvent(after, "impression", "next"),
        ],
        at=at,
    )
    assert [(outcome.status, outcome.client_event_id) for outcome in outcomes] == [
        ("duplicate", "again"),
        ("accepted", "click"),
        ("accepted", "next"),
    ]
    assert next_day in event_partition_days()
    # The click is kept with its decision, on the first day.
    assert sorted((event.event_type, partition_of(event)) for event in AdEvent.objects.all()) == [
        ("click", partition_name(first_day)),
        ("impression", partition_name(first_day)),
        ("impression", partition_name(next_day)),
    ]
    creative = slot["creative"]
    assert counters().get_many(
        [keys.creative_impressions(creative.pk), keys.creative_clicks(creative.pk)]
    ) == [2, 1]


@pytest.mark.django_db(transaction=True)  # two connections, each with its own transaction
def test_an_event_another_batch_holds_uncommitted_is_a_duplicate_once_that_commits(slot):
    """Batch A stores X and Y and has not committed; batch B brings Y and Z. B's plain INSERT
    waits on A's Y, then meets it stored and goes again with ON CONFLICT: Y a duplicate, Z
    accepted, each counted once (review15's probe)."""
    decided = timezone.now().replace(microsecond=0) - timedelta(seconds=5)
    at = decided + timedelta(seconds=3)
    x, y, z = (token(slot, decided=decided) for _ in range(3))
    held, release = threading.Event(), threading.Event()
    outcomes: dict[str, list] = {}

    def batch(name: str, *pairs: tuple[str, str], hold: bool = False) -> None:
        try:
            with transaction.atomic():  # an open transaction only so that A can hold it
                outcomes[name] = services.events_record(
                    events=[services.IncomingEvent(t, "impression", e) for t, e in pairs], at=at
                )
                if hold:
                    held.set()
                    release.wait(20)
        finally:
            connection.close()

    first = threading.Thread(
        target=batch, args=("a", (x, "a-x"), (y, "a-y")), kwargs={"hold": True}
    )
    first.start()
    assert held.wait(20)
    second = threading.Thread(target=batch, args=("b", (y, "b-y"), (z, "b-z")))
    second.start()
    waiting = 0
    for _ in range(250):  # until B waits on A's row
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO ads_adevent%%'"
            )
            waiting = cursor.fetchone()[0]
        if waiting:
            break
        second.join(0.02)
    release.set()
    first.join(20)
    second.join(20)
    assert waiting == 1
    assert [(o.status, o.client_event_id) for o in outcomes["b"]] == [
        ("duplicate", "b-y"),
        ("accepted", "b-z"),
    ]
    assert sorted(AdEvent.objects.values_list("client_event_id", flat=True)) == [
        "a-x",
        "a-y",
        "b-z",
    ]
    assert counters().get_many([keys.creative_impressions(slot["creative"].pk)]) == [3]


@pytest.mark.django_db(transaction=True)  # DETACH PARTITION CONCURRENTLY runs outside one
def test_the_beat_tasks_make_partitions_ahead_and_drop_old_ones_once_rolled_up(slot, settings):
    settings.EVENT_RETENTION_DAYS = 20
    today = timezone.now().date()
    older, old, recent = (today - timedelta(days=n) for n in (31, 30, 5))
    # Partitions other tests of this process left past retention (made on insert, outside
    # their transactions) are not this test's to count.
    for day in event_partition_days():
        if day < today - timedelta(days=settings.EVENT_RETENTION_DAYS):
            services.event_partition_drop(day=day)
    try:
        # Ahead: the furthest day's partition is missing; the hourly task makes it.
        ahead = today + timedelta(days=7)
        assert services.event_partition_drop(day=ahead)
        assert ahead not in event_partition_days()
        assert ahead.isoformat() in ads_tasks.event_partitions_make_ahead_task()
        assert set(days(today - timedelta(days=1), ahead)) <= set(event_partition_days())
        assert ads_tasks.event_partitions_make_ahead_task() == []  # idempotent

        # Impressions: 2 on the older day, 3 on the old one (past retention), 1 recent.
        for day, count in ((older, 2), (old, 3), (recent, 1)):
            for n in range(count):
                noon = midnight(day) + timedelta(hours=12, minutes=n)
                sealed = token(slot, decided=noon)
                assert record(sealed, "impression", at=noon + timedelta(seconds=5)) == "accepted"
        assert {older, old, recent} <= set(event_partition_days())
        advertiser_id = slot["creative"].advertiser_id

        # Not rolled up. Retention rolls up what it can: the old day, not the older one, whose
        # rollup also reads the day before, retired here: nothing goes, and the task says which
        # account-day holds it back.
        before = RetiredEventDay.objects.create(day=older - timedelta(days=1))
        assert analytics_tasks.event_retention_task() == {
            "dropped": [],
            "rolled_up_again": [[advertiser_id, old.isoformat()]],
            "not_rolled_up": [[advertiser_id, older.isoformat(), 2, 0]],
        }
        assert AdEvent.objects.count() == 6
        before.delete()

        # Rolled up, but one impression of the old day was stored after its rollup ran (the
        # nightly rollup ran before the last tracking links came in): retention rolls that
        # account-day up again before it drops anything.
        for day in days(older - timedelta(days=1), old + timedelta(days=1)):
            analytics_services.rollup_day(day=day)
        late = midnight(old) + timedelta(hours=20)
        assert record(token(slot, decided=late), "impression", at=late) == "accepted"
        # The two days past retention go, oldest first, without a DELETE.
        with CaptureQueriesContext(connection) as queries:
            result = analytics_tasks.event_retention_task()
        assert result == {
            "dropped": [older.isoformat(), old.isoformat()],
            "rolled_up_again": [[advertiser_id, old.isoformat()]],
            "not_rolled_up": [],
        }
        assert not [q for q in queries if q["sql"].lstrip().upper().startswith("DELETE")]
        assert [q["sql"] for q in queries if "DETACH PARTITION" in q["sql"]] == [
            f"ALTER TABLE ads_adevent DETACH PARTITION {partition_name(day)} CONCURRENTLY"
            for day in (older, old)
        ]
        partitions = set(event_partition_days())
        assert older not in partitions and old not in partitions and recent in partitions
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", [partition_name(old)])
            assert cursor.fetchone() == (None,)  # dropped, not only detached
        assert AdEvent.objects.count() == 1
        # The history stays in the rollups, and rolling a dropped day up again is refused
        # (it would count what is left: nothing).
        rolled = DailyDelivery.objects.filter(advertiser_id=advertiser_id)
        assert sorted(rolled.values_list("day", "impressions")) == [(older, 2), (old, 4)]
        with pytest.raises(analytics_services.EventsRetired, match=f"through {old}"):
            analytics_services.rollup_day(day=old)
        with pytest.raises(CommandError, match=f"decided through {old}"):
            call_command("rollup", day=older.isoformat())
        assert sorted(rolled.values_list("day", "impressions")) == [(older, 2), (old, 4)]
        assert analytics_tasks.event_retention_task() == {
            "dropped": [],
            "rolled_up_again": [],
            "not_rolled_up": [],
        }
    finally:
        for day in (older, old, recent):
            services.event_partition_drop(day=day)
        services.event_partitions_make_ahead(at=timezone.now())


def scanned_partitions(sql: str, params=None) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(line for (line,) in cursor.fetchall())
    return set(re.findall(r"ads_adevent_p\d{8}", plan))


def test_a_days_rollup_reads_only_the_partitions_that_can_hold_its_events(slot):
    """An account in UTC: its day D's events were decided from D-1 20:00 (4 h tokens) to
    D+1 00:05, so PostgreSQL reads partitions D-1, D and D+1 of the nine around D."""
    day = timezone.now().date() - timedelta(days=10)
    services.event_partitions_make(
        first_day=day - timedelta(days=4), last_day=day + timedelta(days=4)
    )
    with CaptureQueriesContext(connection) as queries:
        analytics_services.rollup_day(day=day)
    (statement,) = [
        q["sql"]
        for q in queries
        if q["sql"].startswith("CREATE TEMPORARY TABLE rollup_by_creative")
    ]
    select = statement[statement.index(" AS SELECT ") + len(" AS ") :]
    assert scanned_partitions(select) == {
        partition_name(day + timedelta(days=n)) for n in (-1, 0, 1)
    }


def test_reads_by_event_time_prune_partitions(db):
    day = timezone.now().date() - timedelta(days=10)
    services.event_partitions_make(
        first_day=day - timedelta(days=4), last_day=day + timedelta(days=4)
    )
    start = midnight(day) + timedelta(hours=6)
    events = AdEvent.objects.occurred_between(start, start + timedelta(hours=12))
    sql, params = events.query.sql_with_params()
    assert scanned_partitions(sql, params) == {partition_name(day)}
    events = AdEvent.objects.occurred_between(start, None)  # counter rebuilds: since `start`
    sql, params = events.query.sql_with_params()
    assert partition_name(day - timedelta(days=1)) not in scanned_partitions(sql, params)
