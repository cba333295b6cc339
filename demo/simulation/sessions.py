"""One viewing session, as a generator the driver steps through simulated (or wall) time.

`play(session, host)` yields the time at which it wants to go on; the driver resumes it then.
In between it records what the player would report (play, pause, resume, seek, skip, ad break,
abandon, complete) and, at each ad break it reaches, asks `host.ad_break(...)` for the pod and
plays it (`plan_pod`): per ad, a completion drawn from the truth's completion probability
(quartiles consistent with it), a click drawn from its click probability, and a chance that the
viewer gives up on the session, rising with every break and with the pod's length.

The viewing truth (effect sizes are the named constants below):

* Intent is drawn at the start and shows in behaviour. A viewer who will stop early is
  restless: pauses, seeks and taps forward come RESTLESS_*_FACTOR times as often. A share of
  those who mean to finish waver (WAVERING_SHARE): they fidget in between (WAVERING_*_FACTOR)
  and feel a pod's length more (ABANDON_PER_POD_SECOND_RESTLESS, as restless viewers do), so
  long pods are what turns them into leavers. So a model can learn from behaviour who leaves.
* Each title has lulls (`title_lulls`: hashed from its id, one in LULL_SHARE of its
  LULL_WINDOW_SECONDS windows, LULL_SECONDS long): slow stretches where viewers who stop early
  tend to stop (LULL_STOP_SHARE of them), and where an ad break is LULL_BREAK_FACTOR times as
  likely to lose the viewer. A break's position therefore matters, and the retention curve
  shows where: its drop-off is steeper in the lulls.
* A pod's length: ABANDON_PER_POD_SECOND (settled viewers) or ABANDON_PER_POD_SECOND_RESTLESS
  (restless and wavering ones) per second of ads, on top of the base and of each break already
  sat through.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from demo.simulation import truth
from demo.simulation.profiles import (
    AdContext,
    BreakProfile,
    CreativeProfile,
    TitleProfile,
    ViewerProfile,
)
from demo.simulation.world import World, derived_seed, stable_unit

# Content seconds between player actions, on average (exponential gaps).
PAUSE_EVERY_SECONDS = 35 * 60
SEEK_EVERY_SECONDS = 50 * 60
TAP_SKIP_EVERY_SECONDS = {"ctv": 90 * 60, "mobile": 40 * 60, "desktop": 45 * 60, "tablet": 45 * 60}
TAP_SKIP_STEPS = (10, 10, 10, 30)
# A series episode's intro, skipped by half the viewers.
INTRO_SKIP_SHARE = 0.5
INTRO_STARTS = (20, 60)
INTRO_SECONDS = (60, 90)
# Pauses: mostly short; some long (the doorbell, dinner).
SHORT_PAUSE_MEAN_SECONDS = 75
LONG_PAUSE_SHARE = 0.08
LONG_PAUSE_SECONDS = (5 * 60, 30 * 60)
# Seeks: back a little to catch a line again, or forward past a slow part.
SEEK_BACK_SHARE = 0.6
SEEK_BACK_SECONDS = (10, 120)
SEEK_FORWARD_SECONDS = (60, 900)
# Intent: a share of sessions means to finish the title (more for series and for a liked
# genre); the others stop somewhere, whatever the ads.
FINISH_SHARE = {"movie": 0.55, "series": 0.75}
FINISH_LIFT_FOR_TASTE = 0.2
RESUME_SHARE = {"movie": 0.2, "series": 0.0}  # picked up where the viewer left them
RESUME_POSITION = (0.1, 0.7)
# Leaving at an ad break: base, plus per break of ads already sat through, plus per second of
# the pod (three times as much for restless and wavering viewers: a 120 s pod adds 0.048 to a
# settled viewer's chance of leaving and 0.144 to a restless one's), times LULL_BREAK_FACTOR
# when the break falls in a lull of the title.
ABANDON_AT_BREAK_BASE = 0.01
ABANDON_PER_BREAK = 0.012
ABANDON_PER_POD_SECOND = 0.0004
ABANDON_PER_POD_SECOND_RESTLESS = 0.0012
ABANDON_AT_BREAK_MAX = 0.6
# Intent in behaviour: how much more often restless viewers (who will stop before the end)
# and wavering ones (who mean to finish, a share of them) pause, seek and tap forward.
RESTLESS_PAUSE_FACTOR = 2.0
RESTLESS_SEEK_FACTOR = 1.6
RESTLESS_SKIP_FACTOR = 2.5
WAVERING_SHARE = 0.25
WAVERING_PAUSE_FACTOR = 1.5
WAVERING_SEEK_FACTOR = 1.3
WAVERING_SKIP_FACTOR = 1.8
# Lulls: in each LULL_WINDOW_SECONDS of a title, a lull of LULL_SECONDS starting anywhere in
# it, with chance LULL_SHARE (hashed from the title's id and the window): about a quarter of
# the title, and of the catalog's breaks every 20 minutes. A break in one loses viewers
# LULL_BREAK_FACTOR times as often, and LULL_STOP_SHARE of the viewers who stop early stop in
# one.
LULL_WINDOW_SECONDS = 10 * 60
LULL_SECONDS = 5 * 60
LULL_SHARE = 0.5
LULL_BREAK_FACTOR = 3.0
LULL_STOP_SHARE = 0.5
# Where a viewer who does not finish an ad stops watching it: Beta(1, 1.6), mostly early.
AD_DROP_BETA = (1.0, 1.6)


@dataclass(frozen=True)
class SessionPlan:
    viewer: ViewerProfile
    title: TitleProfile
    device: str
    start_at: datetime
    seed: int
    # The chance that the viewer picks the title up where they left it, not from the start.
    resume_share: float = 0.0


@dataclass
class SlotInput:
    """A slot of a decision's pod; `handle` is how its events are sent (a token, or the
    tracking links)."""

    position: int
    creative: CreativeProfile
    line_item_id: int
    handle: Any


@dataclass
class SlotPlay:
    """How one ad of a pod played: what the player reports, and when."""

    decision_id: str
    session: SessionRun
    slot: SlotInput
    start_at: datetime
    end_at: datetime  # when the viewer stopped watching it (the ad's end when completed)
    p_click: float
    clicked: bool
    completed: bool
    events: list[tuple[str, datetime]]  # (AdEvent type, occurred at), in time order
    # The click probability without the viewer's hidden propensity, and without fatigue
    # (truth.click_probabilities): for the truth file, so benches can split a model's gap.
    p_click_seen: float = 0.0
    p_click_rested: float = 0.0


@dataclass
class PodPlay:
    decision_id: str
    slots: list[SlotPlay]
    seconds: int  # how long the break held the viewer
    abandoned: bool  # the viewer left the session during or right after the pod


class Host(Protocol):
    def ad_break(self, session: SessionRun, ad_break: BreakProfile, at: datetime) -> PodPlay: ...


@dataclass
class SessionRun:
    """A session being played: its state, and what the player reported so far."""

    plan: SessionPlan
    world: World
    rng: random.Random
    position: int = 0
    watched_seconds: int = 0
    ads_played: int = 0
    breaks_played: int = 0  # breaks that played ads (an empty break costs the viewer nothing)
    events: list[tuple[str, int, datetime, dict]] = field(default_factory=list)
    ended_at: datetime | None = None
    completed: bool = False
    abandoned: bool = False
    # "settled" (means to finish), "wavering" (means to finish, but long pods may push them
    # out) or "restless" (will stop before the end, whatever the ads).
    intent: str = "settled"
    engagement_prior: float | None = None  # asked once, when a decision needs the live score
    pods_played: int = 0

    @property
    def viewer(self) -> ViewerProfile:
        return self.plan.viewer

    @property
    def title(self) -> TitleProfile:
        return self.plan.title

    def record(self, kind: str, at: datetime, **detail: Any) -> None:
        self.events.append((kind, self.position, at, detail))


def title_lulls(title: TitleProfile) -> tuple[tuple[int, int], ...]:
    """The title's lulls as (start, end) seconds: see the module's docstring."""
    return _lulls(title.id, title.duration_seconds)


@lru_cache(maxsize=8192)
def _lulls(title_id: int, duration_seconds: int) -> tuple[tuple[int, int], ...]:
    lulls = []
    # None in the first window: the opening holds everyone (and the pre-roll stays clear).
    for window in range(1, duration_seconds // LULL_WINDOW_SECONDS):
        if stable_unit("lull", title_id, window) >= LULL_SHARE:
            continue
        # Anywhere in its window, so it may run into the next (where a break may sit).
        start = window * LULL_WINDOW_SECONDS + int(
            LULL_WINDOW_SECONDS * stable_unit("lull-at", title_id, window)
        )
        lulls.append((start, min(start + LULL_SECONDS, duration_seconds)))
    return tuple(lulls)


def in_lull(title: TitleProfile, position: int) -> bool:
    return any(start <= position < end for start, end in title_lulls(title))


# How often each kind of viewer pauses, seeks and taps forward, against a settled viewer.
FIDGET_FACTORS = {
    "settled": (1.0, 1.0, 1.0),
    "wavering": (WAVERING_PAUSE_FACTOR, WAVERING_SEEK_FACTOR, WAVERING_SKIP_FACTOR),
    "restless": (RESTLESS_PAUSE_FACTOR, RESTLESS_SEEK_FACTOR, RESTLESS_SKIP_FACTOR),
}


def play(session: SessionRun, host: Host) -> Generator[datetime, None, None]:
    """The session's timeline. Yields the next time it needs; returns when it ends."""
    rng = session.rng
    title, viewer = session.title, session.viewer
    duration = title.duration_seconds
    clock = session.plan.start_at
    if rng.random() < session.plan.resume_share:
        session.position = int(duration * rng.uniform(*RESUME_POSITION))
    finish_share = FINISH_SHARE.get(title.kind, FINISH_SHARE["movie"])
    finish_share += FINISH_LIFT_FOR_TASTE * session.world.affinity(viewer, title)
    finishes, wavers = rng.random() < finish_share, rng.random() < WAVERING_SHARE
    if finishes:
        stop_at = duration
        session.intent = "wavering" if wavers else "settled"
    else:
        session.intent = "restless"
        lulls = [lull for lull in title_lulls(title) if lull[0] > session.position]
        if lulls and rng.random() < LULL_STOP_SHARE:
            stop_at = rng.randint(*rng.choice(lulls))
        else:
            stop_at = session.position + int((duration - session.position) * rng.uniform(0.05, 1.0))
    pause_factor, seek_factor, skip_factor = FIDGET_FACTORS[session.intent]
    intro_skip_at = None
    if title.kind == "series" and session.position == 0 and rng.random() < INTRO_SKIP_SHARE:
        intro_skip_at = rng.randint(*INTRO_STARTS)
    tap_every = TAP_SKIP_EVERY_SECONDS.get(session.plan.device, TAP_SKIP_EVERY_SECONDS["ctv"])

    session.record("play", clock, **({"resumed": True} if session.position else {}))
    breaks = list(title.breaks)
    if breaks and breaks[0].offset_seconds == 0:
        pod = host.ad_break(session, breaks[0], clock)
        _note_break(session, breaks[0], pod, clock)
        clock += timedelta(seconds=pod.seconds)
        yield clock
        if pod.abandoned:
            return _end(session, clock, completed=False)
    pending = [b for b in breaks if b.offset_seconds > session.position]

    while True:
        candidates: list[tuple[float, str]] = [
            (stop_at - session.position, "stop"),
            (rng.expovariate(pause_factor / PAUSE_EVERY_SECONDS), "pause"),
            (rng.expovariate(seek_factor / SEEK_EVERY_SECONDS), "seek"),
            (rng.expovariate(skip_factor / tap_every), "skip"),
        ]
        if pending:
            candidates.append((pending[0].offset_seconds - session.position, "break"))
        if intro_skip_at is not None and intro_skip_at >= session.position:
            candidates.append((intro_skip_at - session.position, "intro"))
        delta, action = min(candidates)
        delta = max(0, int(delta))
        clock += timedelta(seconds=delta)
        yield clock
        session.position = min(duration, session.position + delta)
        session.watched_seconds += delta

        if action == "stop":
            return _end(session, clock, completed=session.position >= duration)
        if action == "break":
            ad_break = pending.pop(0)
            pod = host.ad_break(session, ad_break, clock)
            _note_break(session, ad_break, pod, clock)
            clock += timedelta(seconds=pod.seconds)
            yield clock
            if pod.abandoned:
                return _end(session, clock, completed=False)
        elif action == "pause":
            session.record("pause", clock)
            if rng.random() < LONG_PAUSE_SHARE:
                seconds = rng.randint(*LONG_PAUSE_SECONDS)
            else:
                seconds = 5 + int(rng.expovariate(1 / SHORT_PAUSE_MEAN_SECONDS))
            clock += timedelta(seconds=seconds)
            yield clock
            session.record("resume", clock)
        else:
            origin = session.position
            if action == "intro":
                intro_skip_at = None
                target = origin + rng.randint(*INTRO_SECONDS)
                kind = "skip"
            elif action == "skip":
                target = origin + rng.choice(TAP_SKIP_STEPS)
                kind = "skip"
            elif rng.random() < SEEK_BACK_SHARE:
                target = max(0, origin - rng.randint(*SEEK_BACK_SECONDS))
                kind = "seek"
            else:
                target = origin + rng.randint(*SEEK_FORWARD_SECONDS)
                kind = "seek"
            target = min(target, duration - 1, max(stop_at, origin))
            session.record(kind, clock, **{"from": origin, "to": target})
            session.position = target
            jumped = [b for b in pending if b.offset_seconds <= target]
            if jumped:
                # Players snap back to the last break a viewer seeked over, and play it.
                pending = [b for b in pending if b.offset_seconds > target]
                pod = host.ad_break(session, jumped[-1], clock)
                _note_break(session, jumped[-1], pod, clock, snap_back=True)
                clock += timedelta(seconds=pod.seconds)
                yield clock
                if pod.abandoned:
                    return _end(session, clock, completed=False)


def _note_break(
    session: SessionRun,
    ad_break: BreakProfile,
    pod: PodPlay,
    at: datetime,
    snap_back: bool = False,
) -> None:
    detail: dict[str, Any] = {
        "ad_break_id": ad_break.id,
        "decision_id": pod.decision_id,
        "ads": len(pod.slots),
        "pod_seconds": pod.seconds,
    }
    if snap_back:
        detail["snap_back"] = True
    session.record("ad_break", at, **detail)
    if pod.slots:
        session.breaks_played += 1


def _end(session: SessionRun, at: datetime, *, completed: bool) -> None:
    session.record("complete" if completed else "abandon", at)
    session.ended_at = at
    session.completed = completed
    session.abandoned = not completed


def plan_pod(
    session: SessionRun,
    ad_break: BreakProfile,
    decision_id: str,
    slots: list[SlotInput],
    at: datetime,
) -> PodPlay:
    """Play a pod for the session starting at `at`: who completes, who clicks, whether the
    viewer leaves. Draws from a generator of its own, seeded from the session's seed and the
    break (and how many pods came before), never from the session's: the same pod plays the
    same way, and the session's own timeline (pauses, seeks, where it stops) does not depend on
    how many ads its pods held. Two runs that differ only in their pods (an ad load policy,
    moved breaks) then differ only where the pods' effects reach."""
    rng = random.Random(derived_seed(session.plan.seed, "pod", ad_break.id, session.pods_played))
    session.pods_played += 1
    viewer, title = session.viewer, session.title
    tz = session.world.timezone_of(viewer)
    pod_seconds = sum(slot.creative.duration_seconds for slot in slots)
    leave_chance = break_leave_chance(
        intent=session.intent,
        breaks_before=session.breaks_played,
        pod_seconds=pod_seconds,
        in_lull=in_lull(title, ad_break.offset_seconds),
    )
    leaves = bool(slots) and rng.random() < leave_chance
    plays: list[SlotPlay] = []
    start = at
    for slot in sorted(slots, key=lambda s: s.position):
        creative = slot.creative
        local = start.astimezone(tz)
        context = AdContext(
            local_hour=local.hour,
            weekday=local.weekday(),
            device=session.plan.device,
            position=slot.position,
            pod_size=len(slots),
            break_offset_seconds=ad_break.offset_seconds,
            ads_before=session.ads_played,
        )
        p_click, p_click_seen, p_click_rested = truth.click_probabilities(
            viewer=viewer, title=title, creative=creative, context=context
        )
        p_complete = truth.completion_probability(
            viewer=viewer, title=title, creative=creative, context=context
        )
        completed = rng.random() < p_complete
        clicked = rng.random() < p_click
        seconds = creative.duration_seconds
        watched = 1.0 if completed else rng.betavariate(*AD_DROP_BETA)
        events = [("impression", start)]
        for quarter, event_type in enumerate(("first_quartile", "midpoint", "third_quartile"), 1):
            if completed or watched >= quarter / 4:
                events.append((event_type, start + timedelta(seconds=seconds * quarter / 4)))
        if completed:
            events.append(("complete", start + timedelta(seconds=seconds)))
        if clicked:
            click_at = start + timedelta(seconds=seconds * watched * rng.random())
            events.append(("click", click_at))
        events.sort(key=lambda event: event[1])
        watched_until = start + timedelta(seconds=seconds * watched)
        plays.append(
            SlotPlay(
                decision_id=decision_id,
                session=session,
                slot=slot,
                start_at=start,
                end_at=watched_until if not completed else start + timedelta(seconds=seconds),
                p_click=p_click,
                p_click_seen=p_click_seen,
                p_click_rested=p_click_rested,
                clicked=clicked,
                completed=completed,
                events=events,
            )
        )
        session.ads_played += 1
        if leaves and not completed:
            # The viewer gave up during this ad: the rest of the pod never plays.
            return PodPlay(decision_id, plays, _seconds(at, watched_until), abandoned=True)
        start += timedelta(seconds=seconds)
    return PodPlay(decision_id, plays, _seconds(at, start), abandoned=leaves)


def break_leave_chance(
    *, intent: str, breaks_before: int, pod_seconds: int, in_lull: bool
) -> float:
    """The chance that a viewer gives up on the session at a pod of `pod_seconds`."""
    per_second = ABANDON_PER_POD_SECOND if intent == "settled" else ABANDON_PER_POD_SECOND_RESTLESS
    chance = (
        ABANDON_AT_BREAK_BASE + ABANDON_PER_BREAK * breaks_before + per_second * pod_seconds
    ) * (LULL_BREAK_FACTOR if in_lull else 1.0)
    return min(ABANDON_AT_BREAK_MAX, chance)


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds()))
