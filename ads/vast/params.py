"""The ad tag's query parameters, read without a serializer (the tag is as hot as the JSON
decision). Names follow the ad servers integrators already know (SpringServe's `pod_max_dur`
and `pod_ad_slots`, everyone's `cb`); parameters this module does not know are ignored, since
players append their own (`correlator`, consent strings)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ads.decisioning.engine import DecisionRequest
from catalog.models import Device, Region

DEVICES = frozenset(Device.values)
REGIONS = frozenset(Region.values)

# What each parameter means, for the README and the try-it page.
PARAMETERS = {
    "player": "Your public player id, set by staff in admin (required).",
    "viewer": "The viewer's external id, as in the catalog (required).",
    "title": "The title's id (required).",
    "break": "The ad break's id; or give `offset` instead.",
    "offset": "The ad break's offset in the title, in seconds (0 is the pre-roll).",
    "device": f"One of {', '.join(sorted(DEVICES))} (required).",
    "region": "The viewer's region, if not the one in their profile.",
    "pod_max_dur": "The most seconds of ads the player will play here (15 to 600).",
    "pod_ad_slots": "The most ads the player will play here (1 to 10).",
    "engagement": "The session's live engagement score, 0 to 1, for the platform's ad load "
    "policy (a session at risk may get a shorter pod, or none).",
    "cb": "A cache-buster (any value, ignored): answers are never cached.",
}


class NotAnAdRequest(ValueError):
    """The request names no player: not an ad tag at all (a 400)."""


class TagError(ValueError):
    """An ad tag with a bad parameter: answered with a VAST error the player understands."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Tag:
    player: str
    viewer: str
    title: int
    device: str
    region: str | None = None


def _integer(query: Mapping[str, str], name: str, smallest: int, largest: int | None) -> int:
    raw = query[name]
    # isdecimal() also admits other scripts' digits; an ad tag is ASCII.
    if not (raw.isascii() and raw.isdecimal()) or len(raw) > 9:
        raise TagError(name, f"{name} must be a whole number, not {raw[:20]!r}.")
    value = int(raw)
    if value < smallest or (largest is not None and value > largest):
        bounds = f"at least {smallest}" if largest is None else f"{smallest} to {largest}"
        raise TagError(name, f"{name} must be {bounds}.")
    return value


def _optional_integer(
    query: Mapping[str, str], name: str, smallest: int, largest: int | None
) -> int | None:
    return _integer(query, name, smallest, largest) if query.get(name) else None


def _optional_score(query: Mapping[str, str], name: str) -> float | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        value = float(raw) if raw.isascii() and len(raw) <= 12 else None
    except ValueError:
        value = None
    if value is None or not 0.0 <= value <= 1.0:  # NaN fails the comparison too
        raise TagError(name, f"{name} must be a number from 0 to 1, not {raw[:20]!r}.")
    return value


def player_of(query: Mapping[str, str]) -> str:
    """The player id a request names; NotAnAdRequest without one."""
    player = query.get("player", "")
    if not player:
        raise NotAnAdRequest("An ad tag names its player: player=<public id>.")
    return player


def tag_of(query: Mapping[str, str]) -> Tag:
    """What a VAST or VMAP tag asks for: player, viewer, title, device (and region)."""
    player = player_of(query)
    viewer = query.get("viewer", "")
    if not viewer:
        raise TagError("viewer", "viewer (the viewer's external id) is required.")
    if len(viewer) > 64 or "\x00" in viewer or viewer != viewer.strip():
        raise TagError("viewer", "viewer must be an external id of at most 64 characters.")
    if not query.get("title"):
        raise TagError("title", "title (the title's id) is required.")
    title = _integer(query, "title", 1, None)
    device = query.get("device", "")
    if device not in DEVICES:
        raise TagError("device", f"device must be one of {', '.join(sorted(DEVICES))}.")
    region = query.get("region") or None
    if region is not None and region not in REGIONS:
        raise TagError("region", f"region must be one of {', '.join(sorted(REGIONS))}.")
    return Tag(player=player, viewer=viewer, title=title, device=device, region=region)


def decision_request_of(query: Mapping[str, str]) -> tuple[Tag, DecisionRequest]:
    """The tag and the decision a VAST tag asks for; NotAnAdRequest or TagError."""
    tag = tag_of(query)
    ad_break = _optional_integer(query, "break", 1, None)
    offset = _optional_integer(query, "offset", 0, None)
    if ad_break is None and offset is None:
        raise TagError("break", "Give break (the ad break's id) or offset (seconds).")
    return tag, DecisionRequest(
        viewer_id=tag.viewer,
        title_id=tag.title,
        device=tag.device,
        ad_break_id=ad_break,
        offset_seconds=None if ad_break is not None else offset,
        region=tag.region,
        pod_size=_optional_integer(query, "pod_ad_slots", 1, 10),
        max_duration_seconds=_optional_integer(query, "pod_max_dur", 15, 600),
        engagement_score=_optional_score(query, "engagement"),
    )
