"""Writes to the tenant's demand. Every function validates fully before it saves, so the
web app, the API, admin actions and the data commands all get the same rules."""

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ads.decisioning.index import index_changed
from ads.models import Advertiser, Campaign, Creative, DeliveryStatus, LineItem, Membership
from ads.services.audit import SYSTEM, Actor, audit_record, audit_record_archived, audit_stored
from catalog.models import Genre, Title

Demand = TypeVar("Demand", Campaign, LineItem, Creative)


def _save(
    instance: Demand,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    relations: Mapping[str, Iterable[Any]] | None = None,
) -> Demand:
    """Validate `instance` (its fields, then its cross-field rules), save it and its
    many-to-many relations, and record what changed since `before` (None: a creation) in the
    audit trail, in one transaction."""
    instance.full_clean()
    with transaction.atomic():
        instance.save()
        for field, values in (relations or {}).items():
            getattr(instance, field).set(values)
        audit_record(item=instance, actor=actor, before=before)
    return instance


def advertiser_create(
    *, name: str, slug: str, timezone: str = "UTC", currency: str = "USD"
) -> Advertiser:
    """Create an advertiser account (staff do this, in admin or the seed command)."""
    advertiser = Advertiser(name=name, slug=slug, timezone=timezone, currency=currency)
    advertiser.full_clean()
    advertiser.save()
    return advertiser


def membership_set(*, advertiser: Advertiser, user: User, role: str) -> Membership:
    """Give `user` the `role` in `advertiser`, creating or changing the membership."""
    if role not in Membership.Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    membership, _ = Membership.objects.update_or_create(
        advertiser=advertiser, user=user, defaults={"role": role}
    )
    return membership


def campaign_create(
    *,
    advertiser: Advertiser,
    name: str,
    start_date: date,
    end_date: date | None = None,
    objective: str = Campaign.Objective.AWARENESS,
    status: str = DeliveryStatus.ACTIVE,
    actor: Actor = SYSTEM,
) -> Campaign:
    """Create a campaign; raises ValidationError naming each bad field."""
    campaign = Campaign(
        advertiser=advertiser,
        name=name,
        objective=objective,
        start_date=start_date,
        end_date=end_date,
        status=status,
    )
    return _save(campaign, actor=actor, before=None)


def campaign_update(*, campaign: Campaign, actor: Actor = SYSTEM, **changes: Any) -> Campaign:
    """Change a campaign's name, objective or dates. An archived campaign is read-only, and
    new dates must still hold every line item's flight."""
    _refuse_archived(campaign)
    before = audit_stored(campaign)
    for field, value in changes.items():
        if field not in {"name", "objective", "start_date", "end_date"}:
            raise ValidationError({field: "This field cannot be changed here."})
        setattr(campaign, field, value)
    campaign.full_clean()
    outside = [
        line_item.name
        for line_item in campaign.line_items.exclude(status=DeliveryStatus.ARCHIVED)
        if _flight_outside(line_item, campaign)
    ]
    if outside:
        raise ValidationError(
            {
                "start_date": f"These line items would fall outside the campaign's dates: "
                f"{', '.join(sorted(outside))}."
            }
        )
    return _save(campaign, actor=actor, before=before)


def _flight_outside(line_item: LineItem, campaign: Campaign) -> bool:
    line_item.campaign = campaign
    try:
        line_item.clean()
    except ValidationError as error:
        return "start_at" in error.message_dict or "end_at" in error.message_dict
    return False


def _line_item_targeting_check(
    include_titles: Iterable[Title], exclude_titles: Iterable[Title]
) -> None:
    both = {title.pk for title in include_titles} & {title.pk for title in exclude_titles}
    if both:
        raise ValidationError({"exclude_titles": "A title cannot be both included and excluded."})


def line_item_create(
    *,
    advertiser: Advertiser,
    campaign: Campaign,
    name: str,
    start_at: datetime,
    bid: Decimal,
    daily_budget: Decimal,
    lifetime_budget: Decimal,
    end_at: datetime | None = None,
    pricing: str = LineItem.Pricing.CPM,
    pacing: str = LineItem.Pacing.EVEN,
    frequency_cap_hour: int | None = None,
    frequency_cap_day: int | None = None,
    frequency_cap_lifetime: int | None = None,
    target_maturity_ratings: list[str] | None = None,
    target_regions: list[str] | None = None,
    target_devices: list[str] | None = None,
    target_age_bands: list[str] | None = None,
    target_dayparts: list[str] | None = None,
    target_genres: Iterable[Genre] = (),
    include_titles: Iterable[Title] = (),
    exclude_titles: Iterable[Title] = (),
    status: str = DeliveryStatus.ACTIVE,
    actor: Actor = SYSTEM,
) -> LineItem:
    """Create a line item under `campaign`, which must belong to `advertiser`."""
    _refuse_archived(campaign)
    include_titles, exclude_titles = list(include_titles), list(exclude_titles)
    _line_item_targeting_check(include_titles, exclude_titles)
    line_item = LineItem(
        advertiser=advertiser,
        campaign=campaign,
        name=name,
        start_at=start_at,
        end_at=end_at,
        pricing=pricing,
        bid=bid,
        daily_budget=daily_budget,
        lifetime_budget=lifetime_budget,
        pacing=pacing,
        frequency_cap_hour=frequency_cap_hour,
        frequency_cap_day=frequency_cap_day,
        frequency_cap_lifetime=frequency_cap_lifetime,
        target_maturity_ratings=target_maturity_ratings or [],
        target_regions=target_regions or [],
        target_devices=target_devices or [],
        target_age_bands=target_age_bands or [],
        target_dayparts=target_dayparts or [],
        status=status,
    )
    return _save(
        line_item,
        actor=actor,
        before=None,
        relations={
            "target_genres": list(target_genres),
            "include_titles": include_titles,
            "exclude_titles": exclude_titles,
        },
    )


def line_item_update(*, line_item: LineItem, actor: Actor = SYSTEM, **changes: Any) -> LineItem:
    """Change a line item's settings or targeting; its campaign and advertiser stay."""
    _refuse_archived(line_item)
    before = audit_stored(line_item)
    relations = {
        field: list(changes.pop(field))
        for field in LineItem.TARGETING_RELATIONS
        if field in changes
    }
    _line_item_targeting_check(
        relations.get("include_titles", line_item.include_titles.all()),
        relations.get("exclude_titles", line_item.exclude_titles.all()),
    )
    for field, value in changes.items():
        if field not in LineItem.EDITABLE_FIELDS:
            raise ValidationError({field: "This field cannot be changed here."})
        setattr(line_item, field, value)
    return _save(line_item, actor=actor, before=before, relations=relations)


def creative_create(
    *,
    advertiser: Advertiser,
    line_item: LineItem,
    name: str,
    media_url: str,
    click_url: str,
    category: str,
    duration_seconds: int = Creative.Duration.STANDARD,
    status: str = DeliveryStatus.ACTIVE,
    actor: Actor = SYSTEM,
) -> Creative:
    """Create a creative for `line_item`, which must belong to `advertiser`."""
    _refuse_archived(line_item)
    creative = Creative(
        advertiser=advertiser,
        line_item=line_item,
        name=name,
        media_url=media_url,
        click_url=click_url,
        category=category,
        duration_seconds=duration_seconds,
        status=status,
    )
    return _save(creative, actor=actor, before=None)


def creative_update(*, creative: Creative, actor: Actor = SYSTEM, **changes: Any) -> Creative:
    """Change a creative's name, media, click URL, category or duration."""
    _refuse_archived(creative)
    before = audit_stored(creative)
    for field, value in changes.items():
        if field not in {"name", "media_url", "click_url", "category", "duration_seconds"}:
            raise ValidationError({field: "This field cannot be changed here."})
        setattr(creative, field, value)
    return _save(creative, actor=actor, before=before)


def delivery_status_set(*, item: Demand, status: str, actor: Actor = SYSTEM) -> Demand:
    """Pause, resume or archive a campaign, line item or creative.

    Archiving is final: an archived item stays archived and can no longer be edited, and
    archiving a campaign or line item archives everything under it. Nothing under an archived
    campaign or line item can be resumed.
    """
    if status not in DeliveryStatus.values:
        raise ValidationError({"status": f"Unknown status {status!r}."})
    if item.status == status:
        return item
    _refuse_archived(item)
    for parent in _parents(item):
        _refuse_archived(parent)
    before = audit_stored(item)
    with transaction.atomic():
        item.status = status
        item.save(update_fields=["status", "updated_at"])
        audit_record(item=item, actor=actor, before=before)
        if status == DeliveryStatus.ARCHIVED:
            # Archiving is final for what hangs below too.
            children: list = []
            if isinstance(item, Campaign):
                children = [
                    LineItem.objects.filter(campaign=item),
                    Creative.objects.filter(line_item__campaign=item),
                ]
            elif isinstance(item, LineItem):
                children = [Creative.objects.filter(line_item=item)]
            for queryset in children:
                live = queryset.exclude(status=DeliveryStatus.ARCHIVED)
                audit_record_archived(items=list(live), actor=actor)
                live.update(status=DeliveryStatus.ARCHIVED, updated_at=timezone.now())
            index_changed()  # bulk updates send no signals
    return item


def _parents(item: Campaign | LineItem | Creative) -> list[Campaign | LineItem]:
    if isinstance(item, Creative):
        return [item.line_item, item.line_item.campaign]
    if isinstance(item, LineItem):
        return [item.campaign]
    return []


def _refuse_archived(item: Campaign | LineItem | Creative) -> None:
    if item.is_archived:
        kind = item._meta.verbose_name
        raise ValidationError(f"The {kind} “{item}” is archived; it cannot change.")
