"""KPIs of an account, read from the daily rollups (and, for reach, the event table). Every
function takes `advertiser=` and reads only that account's rows."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from ads import selectors as ads_selectors
from ads.models import (
    AdEvent,
    Advertiser,
    Campaign,
    Daypart,
    DeliveryStatus,
    LineItem,
    daypart_at,
)
from analytics.models import DailyBreakdown, DailyDelivery, RolledThrough
from analytics.services import METRIC_FIELDS, local_day_range
from engagement import selectors as engagement_selectors
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
    first_quartiles: int = 0
    midpoints: int = 0
    third_quartiles: int = 0

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
    return Kpis(**{name: row.get(name) or 0 for name in SUMS})


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


def _impressions(
    advertiser: Advertiser,
    start: dt.date,
    end: dt.date,
    campaign_id: int | None = None,
    line_item_id: int | None = None,
) -> QuerySet[AdEvent]:
    """The impression events of the account's local days `start` to `end` that the rollups
    have counted, so reach never counts an impression the rows do not: the last day's, stored
    by its last rollup (none before its first); the earlier days', stored by the last rollup
    of the latest day before it. (The earlier days' own last rollups ran before that one, so
    an event of theirs stored in between, a late one, is in reach and not in their rows; one
    cut for the whole range, the last day's, let in the events the day before stored between
    its last intraday rollup and midnight until its nightly rollup counted them.)"""
    range_start, _ = local_day_range(start, advertiser.tzinfo)
    end_start, range_end = local_day_range(end, advertiser.tzinfo)
    marks = RolledThrough.objects.filter(advertiser=advertiser).values("rolled_at")
    last_day = Subquery(marks.filter(day=end)[:1])
    days_before = Subquery(marks.filter(day__lt=end).order_by("-day")[:1])
    events = AdEvent.objects.occurred_between(range_start, range_end).filter(
        Q(occurred_at__gte=end_start, received_at__lte=last_day)
        | Q(occurred_at__lt=end_start, received_at__lte=days_before),
        advertiser=advertiser,
        event_type=AdEvent.Type.IMPRESSION,
    )
    if campaign_id is not None:
        events = events.filter(line_item__campaign_id=campaign_id)
    if line_item_id is not None:
        events = events.filter(line_item_id=line_item_id)
    return events


def reach(
    *,
    advertiser: Advertiser,
    start: dt.date,
    end: dt.date,
    campaign_id: int | None = None,
    line_item_id: int | None = None,
) -> int:
    """Distinct viewers with an impression over the whole range (not a sum of daily uniques)."""
    events = _impressions(advertiser, start, end, campaign_id, line_item_id)
    return events.aggregate(viewers=Count("viewer", distinct=True))["viewers"]


def kpis(
    *,
    advertiser: Advertiser,
    start: dt.date,
    end: dt.date,
    campaign_id: int | None = None,
    line_item_id: int | None = None,
) -> Kpis:
    """The range's totals (from the rollups) and reach (from the events)."""
    totals = _deliveries(advertiser, start, end, campaign_id, line_item_id).aggregate(**SUMS)
    return replace(
        _summed(totals),
        reach=reach(
            advertiser=advertiser,
            start=start,
            end=end,
            campaign_id=campaign_id,
            line_item_id=line_item_id,
        ),
    )


@dataclass(frozen=True)
class Comparison:
    """A range's KPIs beside those of the range of the same length just before it."""

    current: Kpis
    previous: Kpis
    previous_start: dt.date
    previous_end: dt.date


def kpis_against_previous(
    *,
    advertiser: Advertiser,
    start: dt.date,
    end: dt.date,
    campaign_id: int | None = None,
    line_item_id: int | None = None,
) -> Comparison:
    """The range's KPIs and the previous range's (as many days, ending the day before
    `start`), in two queries as `kpis` needs for one range: the rollups' sums and the reach,
    each over both ranges at once with a filter per range."""
    days = (end - start).days + 1
    previous_start, previous_end = start - dt.timedelta(days=days), start - dt.timedelta(days=1)
    rows = _deliveries(advertiser, previous_start, end, campaign_id, line_item_id)
    in_current = Q(day__gte=start)
    totals = rows.aggregate(
        **{f"current_{name}": Sum(name, filter=in_current) for name in SUMS},
        **{f"previous_{name}": Sum(name, filter=~in_current) for name in SUMS},
    )
    current_from, _ = local_day_range(start, advertiser.tzinfo)
    viewers = _impressions(advertiser, previous_start, end, campaign_id, line_item_id).aggregate(
        current=Count("viewer", distinct=True, filter=Q(occurred_at__gte=current_from)),
        previous=Count("viewer", distinct=True, filter=Q(occurred_at__lt=current_from)),
    )
    return Comparison(
        current=replace(
            _summed({name: totals[f"current_{name}"] for name in SUMS}),
            reach=viewers["current"],
        ),
        previous=replace(
            _summed({name: totals[f"previous_{name}"] for name in SUMS}),
            reach=viewers["previous"],
        ),
        previous_start=previous_start,
        previous_end=previous_end,
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


def by_creative(
    *,
    advertiser: Advertiser,
    start: dt.date,
    end: dt.date,
    campaign_id: int | None = None,
    line_item_id: int | None = None,
) -> list[dict]:
    """Totals per creative that delivered in the range, most impressions first, in one query:
    `creative_id`, `creative_name`, `line_item_id`, `line_item_name`, `kpis`."""
    rows = _deliveries(advertiser, start, end, campaign_id, line_item_id)
    grouped = rows.values("creative", "creative__name", "line_item", "line_item__name")
    return [
        {
            "creative_id": row["creative"],
            "creative_name": row["creative__name"],
            "line_item_id": row["line_item"],
            "line_item_name": row["line_item__name"],
            "kpis": _summed(row),
        }
        for row in grouped.annotate(**SUMS).order_by("-impressions", "creative__name", "creative")
    ]


def by_line_item(creatives: list[dict]) -> list[dict]:
    """The rows of `by_creative` summed per line item, most impressions first: `line_item_id`,
    `line_item_name`, `kpis`. No query (a creative belongs to one line item)."""
    totals: dict[int, dict[str, int]] = {}
    names: dict[int, str] = {}
    for row in creatives:
        sums = totals.setdefault(row["line_item_id"], defaultdict(int))
        names[row["line_item_id"]] = row["line_item_name"]
        for name in SUMS:
            sums[name] += getattr(row["kpis"], name)
    rows = [
        {"line_item_id": pk, "line_item_name": names[pk], "kpis": _summed(sums)}
        for pk, sums in totals.items()
    ]
    return sorted(rows, key=lambda row: (-row["kpis"].impressions, row["line_item_name"]))


def by_hour_of_day(
    *,
    advertiser: Advertiser,
    start: dt.date,
    end: dt.date,
    campaign_id: int | None = None,
    line_item_id: int | None = None,
) -> list[dict]:
    """Totals per hour of the day in the account's time zone, summed over the range's days:
    all 24 hours in order (`hour` 0 to 23, `kpis`), hours without delivery as zeros."""
    rows = DailyBreakdown.objects.filter(
        advertiser=advertiser,
        dimension=DailyBreakdown.Dimension.HOUR,
        day__gte=start,
        day__lte=end,
    )
    rows = _scoped(rows, campaign_id, line_item_id)
    totals = {int(row["value"]): _summed(row) for row in rows.values("value").annotate(**SUMS)}
    return [{"hour": hour, "kpis": totals.get(hour, Kpis())} for hour in range(24)]


def by_daypart(hours: list[dict]) -> list[dict]:
    """The hours of `by_hour_of_day` summed into the dayparts that line items target
    (`ads.models.Daypart`, in the same time zone), in the order of the day: `daypart`,
    `label`, `kpis`. No query."""
    totals: dict[str, dict[str, int]] = {part: defaultdict(int) for part in Daypart.values}
    for row in hours:
        part = daypart_at(dt.datetime(2000, 1, 1, row["hour"]))
        for name in SUMS:
            totals[part][name] += getattr(row["kpis"], name)
    return [
        {"daypart": part, "label": label, "kpis": _summed(totals[part])}
        for part, label in Daypart.choices
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
    """Staff only: the platform's impressions, clicks, completes and revenue today (UTC), the
    revenue per currency."""
    day = (at or timezone.now()).astimezone(dt.UTC).date()
    totals = ads_selectors.platform_live_totals(day=day)
    return {
        "day": day,
        "impressions": totals["impressions"],
        "clicks": totals["clicks"],
        "completes": totals["completes"],
        "revenue": {
            currency: Decimal(micros) / MICROS for currency, micros in totals["spend"].items()
        },
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


def staff_viewing_figures(*, at: dt.datetime | None = None) -> dict:
    """Staff only: the viewing figures the staff socket pushes (the executive dashboard's
    active sessions and average engagement, and the open sessions' average live score)."""
    viewing = viewing_activity(at=at)
    return {
        name: viewing[name]
        for name in ("active_sessions", "average_live_score", "average_engagement")
    }


def staff_live_sessions(*, at: dt.datetime | None = None) -> list[dict]:
    """Staff only: the sessions open now, newest first (`engagement.selectors.live_sessions`)."""
    return engagement_selectors.live_sessions(at=at)


def staff_session_timeline(*, session_id: int, at: dt.datetime | None = None) -> dict:
    """Staff only: a viewing session's row and its timeline, its playback events and the ad
    events of the pods it played (found by the decision ids its events carry; without any,
    the viewer's ad events on the title between its start and last event), in time order;
    ViewingSession.DoesNotExist for an unknown id."""
    row, events = engagement_selectors.viewing_session_detail(session_id=session_id, at=at)
    decision_ids = set()
    for event in events:
        if isinstance(event.detail, dict) and event.detail.get("decision_id"):
            try:
                decision_ids.add(uuid.UUID(str(event.detail["decision_id"])))
            except ValueError:  # a player's detail we cannot read: no ads to join
                continue
    if decision_ids:
        ad_events = AdEvent.objects.filter(decision_id__in=sorted(decision_ids))
    else:
        # The web player's breaks carry no decision id: the viewer's ads on this title while
        # the session ran (no index serves it; a staff page, read one session at a time).
        started = dt.datetime.fromisoformat(row["started_at"])
        ad_events = AdEvent.objects.filter(
            viewer_id=row["viewer_id"],
            title_id=row["title_id"],
            occurred_at__gte=started,
            occurred_at__lte=events[-1].at if events else started,
        )
    ad_events = ad_events.select_related("creative", "advertiser").order_by(
        "occurred_at", "pod_position", "id"
    )
    timeline = [
        {
            "at": event.at,
            "source": "playback",
            "kind": event.kind,
            "position_seconds": event.position_seconds,
            "detail": event.detail,
        }
        for event in events
    ] + [
        {
            "at": event.occurred_at,
            "source": "ad",
            "kind": event.event_type,
            "position_seconds": None,
            "detail": {
                "creative": event.creative.name,
                "advertiser": event.advertiser.name,
                "pod_position": event.pod_position,
                "cost_micros": event.cost_micros,
            },
        }
        for event in ad_events
    ]
    timeline.sort(key=lambda item: (item["at"], item["source"] == "ad"))
    return {"session": row, "timeline": timeline}
