"""Reads of tenant data. Every read of a tenant-owned row takes `advertiser=` and never
returns another account's rows: an id from another account raises DoesNotExist (a 404).
The delivery state's reads for the dashboards (live totals, spend, latency) are here too:
no other app reads counters or builds their keys."""

import datetime as dt

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Q, QuerySet

from ads.decisioning.diagnosis import Check, line_item_diagnosis
from ads.delivery import counters as delivery_counters
from ads.delivery import keys, latency
from ads.delivery.counters import counters
from ads.models import Advertiser, Campaign, Creative, DeliveryStatus, LineItem, Membership

MICROS = delivery_counters.MICROS  # counters keep money in millionths of the currency unit
LATENCY_BUCKETS_MS = latency.BUCKETS_MS  # upper bounds of the decision latency histogram


def advertisers_for_user(*, user: User | AnonymousUser) -> QuerySet[Advertiser]:
    """The active accounts `user` is a member of."""
    if not isinstance(user, User):
        return Advertiser.objects.none()
    return Advertiser.objects.filter(memberships__user=user, is_active=True).order_by("name")


def membership_get(*, user: User | AnonymousUser, advertiser_slug: str) -> Membership:
    """The user's membership in the account with this slug; DoesNotExist if there is none."""
    if not isinstance(user, User):
        raise Membership.DoesNotExist
    return Membership.objects.select_related("advertiser").get(
        user=user, advertiser__slug=advertiser_slug, advertiser__is_active=True
    )


def _visible(queryset: QuerySet, include_archived: bool) -> QuerySet:
    return queryset if include_archived else queryset.exclude(status=DeliveryStatus.ARCHIVED)


def campaign_list(*, advertiser: Advertiser, include_archived: bool = False) -> QuerySet[Campaign]:
    """The account's campaigns, newest first, with their count of line items."""
    campaigns = Campaign.objects.filter(advertiser=advertiser).annotate(
        line_item_count=Count("line_items", filter=~Q(line_items__status=DeliveryStatus.ARCHIVED))
    )
    return _visible(campaigns, include_archived)


def campaign_get(*, advertiser: Advertiser, campaign_id: int) -> Campaign:
    return Campaign.objects.get(advertiser=advertiser, pk=campaign_id)


def line_item_list(
    *, advertiser: Advertiser, campaign_id: int | None = None, include_archived: bool = False
) -> QuerySet[LineItem]:
    """The account's line items (of one campaign when given), with their count of creatives."""
    line_items = (
        LineItem.objects.filter(advertiser=advertiser)
        .select_related("campaign")
        .annotate(
            creative_count=Count("creatives", filter=~Q(creatives__status=DeliveryStatus.ARCHIVED))
        )
    )
    if campaign_id is not None:
        line_items = line_items.filter(campaign_id=campaign_id)
    return _visible(line_items, include_archived)


def line_item_get(*, advertiser: Advertiser, line_item_id: int) -> LineItem:
    return (
        LineItem.objects.select_related("campaign")
        .prefetch_related("target_genres", "include_titles", "exclude_titles")
        .get(advertiser=advertiser, pk=line_item_id)
    )


def creative_list(
    *, advertiser: Advertiser, line_item_id: int | None = None, include_archived: bool = False
) -> QuerySet[Creative]:
    creatives = Creative.objects.filter(advertiser=advertiser).select_related(
        "line_item", "line_item__campaign"
    )
    if line_item_id is not None:
        creatives = creatives.filter(line_item_id=line_item_id)
    return _visible(creatives, include_archived)


def creative_get(*, advertiser: Advertiser, creative_id: int) -> Creative:
    return Creative.objects.select_related("line_item", "line_item__campaign").get(
        advertiser=advertiser, pk=creative_id
    )


def account_summary(*, advertiser: Advertiser) -> dict[str, dict[str, int]]:
    """Counts of the account's campaigns, line items and creatives by status."""
    summary = {}
    for key, model in (("campaigns", Campaign), ("line_items", LineItem), ("creatives", Creative)):
        counts = dict(
            model.objects.filter(advertiser=advertiser)
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        summary[key] = {status: counts.get(status, 0) for status in DeliveryStatus.values}
    return summary


def creative_click_url(*, advertiser_id: int, creative_id: int) -> str:
    """A creative's click-through URL, for a tracking link whose signed token names both."""
    return Creative.objects.values_list("click_url", flat=True).get(
        advertiser_id=advertiser_id, pk=creative_id
    )


def line_item_delivery(*, advertiser: Advertiser, line_item_id: int) -> list[Check]:
    """Why the account's line item delivers or not, right now: the decision engine's checks."""
    line_item = LineItem.objects.select_related("campaign", "advertiser").get(
        advertiser=advertiser, pk=line_item_id
    )
    return line_item_diagnosis(line_item)


# -- the delivery state (live counters and latency), for the dashboards --------------------


def live_totals(*, advertiser: Advertiser, day: dt.date) -> dict[str, int]:
    """The account's running totals for its local `day` (impressions, clicks, completes, and
    spend in micros), from the live counters: one read."""
    values = counters().get_many([keys.live(advertiser.pk, day, m) for m in keys.LIVE_METRICS])
    return dict(zip(keys.LIVE_METRICS, values, strict=True))


def platform_live_totals(*, day: dt.date) -> dict[str, int]:
    """Staff only: the platform's running totals for a UTC `day` (spend in micros)."""
    values = counters().get_many([keys.live_platform(day, m) for m in keys.LIVE_METRICS])
    return dict(zip(keys.LIVE_METRICS, values, strict=True))


def line_item_spend(
    *, advertiser: Advertiser, line_items: list[LineItem], day: dt.date
) -> dict[int, tuple[int, int]]:
    """(spent on the account's local `day`, spent in the line item's lifetime), in micros,
    for each of the account's `line_items`, from the live counters: one read. Other accounts'
    line items are left out."""
    own = [line_item.pk for line_item in line_items if line_item.advertiser_id == advertiser.pk]
    values = counters().get_many(
        [key for pk in own for key in (keys.spent_day(pk, day), keys.spent_lifetime(pk))]
    )
    return {pk: (values[2 * i], values[2 * i + 1]) for i, pk in enumerate(own)}


def decision_counts(*, day: dt.date) -> tuple[int, int]:
    """Staff only: (decisions made, decisions that returned no ad) on a UTC `day`."""
    decisions, unfilled = counters().get_many([keys.decisions(day), keys.unfilled(day)])
    return decisions, unfilled


def decision_latency(*, minutes: int = 5, at: dt.datetime | None = None) -> dict:
    """Staff only: decision latency percentiles over the last `minutes` (all processes)."""
    return latency.latency_percentiles(minutes=minutes, at=at)
