"""The delivery state's reads, for the dashboards and the list pages: live totals, spend,
delivery against goal and decision latency, from the counters (`ads.delivery`). No other app
reads counters or builds their keys."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from ads.delivery import counters as delivery_counters
from ads.delivery import keys, latency
from ads.delivery.counters import DeliveryStateUnavailable, counters
from ads.models import AdEvent, Advertiser, Campaign, DeliveryStatus, LineItem

MICROS = delivery_counters.MICROS  # counters keep money in millionths of the currency unit
LATENCY_BUCKETS_MS = latency.BUCKETS_MS  # upper bounds of the decision latency histogram


# The live metric each event type counts in (spend sums the events' cost).
COUNTED_AS = {
    AdEvent.Type.IMPRESSION: "impressions",
    AdEvent.Type.CLICK: "clicks",
    AdEvent.Type.COMPLETE: "completes",
}


def _read(names: list[str]) -> list[int] | None:
    """The counters' values, or None while they cannot be read (Redis down): the dashboards
    then read the event table, the truth the counters copy, rather than fail."""
    try:
        return counters().get_many(names)
    except DeliveryStateUnavailable:
        return None


def _day_bounds(day: dt.date, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start, end


def _from_table(events, metrics: tuple[str, ...]) -> dict[str, int]:
    """The live metrics of `events`, summed in the database (one query)."""
    sums = events.aggregate(
        spend=Sum("cost_micros"),
        **{
            metric: Count("id", filter=Q(event_type=event_type))
            for event_type, metric in COUNTED_AS.items()
        },
    )
    return {metric: int(sums[metric] or 0) for metric in metrics}


def live_totals(*, advertiser: Advertiser, day: dt.date) -> dict[str, int]:
    """The account's running totals for its local `day` (impressions, clicks, completes, and
    spend in micros), from the live counters: one read. While Redis is down, from the event
    table (the account's events of the day: its (advertiser, occurred_at) index)."""
    values = _read([keys.live(advertiser.pk, day, m) for m in keys.LIVE_METRICS])
    if values is None:
        events = AdEvent.objects.filter(advertiser=advertiser).occurred_between(
            *_day_bounds(day, advertiser.tzinfo)
        )
        return _from_table(events, keys.LIVE_METRICS)
    return dict(zip(keys.LIVE_METRICS, values, strict=True))


def platform_live_totals(*, day: dt.date) -> dict:
    """Staff only: the platform's running totals for a UTC `day`: impressions, clicks and
    completes, and `spend` in micros per currency of the accounts (never added up across
    currencies; a currency with no spend is left out). One query, one counter read."""
    counted = [metric for metric in keys.LIVE_METRICS if metric != "spend"]
    currencies = sorted(set(Advertiser.objects.values_list("currency", flat=True)))
    values = _read(
        [keys.live_platform(day, metric) for metric in counted]
        + [keys.live_platform_spend(day, currency) for currency in currencies]
    )
    if values is None:  # Redis down: the day's events, by the accounts' currencies
        events = AdEvent.objects.occurred_between(*_day_bounds(day, dt.UTC))
        by_currency = {
            currency: _from_table(events.filter(advertiser__currency=currency), ("spend",))
            for currency in currencies
        }
        values = list(_from_table(events, tuple(counted)).values()) + [
            by_currency[currency]["spend"] for currency in currencies
        ]
    totals: dict = dict(zip(counted, values, strict=False))
    spend = dict(zip(currencies, values[len(counted) :], strict=True))
    totals["spend"] = {currency: micros for currency, micros in spend.items() if micros}
    return totals


def line_item_spend(
    *, advertiser: Advertiser, line_items: list[LineItem], day: dt.date
) -> dict[int, tuple[int, int]]:
    """(spent on the account's local `day`, spent in the line item's lifetime), in micros,
    for each of the account's `line_items`, from the live counters: one read. Other accounts'
    line items are left out."""
    own = [line_item.pk for line_item in line_items if line_item.advertiser_id == advertiser.pk]
    values = _read(
        [key for pk in own for key in (keys.spent_day(pk, day), keys.spent_lifetime(pk))]
    )
    if values is None:  # Redis down: the line items' events (their (line_item, …) index)
        events = AdEvent.objects.filter(line_item__in=own, cost_micros__gt=0)
        today = dict(
            events.occurred_between(*_day_bounds(day, advertiser.tzinfo))
            .values_list("line_item")
            .annotate(Sum("cost_micros"))
        )
        ever = dict(events.values_list("line_item").annotate(Sum("cost_micros")))
        return {pk: (today.get(pk) or 0, ever.get(pk) or 0) for pk in own}
    return {pk: (values[2 * i], values[2 * i + 1]) for i, pk in enumerate(own)}


# How far spend may stray from the even-pacing target and still be on track: a tenth of the
# target, or 2 % of the daily budget early in the day, when the target is still tiny.
ON_TRACK_SHARE = Decimal("0.10")
ON_TRACK_FLOOR = Decimal("0.02")


@dataclass(frozen=True)
class Delivery:
    """Delivery against goal, in the account's currency: spend today against the even-pacing
    target now (the daily budget × the share of the account's local day gone by, the decision
    engine's curve), and the lifetime budget used. `state` is "on_track", "behind", "ahead",
    or "" when nothing is meant to deliver now (paused, archived, outside its flight)."""

    spent_today: Decimal
    target_now: Decimal
    daily_budget: Decimal
    spent_lifetime: Decimal
    lifetime_budget: Decimal
    state: str

    @property
    def lifetime_used(self) -> float:
        """The share of the lifetime budget spent, 0 to 1."""
        return float(self.spent_lifetime / self.lifetime_budget) if self.lifetime_budget else 0.0

    @property
    def lifetime_percent(self) -> float:
        return self.lifetime_used * 100

    @property
    def state_label(self) -> str:
        return {"on_track": "On track", "behind": "Behind", "ahead": "Ahead"}.get(self.state, "")


def _pacing_state(
    *, spent: Decimal, target: Decimal, daily_budget: Decimal, asap: bool, live: bool
) -> str:
    if not live:
        return ""
    slack = max(target * ON_TRACK_SHARE, daily_budget * ON_TRACK_FLOOR)
    if spent < target - slack:
        return "behind"
    # ASAP line items are meant to run ahead of the curve; reaching the budget is the goal.
    if spent > target + slack and not asap:
        return "ahead"
    return "on_track"


def _day_share(advertiser: Advertiser, at: dt.datetime) -> tuple[dt.date, Decimal]:
    local = timezone.localtime(at, advertiser.tzinfo)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    share = min(1.0, (local - midnight).total_seconds() / 86400)
    return local.date(), Decimal(str(round(share, 6)))


def _is_live(line_item: LineItem, campaign_status: str, at: dt.datetime) -> bool:
    return (
        line_item.status == DeliveryStatus.ACTIVE
        and campaign_status == DeliveryStatus.ACTIVE
        and line_item.start_at <= at
        and (line_item.end_at is None or at < line_item.end_at)
    )


def line_item_pacing(
    *, advertiser: Advertiser, line_items: list[LineItem], at: dt.datetime | None = None
) -> dict[int, Delivery]:
    """Delivery against goal of the account's `line_items` (with their campaign loaded) at
    `at` (now), from the live counters: one read, no query. Other accounts' are left out."""
    at = at or timezone.now()
    today, share = _day_share(advertiser, at)
    spend = line_item_spend(advertiser=advertiser, line_items=line_items, day=today)
    result = {}
    for line_item in line_items:
        if line_item.pk not in spend:
            continue
        spent_today, spent_lifetime = (Decimal(micros) / MICROS for micros in spend[line_item.pk])
        target = line_item.daily_budget * share
        live = _is_live(line_item, line_item.campaign.status, at)
        result[line_item.pk] = Delivery(
            spent_today=spent_today,
            target_now=target,
            daily_budget=line_item.daily_budget,
            spent_lifetime=spent_lifetime,
            lifetime_budget=line_item.lifetime_budget,
            state=_pacing_state(
                spent=spent_today,
                target=target,
                daily_budget=line_item.daily_budget,
                asap=line_item.pacing == LineItem.Pacing.ASAP,
                live=live,
            ),
        )
    return result


def campaign_pacing(
    *, advertiser: Advertiser, campaigns: list[Campaign], at: dt.datetime | None = None
) -> dict[int, Delivery]:
    """Delivery against goal of the account's `campaigns`: the sums over each one's line items
    that are not archived (its targets count only line items delivering now). One query and
    one counter read, whatever the number of campaigns."""
    at = at or timezone.now()
    statuses = {campaign.pk: campaign.status for campaign in campaigns}
    line_items = list(
        LineItem.objects.filter(advertiser=advertiser, campaign_id__in=list(statuses))
        .exclude(status=DeliveryStatus.ARCHIVED)
        .only(
            "advertiser_id",
            "campaign_id",
            "status",
            "start_at",
            "end_at",
            "daily_budget",
            "lifetime_budget",
            "pacing",
        )
    )
    today, share = _day_share(advertiser, at)
    spend = line_item_spend(advertiser=advertiser, line_items=line_items, day=today)
    sums: dict[int, dict[str, Decimal]] = {}
    asap: dict[int, bool] = {}
    for line_item in line_items:
        total = sums.setdefault(
            line_item.campaign_id,
            dict.fromkeys(
                ("spent_today", "target_now", "daily_budget", "spent_lifetime", "lifetime_budget"),
                Decimal(0),
            ),
        )
        spent_today, spent_lifetime = (Decimal(micros) / MICROS for micros in spend[line_item.pk])
        total["spent_today"] += spent_today
        total["spent_lifetime"] += spent_lifetime
        total["lifetime_budget"] += line_item.lifetime_budget
        if _is_live(line_item, statuses[line_item.campaign_id], at):
            total["target_now"] += line_item.daily_budget * share
            total["daily_budget"] += line_item.daily_budget
            asap.setdefault(line_item.campaign_id, True)
            asap[line_item.campaign_id] &= line_item.pacing == LineItem.Pacing.ASAP
    result = {}
    for campaign_id, total in sums.items():
        live = bool(total["daily_budget"])
        result[campaign_id] = Delivery(
            **total,
            state=_pacing_state(
                spent=total["spent_today"],
                target=total["target_now"],
                daily_budget=total["daily_budget"],
                asap=asap.get(campaign_id, False),
                live=live,
            ),
        )
    return result


def decision_counts(*, day: dt.date) -> tuple[int, int]:
    """Staff only: (decisions made, decisions that returned no ad) on a UTC `day`; (0, 0),
    unknown, while Redis is down (decisions are counted nowhere else)."""
    values = _read([keys.decisions(day), keys.unfilled(day)])
    if values is None:
        return 0, 0
    decisions, unfilled = values
    return decisions, unfilled


def decision_latency(*, minutes: int = 5, at: dt.datetime | None = None) -> dict:
    """Staff only: decision latency percentiles over the last `minutes` (all processes);
    unknown (no decisions, no percentiles) while Redis is down."""
    try:
        return latency.latency_percentiles(minutes=minutes, at=at)
    except DeliveryStateUnavailable:
        return {"decisions": 0, "p50_ms": None, "p99_ms": None}
