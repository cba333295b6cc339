"""The audit trail: who changed an account's campaigns, line items, creatives and API keys,
when, through which path, and what changed (field: old → new).

The demand and key services record it as they save, so the pages, the API and admin (its
ModelAdmin.save_model hooks) all leave the same entries. A caller names who acts with an
`Actor`; a caller that names none (seed and demo commands, tests) acts as the platform.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import models

from ads.models import (
    AccountKey,
    AuditEntry,
    Campaign,
    Creative,
    DeliveryStatus,
    LineItem,
)

Audited = Campaign | LineItem | Creative | AccountKey
Snapshot = dict[str, Any]

# The fields whose changes are recorded, per kind: what a person can change.
TRACKED: dict[type[models.Model], tuple[str, ...]] = {
    Campaign: ("name", "objective", "start_date", "end_date", "status"),
    LineItem: (*LineItem.EDITABLE_FIELDS, "status"),
    Creative: ("name", "media_url", "click_url", "category", "duration_seconds", "status"),
    AccountKey: ("name", "scope", "revoked_at"),
}
OBJECT_TYPES = {
    Campaign: AuditEntry.ObjectType.CAMPAIGN,
    LineItem: AuditEntry.ObjectType.LINE_ITEM,
    Creative: AuditEntry.ObjectType.CREATIVE,
    AccountKey: AuditEntry.ObjectType.ACCOUNT_KEY,
}
# A change of delivery status alone is a pause, a resume or an archive.
STATUS_ACTIONS = {
    DeliveryStatus.PAUSED: AuditEntry.Action.PAUSE,
    DeliveryStatus.ACTIVE: AuditEntry.Action.RESUME,
    DeliveryStatus.ARCHIVED: AuditEntry.Action.ARCHIVE,
}


@dataclass(frozen=True)
class Actor:
    """Who acts, and through which path: `Actor.page(user)`, `Actor.api(key)`,
    `Actor.admin(user)`, or `SYSTEM`."""

    path: str
    user: User | None = None
    key: AccountKey | None = None

    @classmethod
    def page(cls, user: User) -> Actor:
        return cls(path=AuditEntry.Path.PAGE, user=user)

    @classmethod
    def api(cls, key: AccountKey) -> Actor:
        return cls(path=AuditEntry.Path.API, key=key)

    @classmethod
    def admin(cls, user: User) -> Actor:
        return cls(path=AuditEntry.Path.ADMIN, user=user)


SYSTEM = Actor(path=AuditEntry.Path.SYSTEM)


def _plain(value: Any) -> Any:
    """A value as JSON keeps it and a person reads it."""
    if value is None or isinstance(value, bool | int | str):
        return value
    # The same instant or amount read back from the database and typed into a form compare
    # equal: times in UTC, amounts without trailing zeros (2.5000 and 2.50 are 2.5).
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, Iterable):
        return sorted(str(_plain(item)) for item in value)
    return str(value)


def audit_stored(item: Audited) -> Snapshot:
    """The tracked fields' values as stored, before a change: read from the database, since
    the instance in hand may already carry the new values (a ModelForm sets them on its
    instance as it validates, in the pages and in admin)."""
    return audit_snapshot(type(item).objects.get(pk=item.pk))


def audit_snapshot(item: Audited) -> Snapshot:
    """The tracked fields' values on `item` (many-to-many from the database)."""
    values: Snapshot = {}
    for field in TRACKED[type(item)]:
        value = getattr(item, field)
        if isinstance(value, models.Manager):
            value = list(value.all()) if item.pk else []
        values[field] = _plain(value)
    return values


def audit_record(
    *,
    item: Audited,
    actor: Actor,
    before: Snapshot | None,
    action: str | None = None,
) -> AuditEntry | None:
    """Record what changed on `item` since `before` (None: it was just created). The action
    is `action` if given, else create, a pause / resume / archive when only the status
    changed, or update. Nothing is recorded for a save that changed nothing."""
    after = audit_snapshot(item)
    if before is None:
        changes = {field: [None, value] for field, value in after.items() if value not in ("", [])}
        action = action or AuditEntry.Action.CREATE
    else:
        changes = {
            field: [before[field], value]
            for field, value in after.items()
            if before.get(field) != value
        }
        if not changes:
            return None
        if action is None:
            action = AuditEntry.Action.UPDATE
            if list(changes) == ["status"]:
                action = STATUS_ACTIONS[changes["status"][1]]
    return AuditEntry.objects.create(
        advertiser_id=item.advertiser_id,
        object_type=OBJECT_TYPES[type(item)],
        object_id=item.pk,
        object_name=str(getattr(item, "name", item))[:200],
        action=action,
        changes=changes,
        user=actor.user,
        key=actor.key,
        path=actor.path,
    )


def audit_record_archived(*, items: Iterable[Campaign | LineItem | Creative], actor: Actor) -> None:
    """Entries for what an archive took down with it (a campaign's line items and creatives),
    each an archive of its own: they were archived by one bulk update, not one by one."""
    AuditEntry.objects.bulk_create(
        AuditEntry(
            advertiser_id=item.advertiser_id,
            object_type=OBJECT_TYPES[type(item)],
            object_id=item.pk,
            object_name=item.name[:200],
            action=AuditEntry.Action.ARCHIVE,
            changes={"status": [item.status, DeliveryStatus.ARCHIVED]},
            user=actor.user,
            key=actor.key,
            path=actor.path,
        )
        for item in items
    )
