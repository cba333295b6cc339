"""Rollups: the event table aggregated per account-local day, in the database.

`rollup_day(day=D)` recomputes day D for every account from the raw events: the aggregation is
GROUP BY queries in SQL; Python only upserts their result rows (a few per creative) and removes
rows that no longer have events. Running it twice gives identical rows, ids included.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum

from ads.models import AdEvent, Advertiser
from analytics.models import DailyBreakdown, DailyDelivery

Type = AdEvent.Type
METRICS = {
    "impressions": Count("id", filter=Q(event_type=Type.IMPRESSION)),
    "clicks": Count("id", filter=Q(event_type=Type.CLICK)),
    "first_quartiles": Count("id", filter=Q(event_type=Type.FIRST_QUARTILE)),
    "midpoints": Count("id", filter=Q(event_type=Type.MIDPOINT)),
    "third_quartiles": Count("id", filter=Q(event_type=Type.THIRD_QUARTILE)),
    "completes": Count("id", filter=Q(event_type=Type.COMPLETE)),
    "spend_micros": Sum("cost_micros"),
    "unique_viewers": Count("viewer", distinct=True, filter=Q(event_type=Type.IMPRESSION)),
}
METRIC_FIELDS = list(METRICS)

# Each breakdown: the dimension, the event fields that name its value and its label.
BREAKDOWNS = {
    DailyBreakdown.Dimension.GENRE: ("title__genres__slug", "title__genres__name"),
    DailyBreakdown.Dimension.REGION: ("region", "region"),
    DailyBreakdown.Dimension.DEVICE: ("device", "device"),
    DailyBreakdown.Dimension.TITLE: ("title", "title__name"),
}


@dataclass(frozen=True)
class RollupResult:
    day: dt.date
    delivery_rows: int
    breakdown_rows: int


def local_day_range(day: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants where `day` begins and ends in time zone `tz`."""
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def _events_of_day(advertiser_ids: list[int], day: dt.date, tz: ZoneInfo) -> QuerySet[AdEvent]:
    start, end = local_day_range(day, tz)
    return AdEvent.objects.filter(
        advertiser_id__in=advertiser_ids, occurred_at__gte=start, occurred_at__lt=end
    ).order_by()


def _metrics(row: Mapping[str, Any]) -> dict:
    return {name: row[name] or 0 for name in METRIC_FIELDS}


def rollup_day(*, day: dt.date, advertisers: Iterable[Advertiser] | None = None) -> RollupResult:
    """Recompute `day` (each account's local day) for `advertisers` (default: all)."""
    by_timezone: dict[str, list[int]] = defaultdict(list)
    accounts = advertisers if advertisers is not None else Advertiser.objects.all()
    for advertiser in accounts:
        by_timezone[advertiser.timezone].append(advertiser.pk)
    delivery_rows = breakdown_rows = 0
    for timezone_name, advertiser_ids in by_timezone.items():
        events = _events_of_day(advertiser_ids, day, ZoneInfo(timezone_name))
        deliveries = [
            DailyDelivery(
                advertiser_id=row["advertiser"],
                campaign_id=row["line_item__campaign"],
                line_item_id=row["line_item"],
                creative_id=row["creative"],
                day=day,
                **_metrics(row),
            )
            for row in events.values(
                "advertiser", "line_item__campaign", "line_item", "creative"
            ).annotate(**METRICS)
        ]
        breakdowns = []
        for dimension, (value_field, label_field) in BREAKDOWNS.items():
            grouped = events.values(
                "advertiser", "line_item__campaign", "line_item", value_field, label_field
            ).annotate(**METRICS)
            for row in grouped:
                value = row[value_field]
                breakdowns.append(
                    DailyBreakdown(
                        advertiser_id=row["advertiser"],
                        campaign_id=row["line_item__campaign"],
                        line_item_id=row["line_item"],
                        day=day,
                        dimension=dimension,
                        value="" if value is None else str(value),
                        label=str(row[label_field] or "(none)"),
                        **_metrics(row),
                    )
                )
        with transaction.atomic():
            _replace(
                DailyDelivery,
                deliveries,
                advertiser_ids,
                day,
                unique_fields=["advertiser", "creative", "day"],
                update_fields=["campaign", "line_item", *METRIC_FIELDS],
            )
            _replace(
                DailyBreakdown,
                breakdowns,
                advertiser_ids,
                day,
                unique_fields=["advertiser", "line_item", "day", "dimension", "value"],
                update_fields=["campaign", "label", *METRIC_FIELDS],
            )
        delivery_rows += len(deliveries)
        breakdown_rows += len(breakdowns)
    return RollupResult(day, delivery_rows, breakdown_rows)


def _replace(model, rows, advertiser_ids, day, *, unique_fields, update_fields) -> None:
    """Upsert `rows` and delete the day's rows that no longer have events: ids stay stable."""
    model.objects.bulk_create(
        rows,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=unique_fields,
        update_fields=update_fields,
    )
    key_columns = [model._meta.get_field(field).attname for field in unique_fields]
    keep = {tuple(getattr(row, column) for column in key_columns) for row in rows}
    existing = model.objects.filter(advertiser_id__in=advertiser_ids, day=day)
    stale = [pk for pk, *key in existing.values_list("pk", *key_columns) if tuple(key) not in keep]
    if stale:
        model.objects.filter(pk__in=stale).delete()


def accounts_by_local_date(*, at: dt.datetime) -> dict[dt.date, list[Advertiser]]:
    """Accounts grouped by the date it is in their time zone at `at`."""
    groups: dict[dt.date, list[Advertiser]] = defaultdict(list)
    for advertiser in Advertiser.objects.filter(is_active=True):
        groups[at.astimezone(advertiser.tzinfo).date()].append(advertiser)
    return groups


def rollup_today(*, at: dt.datetime) -> list[RollupResult]:
    """The intraday refresh: each account's local today, as far as it has gone."""
    return [
        rollup_day(day=day, advertisers=accounts)
        for day, accounts in accounts_by_local_date(at=at).items()
    ]


def rollup_last_night(*, at: dt.datetime) -> list[RollupResult]:
    """The nightly rebuild: yesterday, for the accounts where it is now between 01:00 and
    01:59 (run hourly, each account's night comes once a day, when its yesterday is final)."""
    results = []
    for day, accounts in accounts_by_local_date(at=at).items():
        due = [a for a in accounts if at.astimezone(a.tzinfo).hour == 1]
        if due:
            results.append(rollup_day(day=day - dt.timedelta(days=1), advertisers=due))
    return results
