"""Platform API keys: for the player and SSAI integrations that ask for decisions and report
events. A key is shown once, when created; only its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
import time

from django.utils import timezone

from ads.models import PlatformKey

KEY_PREFIX = "il_"
CACHE_SECONDS = 30.0
LAST_USED_EVERY_SECONDS = 600.0

# Process-local cache: hash → (key id or None, checked at). Decisions must not query the
# database per request; a revoked key stops working within CACHE_SECONDS.
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
    digest = _digest(raw_key)
    now = time.monotonic()
    cached = _known.get(digest)
    if cached is not None and now - cached[1] < CACHE_SECONDS:
        key_id = cached[0]
    else:
        key_id = (
            PlatformKey.objects.filter(key_hash=digest, is_active=True)
            .values_list("pk", flat=True)
            .first()
        )
        _known[digest] = (key_id, now)
    if key_id is not None and now - _last_used.get(key_id, -LAST_USED_EVERY_SECONDS) >= (
        LAST_USED_EVERY_SECONDS
    ):
        _last_used[key_id] = now
        PlatformKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())
    return key_id


def platform_keys_forget() -> None:
    """Drop the process cache (tests, and right after staff revoke a key in this process)."""
    _known.clear()
    _last_used.clear()
