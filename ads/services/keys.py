"""API keys, shown once when created; only their SHA-256 is stored.

Platform keys: for the player and SSAI integrations that ask for decisions and report events
(staff make them in admin). Account keys: for an advertiser account's own integrations, made
and revoked by the account's owners."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from ads.models import AccountKey, Advertiser, AuditEntry, Membership, PlatformKey
from ads.services.audit import Actor, audit_record, audit_stored
from config.db import LOST, retried_on_lost_connection

logger = logging.getLogger(__name__)

KEY_PREFIX = "il_"
ACCOUNT_KEY_PREFIX = "ila_"
CACHE_SECONDS = 30.0
LAST_USED_EVERY_SECONDS = 600.0
KNOWN_KEPT = 1024
# A platform key is KEY_PREFIX and 43 characters: anything much longer cannot be one, and is
# neither looked up nor kept (the cache holds keys as sent, and a header may be 64 KiB).
MAX_KEY_LENGTH = 64

# Process-local cache: key as sent → (key id or None, checked at). Decisions must not query
# the database per request; a revoked key stops working within CACHE_SECONDS. By the key as
# sent, not its hash: hashing it at every request was the largest single cost of the `api`
# process's own outside the engine (2.8 % of its Python, py-spy, session 15).
_known: dict[str, tuple[int | None, float]] = {}
_last_used: dict[int, float] = {}


def _digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def platform_key_create(*, name: str) -> tuple[PlatformKey, str]:
    """Create a key; returns it with the raw key, which is never shown again."""
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    key = PlatformKey.objects.create(
        name=name, prefix=raw_key[len(KEY_PREFIX) : len(KEY_PREFIX) + 8], key_hash=_digest(raw_key)
    )
    return key, raw_key


def platform_key_authenticate(*, raw_key: str) -> int | None:
    """The id of the active key `raw_key` is, or None."""
    if len(raw_key) > MAX_KEY_LENGTH:
        return None
    now = time.monotonic()
    cached = _known.get(raw_key)
    if cached is not None and now - cached[1] < CACHE_SECONDS:
        key_id = cached[0]
    else:
        digest = _digest(raw_key)
        try:
            key_id = retried_on_lost_connection(
                lambda: (
                    PlatformKey.objects.filter(key_hash=digest, is_active=True)
                    .values_list("pk", flat=True)
                    .first()
                )
            )
        except LOST:
            if cached is None:
                raise
            # The database is out of reach: the key this process knew a moment ago stays
            # known (the decision then degrades or is served), rather than every call failing.
            key_id = cached[0]
        if len(_known) >= KNOWN_KEPT:  # keys guessed by the million must not grow it for ever
            _known.clear()
        _known[raw_key] = (key_id, now)
    if key_id is not None and now - _last_used.get(key_id, -LAST_USED_EVERY_SECONDS) >= (
        LAST_USED_EVERY_SECONDS
    ):
        _last_used[key_id] = now
        try:
            retried_on_lost_connection(
                lambda: PlatformKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())
            )
        except LOST:  # bookkeeping: the next call after LAST_USED_EVERY_SECONDS records it
            logger.warning("Platform key %s: last use not recorded.", key_id, exc_info=True)
    return key_id


def platform_keys_forget() -> None:
    """Drop the process cache (tests, and right after staff revoke a key in this process)."""
    _known.clear()
    _last_used.clear()


def account_key_create(
    *, advertiser: Advertiser, created_by: User, name: str, scope: str
) -> tuple[AccountKey, str]:
    """A key acting for `advertiser` only; returns it with the raw key, never shown again.
    Only the account's owners make keys (PermissionDenied for anyone else)."""
    _require_owner(user=created_by, advertiser=advertiser)
    raw_key = ACCOUNT_KEY_PREFIX + secrets.token_urlsafe(32)
    start = len(ACCOUNT_KEY_PREFIX)
    with transaction.atomic():
        key = AccountKey.objects.create(
            advertiser=advertiser,
            name=name,
            scope=scope,
            prefix=raw_key[start : start + 8],
            key_hash=_digest(raw_key),
            created_by=created_by,
        )
        audit_record(item=key, actor=Actor.page(created_by), before=None)
    return key, raw_key


def account_key_revoke(
    *, key: AccountKey, revoked_by: User, actor: Actor | None = None
) -> AccountKey:
    """Revoke at once: the next request with the key is refused (nothing caches account keys).
    The account's owners revoke, and staff (a leaked key, in admin); revoking twice keeps the
    first time. `actor` says through which path (default: the owner's page)."""
    if not revoked_by.is_staff:
        _require_owner(user=revoked_by, advertiser=key.advertiser)
    before = audit_stored(key)
    with transaction.atomic():
        AccountKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        key.refresh_from_db(fields=["revoked_at"])
        audit_record(
            item=key,
            actor=actor or Actor.page(revoked_by),
            before=before,
            action=AuditEntry.Action.REVOKE,
        )
    return key


def account_key_authenticate(*, raw_key: str) -> AccountKey | None:
    """The active key `raw_key` is, with its advertiser, or None. One indexed query per
    request, so a revocation holds from the next one; the last use is written at most once
    every LAST_USED_EVERY_SECONDS."""
    key = (
        AccountKey.objects.select_related("advertiser")
        .filter(key_hash=_digest(raw_key), revoked_at__isnull=True, advertiser__is_active=True)
        .first()
    )
    if key is None:
        return None
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= (
        LAST_USED_EVERY_SECONDS
    ):
        AccountKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def _require_owner(*, user: User, advertiser: Advertiser) -> None:
    if not Membership.objects.filter(
        user=user, advertiser=advertiser, role=Membership.Role.OWNER
    ).exists():
        raise PermissionDenied("Only the account's owners manage its API keys.")
