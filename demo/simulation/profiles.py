"""What the simulator knows about the things it simulates: plain, immutable records loaded
once from the catalog and the demand, so a simulated day runs without a query per event."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ViewerProfile:
    id: int
    external_id: str
    age_band: str
    gender: str
    region: str
    device: str  # the one the profile uses most
    is_kids: bool


@dataclass(frozen=True, slots=True)
class BreakProfile:
    id: int
    offset_seconds: int
    max_pod_duration_seconds: int


@dataclass(frozen=True, slots=True)
class TitleProfile:
    id: int
    kind: str
    genres: frozenset[str]  # genre slugs
    maturity_rating: str
    year: int | None
    duration_seconds: int
    breaks: tuple[BreakProfile, ...]  # by offset


@dataclass(frozen=True, slots=True)
class CreativeProfile:
    id: int
    advertiser_id: int
    category: str
    duration_seconds: int


@dataclass(frozen=True, slots=True)
class AdContext:
    """The moment an ad plays, as the viewer lives it."""

    local_hour: int  # 0-23 in the viewer's own time zone
    weekday: int  # 0 is Monday, in the viewer's time zone
    device: str  # the session's device (not always the profile's usual one)
    position: int  # 1-based place in the pod
    pod_size: int
    break_offset_seconds: int  # 0 is a pre-roll
    ads_before: int  # ads this session already played before this one
