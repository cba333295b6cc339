"""Reads of the ads app. Every read of a tenant-owned row takes `advertiser=` and never
returns another account's rows: an id from another account raises DoesNotExist (a 404).

Accounts, campaigns, line items and creatives are here; `delivery` reads the delivery state
for the dashboards and the lists (live totals, spend, delivery against goal, latency: no other
app reads counters or builds their keys); `reach` estimates what a targeting can reach."""

from datetime import date, datetime, time, timedelta

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Case, Count, F, Q, QuerySet, Sum, Value, When

from ads.decisioning.diagnosis import Check, line_item_diagnosis
from ads.models import (
    AccountKey,
    Advertiser,
    Campaign,
    Creative,
    DeliveryStatus,
    LineItem,
    Membership,
)


def advertisers_for_user(*, user: User | AnonymousUser) -> QuerySet[Advertiser]:
    """The active accounts `user` is a member of."""
    if not isinstance(user, User):
        return Advertiser.objects.none()
    return Advertiser.objects.filter(memberships__user=user, is_active=True).order_by("name")


def membership_get(*, user: User | AnonymousUser, advertiser_slug: str) -> Membership:
    """The user's membership in the account with this slug; DoesNotExist if there is none, or
    if the user or the account was deactivated (a live socket asks again at every update)."""
    if not isinstance(user, User):
        raise Membership.DoesNotExist
    return Membership.objects.select_related("advertiser").get(
        user=user,
        user__is_active=True,
        advertiser__slug=advertiser_slug,
        advertiser__is_active=True,
    )


def _visible(queryset: QuerySet, include_archived: bool) -> QuerySet:
    return queryset if include_archived else queryset.exclude(status=DeliveryStatus.ARCHIVED)


# The sort keys of the list pages; "-key" sorts the other way. Status sorts live first.
SORT_KEYS = ("name", "start", "budget", "status")
STATUS_RANK = Case(
    When(status=DeliveryStatus.ACTIVE, then=Value(0)),
    When(status=DeliveryStatus.PAUSED, then=Value(1)),
    default=Value(2),
)


def _narrowed(
    queryset: QuerySet,
    *,
    include_archived: bool,
    search: str,
    status: str,
    sort: str,
    sort_fields: dict[str, str],
) -> QuerySet:
    """A list narrowed the way its page asks: a status (archived rows only when asked for,
    by status or by `include_archived`), a name containing `search`, sorted by one of
    SORT_KEYS (`sort_fields` names each key's field), newest first otherwise."""
    queryset = queryset.filter(status=status) if status else _visible(queryset, include_archived)
    if search.strip():
        queryset = queryset.filter(name__icontains=search.strip())
    key = sort.removeprefix("-")
    if key in sort_fields:
        field = sort_fields[key]
        if key == "status":
            queryset = queryset.annotate(status_rank=STATUS_RANK)
        descending = sort.startswith("-")
        ordering = F(field).desc(nulls_last=True) if descending else F(field).asc(nulls_last=True)
        return queryset.order_by(ordering, "-created_at", "-id")
    # Aggregating drops the model's default order: say it again, for stable pages.
    return queryset.order_by("-created_at", "-id")


def campaign_list(
    *,
    advertiser: Advertiser,
    include_archived: bool = False,
    search: str = "",
    status: str = "",
    sort: str = "",
    starts_from: date | None = None,
    starts_until: date | None = None,
) -> QuerySet[Campaign]:
    """The account's campaigns, newest first (or by `sort`, see `_narrowed`), with their
    count of line items and the daily budget of their live line items; starting on or
    between `starts_from` and `starts_until` when given."""
    live = ~Q(line_items__status=DeliveryStatus.ARCHIVED)
    campaigns = Campaign.objects.filter(advertiser=advertiser)
    if starts_from is not None:
        campaigns = campaigns.filter(start_date__gte=starts_from)
    if starts_until is not None:
        campaigns = campaigns.filter(start_date__lte=starts_until)
    campaigns = campaigns.annotate(
        line_item_count=Count("line_items", filter=live),
        daily_budget=Sum("line_items__daily_budget", filter=live),
    )
    return _narrowed(
        campaigns,
        include_archived=include_archived,
        search=search,
        status=status,
        sort=sort,
        sort_fields={
            "name": "name",
            "start": "start_date",
            "budget": "daily_budget",
            "status": "status_rank",
        },
    )


def campaign_get(*, advertiser: Advertiser, campaign_id: int) -> Campaign:
    return Campaign.objects.get(advertiser=advertiser, pk=campaign_id)


def campaign_choices(*, advertiser: Advertiser) -> list[tuple[int, str]]:
    """(id, name) of each of the account's campaigns, archived too, by name: for filters."""
    return list(
        Campaign.objects.filter(advertiser=advertiser).order_by("name").values_list("pk", "name")
    )


def line_item_list(
    *,
    advertiser: Advertiser,
    campaign_id: int | None = None,
    include_archived: bool = False,
    search: str = "",
    status: str = "",
    sort: str = "",
    starts_from: date | None = None,
    starts_until: date | None = None,
) -> QuerySet[LineItem]:
    """The account's line items (of one campaign when given), newest first (or by `sort`,
    see `_narrowed`; budget is the daily budget), with their count of creatives; starting on
    or between the account's local days `starts_from` and `starts_until` when given."""
    line_items = (
        LineItem.objects.filter(advertiser=advertiser)
        .select_related("campaign")
        .annotate(
            creative_count=Count("creatives", filter=~Q(creatives__status=DeliveryStatus.ARCHIVED))
        )
    )
    if campaign_id is not None:
        line_items = line_items.filter(campaign_id=campaign_id)
    if starts_from is not None:
        line_items = line_items.filter(start_at__gte=_local_midnight(starts_from, advertiser))
    if starts_until is not None:
        next_day = starts_until + timedelta(days=1)
        line_items = line_items.filter(start_at__lt=_local_midnight(next_day, advertiser))
    return _narrowed(
        line_items,
        include_archived=include_archived,
        search=search,
        status=status,
        sort=sort,
        sort_fields={
            "name": "name",
            "start": "start_at",
            "budget": "daily_budget",
            "status": "status_rank",
        },
    )


def _local_midnight(day: date, advertiser: Advertiser) -> datetime:
    return datetime.combine(day, time(0), tzinfo=advertiser.tzinfo)


def line_item_get(*, advertiser: Advertiser, line_item_id: int) -> LineItem:
    return (
        LineItem.objects.select_related("campaign")
        .prefetch_related("target_genres", "include_titles", "exclude_titles")
        .get(advertiser=advertiser, pk=line_item_id)
    )


def creative_list(
    *,
    advertiser: Advertiser,
    line_item_id: int | None = None,
    campaign_id: int | None = None,
    include_archived: bool = False,
    search: str = "",
    status: str = "",
    sort: str = "",
) -> QuerySet[Creative]:
    """The account's creatives (of one line item, or one campaign, when given), newest first
    (or by `sort`, see `_narrowed`: start and budget are their line item's)."""
    creatives = Creative.objects.filter(advertiser=advertiser).select_related(
        "line_item", "line_item__campaign"
    )
    if line_item_id is not None:
        creatives = creatives.filter(line_item_id=line_item_id)
    if campaign_id is not None:
        creatives = creatives.filter(line_item__campaign_id=campaign_id)
    return _narrowed(
        creatives,
        include_archived=include_archived,
        search=search,
        status=status,
        sort=sort,
        sort_fields={
            "name": "name",
            "start": "line_item__start_at",
            "budget": "line_item__daily_budget",
            "status": "status_rank",
        },
    )


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


# The delivery state's reads, for the dashboards (analytics) and the lists.
from ads.selectors.delivery import (  # noqa: E402
    LATENCY_BUCKETS_MS,
    MICROS,
    Delivery,
    campaign_pacing,
    decision_counts,
    decision_latency,
    line_item_pacing,
    line_item_spend,
    live_totals,
    platform_live_totals,
)

__all__ = [
    "LATENCY_BUCKETS_MS",
    "MICROS",
    "Delivery",
    "account_summary",
    "advertisers_for_user",
    "campaign_choices",
    "campaign_get",
    "campaign_list",
    "campaign_pacing",
    "creative_click_url",
    "creative_get",
    "creative_list",
    "decision_counts",
    "decision_latency",
    "line_item_delivery",
    "line_item_get",
    "line_item_list",
    "line_item_pacing",
    "line_item_spend",
    "live_totals",
    "membership_get",
    "platform_live_totals",
]


def account_key_list(*, advertiser: Advertiser) -> QuerySet[AccountKey]:
    """The account's API keys, revoked ones too, newest first, with who made them."""
    return AccountKey.objects.filter(advertiser=advertiser).select_related("created_by")


def account_key_get(*, advertiser: Advertiser, key_id: int) -> AccountKey:
    return AccountKey.objects.select_related("advertiser").get(advertiser=advertiser, pk=key_id)
