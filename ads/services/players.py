"""Public player ids: the integrations that fetch VAST and VMAP tags (`ads.vast`).

A tag names its player on every request, so the lookup is cached in the process like the
platform keys are: a deactivated player stops getting ads within CACHE_SECONDS."""

from __future__ import annotations

import re
import time
from typing import NamedTuple

from ads.models import Player

CACHE_SECONDS = 30.0
KNOWN_KEPT = 1024
_PUBLIC_ID = re.compile(r"[-a-zA-Z0-9_]{1,64}", re.ASCII)


class PlayerState(NamedTuple):
    public_id: str
    is_active: bool
    requests_per_minute: int


# public id → (state or None when unknown, checked at)
_known: dict[str, tuple[PlayerState | None, float]] = {}


def player_ensure(*, public_id: str, name: str) -> tuple[Player, bool]:
    """The player with this public id, created (active) when missing; True when created. An
    existing player keeps its name, limit and switch: staff may have changed them."""
    return Player.objects.get_or_create(public_id=public_id, defaults={"name": name})


def player_for_tag(*, public_id: str) -> PlayerState | None:
    """The player a tag names, active or not; None when no player has this id."""
    if not _PUBLIC_ID.fullmatch(public_id):  # a SlugField of 64: no such player can exist
        return None
    now = time.monotonic()
    cached = _known.get(public_id)
    if cached is not None and now - cached[1] < CACHE_SECONDS:
        return cached[0]
    row = (
        Player.objects.filter(public_id=public_id)
        .values_list("public_id", "is_active", "requests_per_minute")
        .first()
    )
    state = PlayerState(*row) if row is not None else None
    if len(_known) >= KNOWN_KEPT:  # ids forged by the million must not grow it without end
        _known.clear()
    _known[public_id] = (state, now)
    return state


def players_forget() -> None:
    """Drop the process cache (tests, and staff's edits in admin, which run in this process)."""
    _known.clear()
