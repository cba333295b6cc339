"""History mode: the days before `end`, simulated in-process on a simulated clock.

1. Plan the sessions: for each simulated day, `viewers` viewers drawn from the catalog, each
   with 1 + Poisson(sessions_per_viewer − 1) sessions whose start times follow the diurnal
   curve in the viewer's own time zone.
2. Run every session and every ad in one chronological queue (a heap by time), so the
   engine's budgets, caps and even-pacing controller (which ticks per decision-clock minute)
   see traffic in the order it would arrive. A viewer watches one thing at a time: a session
   due while another of the viewer's runs is put off until that one ends.
3. At each ad break a session reaches, ask the real engine (`ads.services.decide`, at the
   simulated time, with a seeded generator); each ad's events are reported when it stops
   playing, in batches of up to 1,000 through `ads.services.events_record`, at most five
   simulated minutes late (a batch has a fixed cost: larger ones halve the run; CPM budgets
   and frequency caps are reserved at the decision, so only CPC spend lags), with `at` the
   simulated now, so every event lies within its token's life and never in the future.
4. Sessions are written as they end; those still running at `end` are written open.

Writes are committed once per simulated hour. Should a run fail, the hour in progress is
rolled back while shared counters (Redis, the SQLite file) keep what it spent;
`ads.services.counters_rebuild` sets spend back to the event table's.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from ads import services as ads_services
from config.progress import progress as progress_bar
from demo.simulation.profiles import BreakProfile, CreativeProfile
from demo.simulation.recording import (
    USER_AGENT,
    SessionSink,
    SimulationResult,
    TruthWriter,
)
from demo.simulation.sessions import (
    RESUME_SHARE,
    PodPlay,
    SessionPlan,
    SessionRun,
    SlotInput,
    SlotPlay,
    plan_pod,
    play,
)
from demo.simulation.world import World, derived_seed, poisson
from engagement import selectors as engagement_selectors

FLUSH_EVERY = timedelta(minutes=5)
COMMIT_EVERY = timedelta(hours=1)
MAX_BATCH = 1000
BUSY_RETRY = timedelta(minutes=10)


@dataclass(frozen=True)
class HistoryOptions:
    end: datetime
    days: int = 1
    viewers: int = 300
    sessions_per_viewer: float = 2.0
    seed: int = 1
    truth_out: Path | None = None
    progress: bool = False
    # Send each decision the session's live engagement score (the live score champion on its
    # events so far), as a player does for the engagement ad load policy.
    engagement_scores: bool = False


def session_plans(
    world: World,
    *,
    start: datetime,
    days: int,
    viewers: int,
    sessions_per_viewer: float,
    seed: int,
) -> list[SessionPlan]:
    """Every session of the run, by start time."""
    plans = []
    for day in range(days):
        day_start = start + timedelta(days=day)
        day_rng = random.Random(derived_seed(seed, "day", day))
        active = day_rng.sample(world.viewers, min(viewers, len(world.viewers)))
        for viewer in active:
            count = 1 + poisson(day_rng, sessions_per_viewer - 1)
            for number in range(count):
                rng = random.Random(derived_seed(seed, "plan", day, viewer.id, number))
                title = world.pick_title(viewer, rng)
                plans.append(
                    SessionPlan(
                        viewer=viewer,
                        title=title,
                        device=world.pick_device(viewer, rng),
                        start_at=world.pick_start(viewer, rng, day_start),
                        seed=derived_seed(seed, "play", day, viewer.id, number),
                        resume_share=RESUME_SHARE.get(title.kind, 0.0),
                    )
                )
    plans.sort(key=lambda plan: (plan.start_at, plan.viewer.id))
    return plans


class HistorySimulation:
    def __init__(self, world: World, options: HistoryOptions) -> None:
        self.world = world
        self.options = options
        self.end = options.end
        self.start = options.end - timedelta(days=options.days)
        self.result = SimulationResult()
        self.decision_rng = random.Random(derived_seed(options.seed, "decisions"))
        self._queue: list[tuple[datetime, int, str, Any]] = []
        self._order = itertools.count()
        self._running: dict[int, SessionRun] = {}  # by viewer id
        self._buffer: list[ads_services.IncomingEvent] = []
        self._buffered_slots: list[tuple[SlotPlay, dict[str, int]]] = []
        self._buffered_since: datetime | None = None
        self._sessions = SessionSink(self.result)
        self._truth = TruthWriter(options.truth_out)

    def _push(self, at: datetime, kind: str, item: Any) -> None:
        heapq.heappush(self._queue, (at, next(self._order), kind, item))

    def run(self) -> SimulationResult:
        started = time.perf_counter()
        if settings.COUNTERS_BACKEND == "memory":
            # Process-local counters start empty: bring spend and click-through counts back
            # from the event table, so earlier runs' spend still holds the budgets (shared
            # counters, in Redis or the SQLite file, already hold them).
            ads_services.counters_rebuild(since=self.start - timedelta(days=1))
        options = self.options
        plans = session_plans(
            self.world,
            start=self.start,
            days=options.days,
            viewers=options.viewers,
            sessions_per_viewer=options.sessions_per_viewer,
            seed=options.seed,
        )
        for plan in plans:
            self._push(plan.start_at, "start", plan)
        progress = progress_bar(
            total=len(plans),
            desc="simulating",
            unit="planned sessions",  # started, or dropped: the window ended first
            show=options.progress,
            mininterval=0.5,
        )
        try:
            while self._queue and self._queue[0][0] <= self.end:
                # One transaction per simulated hour: a commit per batch of events would
                # spend most of the run waiting on the disk (SQLite syncs every commit).
                hour_end = self._queue[0][0] + COMMIT_EVERY
                with transaction.atomic():
                    while self._queue and self._queue[0][0] <= min(hour_end, self.end):
                        self._handle(*heapq.heappop(self._queue), progress)
            with transaction.atomic():
                self._flush_due(self.end, final=True)
                self._sessions.flush(running=list(self._running.values()))
        finally:
            progress.close()
            self._truth.close()
        self.result.seconds = time.perf_counter() - started
        return self.result

    def _handle(self, at: datetime, _order: int, kind: str, item: Any, progress: Any) -> None:
        self._flush_due(at)
        if kind == "start":
            if self._start(item, at):
                progress.update(1)
        elif kind == "session":
            self._step(*item)
        else:
            self._report(item, at)

    # -- sessions ---------------------------------------------------------------------------

    def _start(self, plan: SessionPlan, at: datetime) -> bool:
        """Start the session, or put it off while the viewer watches something else. True
        when the plan is settled: started, or dropped because the window ends first."""
        if plan.viewer.id in self._running:
            retry = at + BUSY_RETRY
            if retry <= self.end:
                self._push(retry, "start", plan)
                return False
            return True
        if at != plan.start_at:
            plan = dataclasses.replace(plan, start_at=at)
        session = SessionRun(plan=plan, world=self.world, rng=random.Random(plan.seed))
        self._running[plan.viewer.id] = session
        self.result.sessions += 1
        self._step(session, play(session, self))
        return True

    def _step(self, session: SessionRun, steps) -> None:
        try:
            wake_at = next(steps)
        except StopIteration:
            del self._running[session.viewer.id]
            self._sessions.add(session)
            return
        self._push(wake_at, "session", (session, steps))

    def _live_score(self, session: SessionRun, at: datetime) -> float | None:
        if not self.options.engagement_scores:
            return None
        if session.engagement_prior is None:
            session.engagement_prior = engagement_selectors.engagement_prior(
                viewer_id=session.viewer.id, title_id=session.title.id
            )
        return engagement_selectors.live_score_of(
            events=session.events,
            started_at=session.plan.start_at,
            duration_seconds=session.title.duration_seconds,
            prior=session.engagement_prior,
            at=at,
        )

    def ad_break(self, session: SessionRun, ad_break: BreakProfile, at: datetime) -> PodPlay:
        decision = ads_services.decide(
            ads_services.DecisionRequest(
                viewer_id=session.viewer.external_id,
                title_id=session.title.id,
                ad_break_id=ad_break.id,
                device=session.plan.device,
                engagement_score=self._live_score(session, at),
            ),
            at=at,
            rng=self.decision_rng,
        )
        self.result.decisions += 1
        slots = [
            SlotInput(
                position=slot.position,
                creative=CreativeProfile(
                    id=slot.creative.id,
                    advertiser_id=slot.creative.advertiser_id,
                    category=slot.creative.category,
                    duration_seconds=slot.creative.duration_seconds,
                ),
                line_item_id=slot.line_item.id,
                handle=slot.token,
            )
            for slot in decision.pod
        ]
        pod = plan_pod(session, ad_break, decision.decision_id, slots, at)
        for slot_play in pod.slots:
            self._push(slot_play.end_at, "slot", slot_play)
        return pod

    # -- ad events --------------------------------------------------------------------------

    def _report(self, slot: SlotPlay, at: datetime) -> None:
        if len(self._buffer) + len(slot.events) > MAX_BATCH:
            self._flush(at)
        positions = {}
        for event_type, occurred_at in slot.events:
            positions[event_type] = len(self._buffer)
            self._buffer.append(
                ads_services.IncomingEvent(
                    token=slot.slot.handle,
                    event_type=event_type,
                    client_event_id=f"sim-{slot.decision_id}-{slot.slot.position}-{event_type}",
                    occurred_at=occurred_at,
                )
            )
        self._buffered_slots.append((slot, positions))
        if self._buffered_since is None:
            self._buffered_since = at

    def _flush_due(self, at: datetime, *, final: bool = False) -> None:
        """Send the buffer if it is due by `at` (or `final`), as the player would have: at
        most FLUSH_EVERY after its first event, not at `at`, which may come hours later
        when the next thing to happen is the next morning's session (its tracking links
        would have expired by then)."""
        if self._buffered_since is None:
            return
        due = self._buffered_since + FLUSH_EVERY
        if final or due <= at:
            self._flush(min(due, at))

    def _flush(self, at: datetime) -> None:
        if not self._buffer:
            return
        outcomes = ads_services.events_record(events=self._buffer, user_agent=USER_AGENT, at=at)
        accepted = [outcome.status == "accepted" for outcome in outcomes]
        for event, outcome in zip(self._buffer, outcomes, strict=True):
            if outcome.status == "rejected":
                self.result.rejected[outcome.reason or "unknown"] += 1
            if outcome.status != "accepted" or outcome.claim is None:
                continue
            self.result.count_accepted(event.event_type)
            claim = outcome.claim
            if (claim.is_cpm and event.event_type == "impression") or (
                not claim.is_cpm and event.event_type == "click"
            ):
                currency = self.world.currencies.get(claim.advertiser_id, "")
                self.result.spend_micros[currency] += claim.price_micros
        for slot, positions in self._buffered_slots:
            if accepted[positions["impression"]]:
                clicked = "click" in positions and accepted[positions["click"]]
                self._truth.write(slot, clicked=clicked)
        self._buffer = []
        self._buffered_slots = []
        self._buffered_since = None


def simulate_history(world: World, options: HistoryOptions) -> SimulationResult:
    """Simulate `options.days` days of viewing ending at `options.end`; see the module."""
    return HistorySimulation(world, options).run()
