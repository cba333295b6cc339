"""Reads of tenant data. Every read of a tenant-owned row takes `advertiser=` and never
returns another account's rows: an id from another account raises DoesNotExist (a 404)."""

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Q, QuerySet

from ads.decisioning.diagnosis import Check, line_item_diagnosis
from ads.models import Advertiser, Campaign, Creative, DeliveryStatus, LineItem, Membership


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
