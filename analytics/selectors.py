"""KPIs of an account, read from the daily rollups (and, for reach, the event table). Every
function takes `advertiser=` and reads only that account's rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from ads import selectors as ads_selectors
from ads.models import AdEvent, Advertiser, Campaign, DeliveryStatus, LineItem
from analytics.models import DailyBreakdown, DailyDelivery
from analytics.services import METRIC_FIELDS, local_day_range
from engagement.selectors import viewing_activity
from ml import selectors as ml_selectors
from ml.models import ModelVersion

MICROS = ads_selectors.MICROS
SUMS = {name: Sum(name) for name in METRIC_FIELDS if name != "unique_viewers"}


@dataclass(frozen=True)
class Kpis:
    impressions: int = 0
    clicks: int = 0
    completes: int = 0
    spend_micros: int = 0
    reach: int = 0

    @property
    def spend(self) -> Decimal:
        return Decimal(self.spend_micros) / MICROS

    @property
    def ctr(self) -> float | None:
        """Clicks per impression; None (not 0) when nothing was shown."""
        return self.clicks / self.impressions if self.impressions else None

    @property
    def ecpm(self) -> Decimal | None:
        """Spend per thousand impressions."""
        return self.spend * 1000 / self.impressions if self.impressions else None

    @property
    def cpc(self) -> Decimal | None:
        return self.spend / self.clicks if self.clicks else None

    @property
    def completion_rate(self) -> float | None:
        """Video completion rate: completes per impression."""
        return self.completes / self.impressions if self.impressions else None

    @property
    def average_frequency(self) -> float | None:
        """Impressions per viewer reached."""
        return self.impressions / self.reach if self.reach else None


def _summed(row: Mapping[str, Any]) -> Kpis:
    """Kpis from a row of SUMS (a missing row or a NULL sum is zero); reach is not summable."""
    return Kpis(
        impressions=row.get("impressions") or 0,
        clicks=row.get("clicks") or 0,
        completes=row.get("completes") or 0,
        spend_micros=row.get("spend_micros") or 0,
    )


def _scoped(queryset: QuerySet, campaign_id: int | None, line_item_id: int | None) -> QuerySet:
    if campaign_id is not None:
        queryset = queryset.filter(campaign_id=campaign_id)
    if line_item_id is not None:
        queryset = queryset.filter(line_item_id=line_item_id)
    return queryset


def _deliveries(
    advertiser: Advertiser,
    start: dt.date,
    end: dt.date,
    campaign_id: int | None = None,
    line_item_id: int | None = None,
) -> QuerySet[DailyDelivery]:
    rows = DailyDelivery.objects.filter(advertiser=advertiser, day__gte=start, day__lte=end)
    return _scoped(rows, campaign_id, line_item_id)


def reach(
    *,
    advertiser: Advertiser,
    start: dt.date,
    end: dt.date,
    campaign_id: int | None = None,
    line_item_id: int | None = None,
) -> int:
    """Distinct viewers with an impression over the whole range (not a sum of daily uniques)."""
    range_start, _ = local_day_range(start, advertiser.tzinfo)
    _, range_end = local_day_range(end, advertiser.tzinfo)
    events = AdEvent.objects.filter(
        advertiser=advertiser,
        event_type=AdEvent.Type.IMPRESSION,
        occurred_at__gte=range_start,
        occurred_at__lt=range_end,
    )
    if campaign_id is not None:
        events = events.filter(line_item__campaign_id=campaign_id)
    if line_item_id is not None:
        events = events.filter(line_item_id=line_item_id)
    return events.aggregate(viewers=Count("viewer", distinct=True))["viewers"]


def kpis(
    *,
    advertiser: Advertiser,
    start: dt.date,
    end: dt.date,
    campaign_id: int | None = None,
    line_item_id: int | None = None,
) -> Kpis:
    totals = _deliveries(advertiser, start, end, campaign_id, line_item_id).aggregate(**SUMS)
    return Kpis(
        impressions=totals["impressions"] or 0,
        clicks=totals["clicks"] or 0,
        completes=totals["completes"] or 0,
        spend_micros=totals["spend_micros"] or 0,
        reach=reach(
            advertiser=advertiser,
            start=start,
            end=end,
            campaign_id=campaign_id,
            line_item_id=line_item_id,
        ),
    )


def daily_series(
    *,
    advertiser: Advertiser,
    start: dt.date,
    end: dt.date,
    campaign_id: int | None = None,
    line_item_id: int | None = None,
) -> list[dict]:
    """One point per day of the range (days without delivery are zeros)."""
    rows: dict[dt.date, Kpis] = {
        row["day"]: _summed(row)
        for row in _deliveries(advertiser, start, end, campaign_id, line_item_id)
        .values("day")
        .annotate(**SUMS)
    }
    series = []
    day = start
    while day <= end:
        totals = rows.get(day, Kpis())
        series.append(
            {
                "day": day,
                "impressions": totals.impressions,
                "clicks": totals.clicks,
                "spend": totals.spend,
            }
        )
        day += dt.timedelta(days=1)
    return series


def breakdown(
    *,
    advertiser: Advertiser,
    dimension: str,
    start: dt.date,
    end: dt.date,
    campaign_id: int | None = None,
    line_item_id: int | None = None,
) -> list[dict]:
    """Totals per value of `dimension` (genre, region, device, title), most impressions first."""
    rows = DailyBreakdown.objects.filter(
        advertiser=advertiser, dimension=dimension, day__gte=start, day__lte=end
    )
    rows = _scoped(rows, campaign_id, line_item_id)
    return [
        {"value": row["value"], "label": row["label"], "kpis": _summed(row)}
        for row in rows.values("value", "label").annotate(**SUMS).order_by("-impressions", "label")
    ]


@dataclass(frozen=True)
class Pacing:
    """Today's spend against the even-pacing target (daily budget × share of the day gone)."""

    spent_today: Decimal
    target_now: Decimal
    daily_budget: Decimal
    lifetime_remaining: Decimal

    @property
    def ratio(self) -> float | None:
        """Spend over target: 1.0 is on schedule."""
        return float(self.spent_today / self.target_now) if self.target_now else None

    @property
    def budget_used(self) -> float:
        return float(self.spent_today / self.daily_budget) if self.daily_budget else 0.0


def pacing(
    *, advertiser: Advertiser, line_items: list[LineItem], at: dt.datetime | None = None
) -> dict[int, Pacing]:
    """Pacing of the account's `line_items` now, from the live counters (one read)."""
    at = at or timezone.now()
    local = timezone.localtime(at, advertiser.tzinfo)
    today = local.date()
    day_share = (local - local.replace(hour=0, minute=0, second=0, microsecond=0)).seconds / 86400
    spend = ads_selectors.line_item_spend(advertiser=advertiser, line_items=line_items, day=today)
    result = {}
    for line_item in line_items:
        if line_item.pk not in spend:
            continue  # another account's
        spent_today, spent_lifetime = spend[line_item.pk]
        result[line_item.pk] = Pacing(
            spent_today=Decimal(spent_today) / MICROS,
            target_now=line_item.daily_budget * Decimal(str(round(day_share, 6))),
            daily_budget=line_item.daily_budget,
            lifetime_remaining=max(
                Decimal(0), line_item.lifetime_budget - Decimal(spent_lifetime) / MICROS
            ),
        )
    return result


def campaign_table(*, advertiser: Advertiser, start: dt.date, end: dt.date) -> list[dict]:
    """Each live campaign with its KPIs over the range: two queries whatever their number."""
    campaigns = list(
        Campaign.objects.filter(advertiser=advertiser)
        .exclude(status=DeliveryStatus.ARCHIVED)
        .annotate(
            daily_budget=Sum(
                "line_items__daily_budget",
                filter=Q(line_items__status=DeliveryStatus.ACTIVE),
            )
        )
        .order_by("name")
    )
    totals: dict[int, Kpis] = {
        row["campaign"]: _summed(row)
        for row in _deliveries(advertiser, start, end).values("campaign").annotate(**SUMS)
    }
    return [
        {"campaign": campaign, "kpis": totals.get(campaign.pk, Kpis())} for campaign in campaigns
    ]


def fill_rate(*, day: dt.date) -> float | None:
    """Staff only: the share of the day's decisions that returned at least one ad."""
    decisions, unfilled = ads_selectors.decision_counts(day=day)
    return (decisions - unfilled) / decisions if decisions else None


def live_today(*, advertiser: Advertiser, at: dt.datetime | None = None) -> dict:
    """The account's running totals for its local today, from the live counters."""
    day = timezone.localtime(at or timezone.now(), advertiser.tzinfo).date()
    totals = ads_selectors.live_totals(advertiser=advertiser, day=day)
    today = Kpis(
        impressions=totals["impressions"],
        clicks=totals["clicks"],
        completes=totals["completes"],
        spend_micros=totals["spend"],
    )
    return {
        "day": day.isoformat(),
        "impressions": today.impressions,
        "clicks": today.clicks,
        "completes": today.completes,
        "spend": f"{today.spend:.2f}",
        "ctr": today.ctr,
        "completion_rate": today.completion_rate,
    }


# -- staff ------------------------------------------------------------------------------------


def platform_today(*, at: dt.datetime | None = None) -> dict:
    """Staff only: the platform's impressions, clicks, completes and revenue today (UTC)."""
    day = (at or timezone.now()).astimezone(dt.UTC).date()
    totals = ads_selectors.platform_live_totals(day=day)
    return {
        "day": day,
        "impressions": totals["impressions"],
        "clicks": totals["clicks"],
        "completes": totals["completes"],
        "revenue": Decimal(totals["spend"]) / MICROS,
        "fill_rate": fill_rate(day=day),
    }


def model_monitoring(*, kind: str) -> dict:
    """Staff only: a model kind's versions with their held-out metrics, the champion's
    reliability and lift tables, and its daily drift with the conventional PSI bands."""
    versions = ml_selectors.model_versions(kind=kind)
    champion = next((v for v in versions if v.status == ModelVersion.Status.CHAMPION), None)
    drift = []
    if champion is not None:
        drift = [
            {
                "day": row.day,
                "psi": row.psi,
                "rows": row.rows,
                "band": ml_selectors.psi_band(row.psi),
            }
            for row in ml_selectors.drift_measurements(model_version=champion)
        ]
    return {
        "kind": kind,
        "versions": versions,
        "champion": champion,
        "reliability": champion.metrics.get("reliability", []) if champion else [],
        "lift": champion.metrics.get("lift", []) if champion else [],
        "drift": drift,
    }


def executive_summary(*, at: dt.datetime | None = None) -> dict:
    """Staff only: the platform now: viewing, delivery and revenue today, fill rate, decision
    latency over the last five minutes, and the champions' held-out metrics."""
    at = at or timezone.now()
    return {
        "at": at,
        "viewing": viewing_activity(at=at),
        "delivery": platform_today(at=at),
        "latency": ads_selectors.decision_latency(minutes=5, at=at),
        "champions": ml_selectors.champion_versions(),
    }
