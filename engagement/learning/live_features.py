"""The live engagement score's features: what a session's player reported up to a moment,
replayed into the state a staff member would read off the player (where it is, what the viewer
did), and nothing after that moment.

Pure functions of the events, so training (prefixes of finished sessions, cut at several
moments) and serving (an open session now) compute them the same way. The outcome events
(complete, abandon) end a session; a prefix never holds one, and `session_state` ignores
them should a caller pass them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

ENDING_KINDS = frozenset({"complete", "abandon"})
# The columns of the model's matrix, in order.
FEATURES = (
    "prior_logit",
    "elapsed_minutes",
    "position_share",
    "remaining_minutes",
    "start_share",
    "played_share",
    "pauses",
    "paused_minutes",
    "paused_now",
    "seeks_back",
    "seek_back_share",
    "skips",
    "skipped_share",
    "breaks_sat",
    "ads_sat",
    "in_ad_break",
    "duration_minutes",
)
PRIOR_CLIP = 1e-4


@dataclass(frozen=True)
class Playback:
    """One reported player event (as stored in PlaybackEvent)."""

    kind: str
    position_seconds: int
    at: datetime
    detail: dict[str, Any]


@dataclass
class SessionState:
    """Where a session stands at `at`: the player's position and state, and tallies of what
    the viewer did since the first play."""

    position: float = 0.0
    start_position: float = 0.0
    played_seconds: float = 0.0
    state: str = "starting"  # starting, playing, paused, ad
    pauses: int = 0
    paused_seconds: float = 0.0
    seeks_back: int = 0
    seek_back_seconds: float = 0.0
    skips: int = 0
    skipped_seconds: float = 0.0
    breaks_sat: int = 0
    ads_sat: int = 0


def session_state(
    events: Iterable[Playback], *, duration_seconds: int, at: datetime
) -> SessionState:
    """Replay `events` (in time order) up to `at`: events after `at` and ending events are
    ignored. Between events the position runs at 1× while playing, stands still while paused,
    and waits out an ad break's `pod_seconds` (detail) before running again; each event puts
    the position where the player said it was (a seek or skip: its `to`). A player that
    reports each ad (`ad_start`, `ad_end` with `ad` and `ads`) ends the break at its last
    ad's end; a `speed` change (`rate`) runs the position faster or slower."""
    duration = max(1, duration_seconds)
    state = SessionState()
    last_at: datetime | None = None
    paused_since: datetime | None = None
    ad_until: datetime | None = None
    pending_ads = 0
    rate = 1.0

    def _end_of_break() -> None:
        nonlocal ad_until, pending_ads
        state.state, ad_until = "playing", None
        state.breaks_sat += 1 if pending_ads else 0
        state.ads_sat += pending_ads
        pending_ads = 0

    def run_until(moment: datetime) -> None:
        if last_at is None or moment <= last_at:
            return
        start = last_at
        if state.state == "ad" and ad_until is not None:
            if moment < ad_until:
                return
            start = max(start, ad_until)
            _end_of_break()
        if state.state == "playing":
            seconds = (moment - start).total_seconds() * rate
            seconds = min(seconds, max(0.0, duration - state.position))
            state.position += seconds
            state.played_seconds += seconds

    for event in events:
        if event.at > at:
            break
        if event.kind in ENDING_KINDS:
            continue
        run_until(event.at)
        last_at = event.at
        detail = event.detail if isinstance(event.detail, dict) else {}
        if event.kind == "play" and state.state == "starting":
            state.start_position = float(event.position_seconds)
        if state.state == "paused" and event.kind != "pause" and paused_since is not None:
            state.paused_seconds += (event.at - paused_since).total_seconds()
            paused_since = None
            state.state = "playing"
        state.position = float(min(event.position_seconds, duration))
        if event.kind == "pause":
            if state.state != "paused":
                state.pauses += 1
                paused_since = event.at
            state.state = "paused"
        elif event.kind in ("seek", "skip"):
            origin = float(_number(detail.get("from"), event.position_seconds))
            target = float(
                min(max(0.0, _number(detail.get("to"), event.position_seconds)), duration)
            )
            jump = target - origin
            if jump < 0:
                state.seeks_back += 1
                state.seek_back_seconds += -jump
            elif jump > 0:
                state.skips += 1
                state.skipped_seconds += jump
            state.position = target
            if state.state != "ad":
                state.state = "playing"
        elif event.kind == "ad_break":
            pending_ads = int(_number(detail.get("ads"), 0))
            ad_until = event.at + _seconds(detail.get("pod_seconds", 0))
            state.state = "ad"
        elif event.kind == "ad_start" and state.state != "ad":
            # A player that reports its ads one by one without an ad_break first: the break
            # lasts until its last ad ends.
            pending_ads, ad_until = int(_number(detail.get("ads"), 1)), None
            state.state = "ad"
        elif event.kind == "ad_end":
            if state.state == "ad" and _number(detail.get("ad"), 0) >= _number(
                detail.get("ads"), 1
            ):
                _end_of_break()
        elif event.kind == "speed":
            rate = min(max(_number(detail.get("rate"), 1.0), 0.25), 4.0)
        elif state.state != "ad":  # play, resume, and kinds this replay does not know
            state.state = "playing"
    if state.state == "paused" and paused_since is not None:
        state.paused_seconds += max(0.0, (at - paused_since).total_seconds())
    run_until(at)
    return state


def _number(value: Any, default: float) -> float:
    """A number from a player's detail, or `default` when it is missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float(default)


def _seconds(value: Any) -> timedelta:
    try:
        return timedelta(seconds=max(0.0, float(value)))
    except (TypeError, ValueError):
        return timedelta(0)


def feature_row(
    events: Sequence[Playback],
    *,
    started_at: datetime,
    duration_seconds: int,
    prior: float,
    at: datetime,
) -> list[float]:
    """The model's features (FEATURES, in order) for a session at `at`."""
    duration = max(1, duration_seconds)
    state = session_state(events, duration_seconds=duration, at=at)
    prior = min(max(prior, PRIOR_CLIP), 1 - PRIOR_CLIP)
    return [
        math.log(prior / (1 - prior)),
        max(0.0, (at - started_at).total_seconds()) / 60,
        state.position / duration,
        (duration - state.position) / 60,
        state.start_position / duration,
        state.played_seconds / duration,
        state.pauses,
        state.paused_seconds / 60,
        float(state.state == "paused"),
        state.seeks_back,
        state.seek_back_seconds / duration,
        state.skips,
        state.skipped_seconds / duration,
        state.breaks_sat,
        state.ads_sat,
        float(state.state == "ad"),
        duration / 60,
    ]
