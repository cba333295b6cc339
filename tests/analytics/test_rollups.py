"""Rollups and KPIs against numbers computed by hand on a small fixture."""

import datetime as dt
import io
import threading
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from ads.delivery import keys
from ads.delivery.counters import Bump, counters
from ads.models import AdEvent
from analytics import selectors, services, tasks
from analytics.models import DailyBreakdown, DailyDelivery, RetiredEventDay
from config.celery import app as celery_app
from tests.factories import (
    AdEventFactory,
    CreativeFactory,
    GenreFactory,
    TitleFactory,
    ViewerFactory,
)

pytestmark = pytest.mark.django_db
DAY = dt.date(2026, 3, 10)


def at(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    """A UTC instant on `day` (the tenancy accounts are in America/New_York: UTC−4 in March)."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=dt.UTC)


@pytest.fixture
def fixture_events(tenancy):
    """On New York's 10 March: creative A has 3 impressions (2 viewers), 1 click, 2 completes;
    creative B 1 impression. One event at 02:00 UTC belongs to New York's 9 March, another
    account's event never counts."""
    creative_a = tenancy.creative
    creative_b = CreativeFactory(line_item=tenancy.line_item, name="B")
    drama, comedy = (
        GenreFactory(name="Drama", slug="drama"),
        GenreFactory(name="Comedy", slug="comedy"),
    )
    title = TitleFactory(name="Heat")
    title.genres.set([drama, comedy])
    ann, bob = ViewerFactory(external_id="ann"), ViewerFactory(external_id="bob")

    def event(creative, kind, when, viewer=ann, cost=0, device="ctv", region="us_west"):
        return AdEventFactory(
            creative=creative,
            event_type=kind,
            occurred_at=when,
            viewer=viewer,
            title=title,
            cost_micros=cost,
            device=device,
            region=region,
        )

    event(creative_a, "impression", at(13), cost=12_500)
    event(creative_a, "impression", at(14), cost=12_500, device="mobile")
    event(creative_a, "impression", at(15), viewer=bob, cost=12_500, region="us_south")
    event(creative_a, "click", at(15, 1), viewer=bob)
    event(creative_a, "complete", at(13, 1))
    event(creative_a, "complete", at(15, 1), viewer=bob)
    event(creative_b, "impression", at(23), cost=20_000)  # 19:00 in New York
    event(creative_a, "impression", at(2), cost=12_500)  # 22:00 on 9 March in New York
    AdEventFactory(creative=tenancy.rival_creative, occurred_at=at(13), cost_micros=99_000)
    return creative_a, creative_b


def test_the_daily_rollup_matches_the_hand_count(tenancy, fixture_events):
    creative_a, creative_b = fixture_events
    result = services.rollup_day(day=DAY)
    assert result.delivery_rows == 3  # A and B for Acme, the rival's creative for Globex
    row_a = DailyDelivery.objects.get(creative=creative_a, day=DAY)
    assert (row_a.impressions, row_a.clicks, row_a.completes, row_a.spend_micros) == (
        3,
        1,
        2,
        37_500,
    )
    assert row_a.unique_viewers == 2
    row_b = DailyDelivery.objects.get(creative=creative_b, day=DAY)
    assert (row_b.impressions, row_b.spend_micros, row_b.unique_viewers) == (1, 20_000, 1)
    assert (row_a.campaign_id, row_a.line_item_id) == (tenancy.campaign.pk, tenancy.line_item.pk)


def test_breakdowns_by_genre_region_device_and_title(tenancy, fixture_events):
    services.rollup_day(day=DAY)
    rows = DailyBreakdown.objects.filter(advertiser=tenancy.advertiser, day=DAY)
    devices = {row.value: row.impressions for row in rows.filter(dimension="device")}
    assert devices == {"ctv": 3, "mobile": 1}
    regions = {row.value: row.impressions for row in rows.filter(dimension="region")}
    assert regions == {"us_west": 3, "us_south": 1}
    genres = {row.label: (row.impressions, row.clicks) for row in rows.filter(dimension="genre")}
    assert genres == {"Drama": (4, 1), "Comedy": (4, 1)}  # a title in two genres counts in both
    (title_row,) = rows.filter(dimension="title")
    assert (title_row.label, title_row.impressions, title_row.spend_micros) == ("Heat", 4, 57_500)


def test_rolling_up_twice_leaves_identical_rows(tenancy, fixture_events):
    services.rollup_day(day=DAY)
    first = sorted(DailyDelivery.objects.values_list())
    first_breakdowns = sorted(DailyBreakdown.objects.values_list())
    services.rollup_day(day=DAY)
    assert sorted(DailyDelivery.objects.values_list()) == first
    assert sorted(DailyBreakdown.objects.values_list()) == first_breakdowns


def test_a_rollup_drops_rows_whose_events_are_gone(tenancy, fixture_events):
    _, creative_b = fixture_events
    services.rollup_day(day=DAY)
    creative_b.events.all().delete()
    services.rollup_day(day=DAY)
    assert not DailyDelivery.objects.filter(creative=creative_b).exists()


def test_a_day_whose_events_retention_dropped_is_never_rolled_up_again(tenancy, fixture_events):
    """Its rows are the history: recomputed from the events left they would be deleted."""
    services.rollup_day(day=DAY)
    stored = sorted(DailyDelivery.objects.values_list())
    AdEvent.objects.all().delete()  # as if retention had dropped the day's partition
    # The account is in New York: its day reads decisions from the UTC day before on.
    RetiredEventDay.objects.create(day=DAY - dt.timedelta(days=1))
    with pytest.raises(services.EventsRetired, match=f"decided through {DAY - dt.timedelta(1)}"):
        services.rollup_day(day=DAY)
    with pytest.raises(CommandError, match="cannot be rolled up again"):
        call_command("rollup", day=DAY.isoformat())
    assert sorted(DailyDelivery.objects.values_list()) == stored
    # The next day reads no retired day: rolled up as usual (its own rows, none here).
    assert services.rollup_day(day=DAY + dt.timedelta(days=2)).delivery_rows == 0
    assert sorted(DailyDelivery.objects.values_list()) == stored


@pytest.mark.django_db(transaction=True)
def test_concurrent_rollups_of_a_day_leave_the_rows_of_one(tenancy, fixture_events):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    services.rollup_day(day=DAY)
    expected = sorted(row[1:] for row in DailyBreakdown.objects.values_list())
    DailyDelivery.objects.all().delete()
    DailyBreakdown.objects.all().delete()
    failures = []
    start = threading.Barrier(4)

    def rollup() -> None:
        try:
            connection.ensure_connection()
            start.wait()
            services.rollup_day(day=DAY)
        except Exception as error:  # the test reports any
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=rollup) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert DailyDelivery.objects.filter(day=DAY).count() == 3
    rows = sorted(row[1:] for row in DailyBreakdown.objects.values_list())
    assert rows == expected  # the same rows, under new ids


def test_deleting_a_line_item_or_a_campaign_deletes_their_rows(tenancy, fixture_events):
    services.rollup_day(day=DAY)
    assert DailyBreakdown.objects.filter(line_item=tenancy.line_item).exists()
    tenancy.line_item.delete()
    assert not DailyDelivery.objects.filter(line_item=tenancy.line_item.pk).exists()
    assert not DailyBreakdown.objects.filter(line_item=tenancy.line_item.pk).exists()
    rival_campaign = tenancy.rival_creative.line_item.campaign
    assert DailyDelivery.objects.filter(campaign=rival_campaign).count() == 1
    rival_campaign.delete()
    assert not DailyDelivery.objects.exists()
    assert not DailyBreakdown.objects.exists()


def test_kpis_of_the_range(tenancy, fixture_events):
    services.rollup_day(day=DAY - dt.timedelta(days=1))
    services.rollup_day(day=DAY)
    kpis = selectors.kpis(advertiser=tenancy.advertiser, start=DAY, end=DAY)
    assert (kpis.impressions, kpis.clicks, kpis.completes) == (4, 1, 2)
    assert kpis.spend == Decimal("0.0575")
    assert kpis.ctr == pytest.approx(1 / 4)
    assert kpis.ecpm == Decimal("0.0575") * 1000 / 4
    assert kpis.cpc == Decimal("0.0575")
    assert kpis.completion_rate == pytest.approx(2 / 4)
    assert kpis.reach == 2
    assert kpis.average_frequency == pytest.approx(4 / 2)
    both_days = selectors.kpis(
        advertiser=tenancy.advertiser, start=DAY - dt.timedelta(days=1), end=DAY
    )
    assert (both_days.impressions, both_days.reach) == (5, 2)  # ann counted once over the range


def test_reach_counts_the_impressions_the_rows_count(tenancy, fixture_events):
    """Reach is read from the events, impressions from the rollups: an impression stored after
    the last rollup is in neither (it was in reach only: 3 viewers reached, 4 impressions, an
    average frequency under the truth), and before the account's first rollup, nothing is."""
    creative_a, _ = fixture_events
    before = selectors.kpis(advertiser=tenancy.advertiser, start=DAY, end=DAY)
    assert (before.impressions, before.reach) == (0, 0)
    services.rollup_day(day=DAY)
    carl = ViewerFactory(external_id="carl")
    AdEventFactory(creative=creative_a, occurred_at=at(16), viewer=carl, cost_micros=12_500)
    kpis = selectors.kpis(advertiser=tenancy.advertiser, start=DAY, end=DAY)
    assert (kpis.impressions, kpis.reach) == (4, 2)
    compared = selectors.kpis_against_previous(advertiser=tenancy.advertiser, start=DAY, end=DAY)
    assert (compared.current.impressions, compared.current.reach) == (4, 2)
    services.rollup_day(day=DAY)
    kpis = selectors.kpis(advertiser=tenancy.advertiser, start=DAY, end=DAY)
    assert (kpis.impressions, kpis.reach) == (5, 3)
    assert kpis.average_frequency == pytest.approx(5 / 3)


def test_reach_of_earlier_days_stops_at_their_rows(tenancy, fixture_events):
    """An impression of the day before, stored after that day's last rollup, is not in its rows
    until that day is rolled up again: nor in reach, though today's rollup ran after it."""
    creative_a, _ = fixture_events
    before = DAY - dt.timedelta(days=1)
    services.rollup_day(day=before)
    carl = ViewerFactory(external_id="carl")
    AdEventFactory(creative=creative_a, occurred_at=at(3), viewer=carl)  # 23:00 on the 9th
    services.rollup_day(day=DAY)
    kpis = selectors.kpis(advertiser=tenancy.advertiser, start=before, end=DAY)
    assert (kpis.impressions, kpis.reach) == (5, 2)
    services.rollup_day(day=before)
    kpis = selectors.kpis(advertiser=tenancy.advertiser, start=before, end=DAY)
    assert (kpis.impressions, kpis.reach) == (6, 3)


def test_kpis_with_nothing_shown_are_none_not_zero(tenancy):
    kpis = selectors.kpis(advertiser=tenancy.advertiser, start=DAY, end=DAY)
    assert (kpis.impressions, kpis.ctr, kpis.ecpm, kpis.cpc, kpis.completion_rate) == (
        0,
        None,
        None,
        None,
        None,
    )
    assert kpis.average_frequency is None


def test_the_series_has_every_day(tenancy, fixture_events):
    services.rollup_day(day=DAY)
    series = selectors.daily_series(
        advertiser=tenancy.advertiser, start=DAY - dt.timedelta(days=1), end=DAY
    )
    assert [(point["day"], point["impressions"], point["clicks"]) for point in series] == [
        (DAY - dt.timedelta(days=1), 0, 0),
        (DAY, 4, 1),
    ]
    assert series[1]["spend"] == Decimal("0.0575")


def test_the_outsider_account_sees_only_its_own(tenancy, fixture_events):
    services.rollup_day(day=DAY)
    rival = selectors.kpis(advertiser=tenancy.rival, start=DAY, end=DAY)
    assert (rival.impressions, rival.spend_micros) == (1, 99_000)
    assert (
        selectors.breakdown(advertiser=tenancy.rival, dimension="title", start=DAY, end=DAY)[0][
            "kpis"
        ].impressions
        == 1
    )
    assert [
        row["campaign"]
        for row in selectors.campaign_table(advertiser=tenancy.rival, start=DAY, end=DAY)
    ] == [tenancy.rival_campaign]


def test_pacing_compares_spend_with_the_even_target(tenancy):
    noon = dt.datetime(2026, 3, 10, 16, 0, tzinfo=dt.UTC)  # 12:00 in New York
    counters().add_many([Bump(keys.spent_day(tenancy.line_item.pk, DAY), 125_000_000)])
    (pacing,) = selectors.pacing(
        advertiser=tenancy.advertiser, line_items=[tenancy.line_item], at=noon
    ).values()
    assert pacing.spent_today == Decimal(125)
    assert pacing.target_now == Decimal(250)  # half of the $500 daily budget
    assert pacing.ratio == pytest.approx(0.5)
    assert (
        selectors.pacing(
            advertiser=tenancy.advertiser, line_items=[tenancy.rival_line_item], at=noon
        )
        == {}
    )


def test_the_nightly_task_rolls_up_each_accounts_yesterday_at_its_night(tenancy, fixture_events):
    # 05:30 UTC on 11 March is 01:30 in New York: Acme's night. The rival is in New York too.
    assert services.rollup_last_night(at=dt.datetime(2026, 3, 11, 5, 30, tzinfo=dt.UTC))
    assert DailyDelivery.objects.filter(advertiser=tenancy.advertiser, day=DAY).count() == 2
    DailyDelivery.objects.all().delete()
    # 03:30 UTC is 23:30 in New York: nobody's night, nothing rolled up.
    assert services.rollup_last_night(at=dt.datetime(2026, 3, 11, 3, 30, tzinfo=dt.UTC)) == []
    assert not DailyDelivery.objects.exists()


def test_the_intraday_task_refreshes_each_accounts_today(tenancy, fixture_events):
    tasks.rollup_today_task.apply(kwargs={})  # the embedded default runs it eagerly
    services.rollup_today(at=dt.datetime(2026, 3, 10, 23, 30, tzinfo=dt.UTC))
    row = DailyDelivery.objects.get(creative=fixture_events[1], day=DAY)
    assert row.impressions == 1


def test_the_beat_schedule_runs_registered_tasks_and_the_rollups_do_their_work(
    settings, monkeypatch, tenancy, fixture_events
):
    schedule = settings.CELERY_BEAT_SCHEDULE
    # Beat sends names only: a name no worker knows is a task that never runs. A worker
    # imports every app's tasks module first; so does this.
    celery_app.loader.import_default_modules()
    names = [entry["task"] for entry in schedule.values()]
    missing = [name for name in names if name not in celery_app.tasks]
    assert missing == []
    # What the hourly entry sends at 05:30 UTC on 11 March (01:30 in New York) rolls up 10 March.
    night = dt.datetime(2026, 3, 11, 5, 30, tzinfo=dt.UTC)
    monkeypatch.setattr(tasks, "timezone", SimpleNamespace(now=lambda: night))
    rows = celery_app.tasks[schedule["rollup-last-night"]["task"]].apply().get()
    assert rows == DailyDelivery.objects.filter(day=DAY).count() == 3
    # ... and the five-minute entry refreshes today's rows as the day goes on.
    DailyDelivery.objects.all().delete()
    monkeypatch.setattr(tasks, "timezone", SimpleNamespace(now=lambda: at(23, 30)))
    rows = celery_app.tasks[schedule["rollup-today"]["task"]].apply().get()
    assert rows == DailyDelivery.objects.filter(day=DAY).count() == 3


def test_the_rollup_command_rebuilds_a_day_and_names_bad_input(tenancy, fixture_events):
    output = io.StringIO()
    call_command("rollup", day=DAY.isoformat(), stdout=output)
    assert output.getvalue().startswith("Rolled up 1 days into 3 delivery rows")
    assert DailyDelivery.objects.filter(day=DAY).count() == 3
    with pytest.raises(CommandError, match="--day must be a date"):
        call_command("rollup", day="2026-13-01")
    with pytest.raises(CommandError, match="--days must be between 1 and 366"):
        call_command("rollup", days=0)


# Hour of day, in the account's time zone


def hours_of(advertiser, day, field="impressions") -> dict[str, int]:
    rows = DailyBreakdown.objects.filter(advertiser=advertiser, day=day, dimension="hour")
    return {row.value: getattr(row, field) for row in rows}


def test_the_hour_breakdown_is_the_local_hour(tenancy, fixture_events):
    services.rollup_day(day=DAY)
    # New York is UTC−4 on 10 March: 13, 14 and 15 UTC are 09, 10 and 11; 23 UTC is 19.
    assert hours_of(tenancy.advertiser, DAY) == {"09": 1, "10": 1, "11": 1, "19": 1}
    assert hours_of(tenancy.advertiser, DAY, "clicks") == {"09": 0, "10": 0, "11": 1, "19": 0}
    assert hours_of(tenancy.advertiser, DAY, "completes") == {"09": 1, "10": 0, "11": 1, "19": 0}
    assert hours_of(tenancy.advertiser, DAY, "spend_micros")["19"] == 20_000
    labels = DailyBreakdown.objects.filter(
        advertiser=tenancy.advertiser, dimension="hour", value="09"
    ).values_list("label")
    assert list(labels) == [("09:00",)]
    # The 02:00 UTC impression is 22:00 on New York's 9 March.
    services.rollup_day(day=DAY - dt.timedelta(days=1))
    assert hours_of(tenancy.advertiser, DAY - dt.timedelta(days=1)) == {"22": 1}
    # The hours add up to the day's delivery, metric by metric.
    day_total = selectors.kpis(advertiser=tenancy.advertiser, start=DAY, end=DAY)
    assert sum(hours_of(tenancy.advertiser, DAY).values()) == day_total.impressions


def test_the_hour_is_right_on_the_days_the_clocks_change(tenancy):
    spring, autumn = dt.date(2026, 3, 8), dt.date(2026, 11, 1)  # New York's changes in 2026
    # 8 March: 02:00 EST (07:00 UTC) becomes 03:00 EDT; the day is 23 hours long.
    assert services.local_day_windows(spring, tenancy.advertiser.tzinfo) == [
        (at(5, day=spring), at(7, day=spring), -5 * 3600),
        (at(7, day=spring), at(4, day=spring + dt.timedelta(days=1)), -4 * 3600),
    ]
    moments = {
        at(5, day=spring): "00",
        dt.datetime(2026, 3, 8, 6, 59, 59, 900_000, tzinfo=dt.UTC): "01",  # 01:59:59.9 EST
        at(7, day=spring): "03",
        at(3, 59, day=spring + dt.timedelta(days=1)): "23",
        # 1 November: 02:00 EDT (06:00 UTC) is 01:00 EST again; 01:00 to 02:00 comes twice.
        at(5, 30, day=autumn): "01",
        at(6, 30, day=autumn): "01",
        at(7, 30, day=autumn): "02",
        at(4, 59, day=autumn + dt.timedelta(days=1)): "23",
    }
    for moment in moments:
        AdEventFactory(creative=tenancy.creative, occurred_at=moment)
    AdEventFactory(creative=tenancy.creative, occurred_at=at(4, 30, day=spring))  # 7 March
    services.rollup_day(day=spring)
    services.rollup_day(day=autumn)
    assert hours_of(tenancy.advertiser, spring) == {"00": 1, "01": 1, "03": 1, "23": 1}
    assert hours_of(tenancy.advertiser, autumn) == {"01": 2, "02": 1, "23": 1}


def test_the_hour_is_right_in_a_half_hour_time_zone(tenancy):
    tenancy.advertiser.timezone = "Asia/Kolkata"  # UTC+05:30: 10 March is 9 March 18:30 UTC on
    tenancy.advertiser.save()
    for moment in (at(18, 30, day=DAY - dt.timedelta(days=1)), at(8, 45), at(18, 29)):
        AdEventFactory(creative=tenancy.creative, occurred_at=moment)
    AdEventFactory(creative=tenancy.creative, occurred_at=at(18, 30))  # 11 March, 00:00
    services.rollup_day(day=DAY)
    assert hours_of(tenancy.advertiser, DAY) == {"00": 1, "14": 1, "23": 1}


def test_each_hours_unique_viewers_count_a_viewer_once(tenancy):
    ann = ViewerFactory(external_id="ann")
    for minute in (0, 10, 20):
        AdEventFactory(creative=tenancy.creative, occurred_at=at(13, minute), viewer=ann)
    AdEventFactory(creative=tenancy.creative, occurred_at=at(14), viewer=ann)
    services.rollup_day(day=DAY)
    assert hours_of(tenancy.advertiser, DAY) == {"09": 3, "10": 1}
    assert hours_of(tenancy.advertiser, DAY, "unique_viewers") == {"09": 1, "10": 1}
