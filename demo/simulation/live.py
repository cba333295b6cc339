"""Live mode: viewers watch now, at the pace of the wall clock, through the real HTTP API of a
running server, so that open dashboards move.

`viewers` viewers are online at once; each starts a session within the first two minutes
(most of them picking a title up where they left it, so mid-rolls come soon), and another one
shortly after each ends. At each ad break the simulator POSTs /api/v1/decisions with a
platform key, and GETs each ad's tracking links when the player would fire them. Each session
is stored open when it starts and finished when it ends (through the engagement services,
in-process, every few seconds), so that the sessions open now on the staff dashboard follow
the audience; those still running when the run stops (after `minutes`, which may be infinite,
or Ctrl-C) stay open.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from django.utils import timezone

from config.progress import progress as progress_bar
from demo.simulation.profiles import BreakProfile, CreativeProfile, ViewerProfile
from demo.simulation.recording import (
    USER_AGENT,
    LiveSessionSink,
    SimulationResult,
    TruthWriter,
)
from demo.simulation.sessions import (
    PodPlay,
    SessionPlan,
    SessionRun,
    SlotInput,
    SlotPlay,
    plan_pod,
    play,
)
from demo.simulation.world import World, derived_seed

FIRST_START_WITHIN_SECONDS = 120
NEXT_SESSION_GAP_SECONDS = (10, 120)
LIVE_RESUME_SHARE = 0.7
WRITE_SESSIONS_EVERY_SECONDS = 5.0
MAX_SLEEP_SECONDS = 0.5
REQUEST_TIMEOUT_SECONDS = 10.0
SERVER_POLL_SECONDS = 0.5


class LiveSimulationError(Exception):
    """The server cannot be used: unreachable, or it refuses the key."""


@dataclass(frozen=True)
class LiveOptions:
    base_url: str
    api_key: str
    viewers: int = 300
    minutes: float = 10.0
    seed: int = 1
    truth_out: Path | None = None
    progress: bool = False
    # How long to wait at the start for a server that is still starting (the demo starts both).
    wait_for_server_seconds: float = 0.0


@dataclass
class _SlotState:
    """An ad whose tracking links are being fired."""

    play: SlotPlay
    remaining: int
    accepted: dict[str, bool] = field(default_factory=dict)


class LiveSimulation:
    def __init__(
        self,
        world: World,
        options: LiveOptions,
        *,
        transport: httpx2.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.world = world
        self.options = options
        self.result = SimulationResult()
        self._clock = clock
        self._sleep = sleep
        self._client = httpx2.Client(
            base_url=options.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {options.api_key}", "User-Agent": USER_AGENT},
            timeout=REQUEST_TIMEOUT_SECONDS,
            transport=transport,
        )
        self._rng = random.Random(derived_seed(options.seed, "live"))
        self._queue: list[tuple[datetime, int, str, Any]] = []
        self._order = itertools.count()
        self._running: dict[int, SessionRun] = {}
        self._sessions = LiveSessionSink(self.result)
        self._truth = TruthWriter(options.truth_out)
        self._in_flight: list[_SlotState] = []
        self._started_wall = 0.0
        self._started_at = timezone.now()
        self._reached_server = False

    def now(self) -> datetime:
        return self._started_at + timedelta(seconds=self._clock() - self._started_wall)

    def _push(self, at: datetime, kind: str, item: Any) -> None:
        heapq.heappush(self._queue, (at, next(self._order), kind, item))

    def run(self) -> SimulationResult:
        self._wait_for_server()
        self._started_wall = self._clock()
        self._started_at = timezone.now()
        deadline = self._started_wall + self.options.minutes * 60
        online = self._rng.sample(
            self.world.viewers, min(self.options.viewers, len(self.world.viewers))
        )
        for viewer in online:
            delay = self._rng.uniform(0, FIRST_START_WITHIN_SECONDS)
            self._push(self._started_at + timedelta(seconds=delay), "start", viewer)
        last_write = self._clock()
        progress = progress_bar(
            desc="live sessions", unit="sessions", show=self.options.progress, mininterval=0.5
        )
        try:
            while (remaining := deadline - self._clock()) > 0:
                if self._clock() - last_write >= WRITE_SESSIONS_EVERY_SECONDS:
                    self._sessions.flush()
                    last_write = self._clock()
                if not self._queue or self._queue[0][0] > self.now():
                    wait = MAX_SLEEP_SECONDS
                    if self._queue:
                        wait = min(wait, (self._queue[0][0] - self.now()).total_seconds())
                    self._sleep(max(0.0, min(wait, remaining)))
                    continue
                _, _, kind, item = heapq.heappop(self._queue)
                if kind == "start":
                    self._start(item)
                    progress.update(1)
                elif kind == "session":
                    self._step(*item)
                else:
                    self._fire(*item)
        except KeyboardInterrupt:
            pass  # Ctrl-C ends the run like the deadline does
        finally:
            progress.close()
            for state in self._in_flight:
                self._slot_done(state)
            self._sessions.flush()  # those still running stay open
            self._truth.close()
            self._client.close()
        self.result.seconds = self._clock() - self._started_wall
        return self.result

    def _wait_for_server(self) -> None:
        """Ask /healthz until the server answers, for `wait_for_server_seconds` at most."""
        deadline = self._clock() + self.options.wait_for_server_seconds
        while True:
            try:
                self._client.get("/healthz")
                return
            except httpx2.HTTPError as error:
                if self._clock() >= deadline:
                    raise LiveSimulationError(
                        f"Cannot reach {self.options.base_url} ({error}): is the server running?"
                    ) from error
            self._sleep(SERVER_POLL_SECONDS)

    # -- sessions ---------------------------------------------------------------------------

    def _start(self, viewer: ViewerProfile) -> None:
        number = self.result.sessions
        rng = random.Random(derived_seed(self.options.seed, "live-plan", viewer.id, number))
        plan = SessionPlan(
            viewer=viewer,
            title=self.world.pick_title(viewer, rng),
            device=self.world.pick_device(viewer, rng),
            start_at=self.now(),
            seed=derived_seed(self.options.seed, "live-play", viewer.id, number),
            resume_share=LIVE_RESUME_SHARE,
        )
        session = SessionRun(plan=plan, world=self.world, rng=random.Random(plan.seed))
        self._running[viewer.id] = session
        self._sessions.start(session)
        self.result.sessions += 1
        self._step(session, play(session, self))

    def _step(self, session: SessionRun, steps) -> None:
        try:
            wake_at = next(steps)
        except StopIteration:
            del self._running[session.viewer.id]
            self._sessions.end(session)
            gap = self._rng.uniform(*NEXT_SESSION_GAP_SECONDS)
            self._push(self.now() + timedelta(seconds=gap), "start", session.viewer)
            return
        self._push(wake_at, "session", (session, steps))

    def ad_break(self, session: SessionRun, ad_break: BreakProfile, at: datetime) -> PodPlay:
        payload = {
            "viewer_id": session.viewer.external_id,
            "title_id": session.title.id,
            "ad_break_id": ad_break.id,
            "device": session.plan.device,
        }
        response = self._request("POST", "/api/v1/decisions", json=payload)
        self.result.decisions += 1
        if response is None or response.status_code != 200:
            return PodPlay("", [], 0, abandoned=False)
        decision = response.json()
        slots = [
            SlotInput(
                position=slot["position"],
                creative=self._creative(slot),
                line_item_id=slot["line_item_id"],
                handle=slot["tracking"],
            )
            for slot in decision["pod"]
        ]
        pod = plan_pod(session, ad_break, decision["decision_id"], slots, at)
        for slot_play in pod.slots:
            state = _SlotState(slot_play, remaining=len(slot_play.events))
            self._in_flight.append(state)
            for event_type, occurred_at in slot_play.events:
                self._push(occurred_at, "fire", (state, event_type))
        return pod

    def _creative(self, slot: dict) -> CreativeProfile:
        creative = self.world.creatives.get(slot["creative_id"])
        if creative is None:  # made since the run began
            self.world.demand_refresh()
            creative = self.world.creatives.get(slot["creative_id"])
        return creative or CreativeProfile(
            slot["creative_id"], slot["advertiser_id"], "", slot["duration_seconds"]
        )

    # -- tracking -----------------------------------------------------------------------------

    def _fire(self, state: _SlotState, event_type: str) -> None:
        response = self._request("GET", state.play.slot.handle[event_type])
        # A click answers with a redirect to the landing page; other counted events with 204.
        ok = response is not None and response.status_code in (204, 302)
        state.accepted[event_type] = ok
        if ok:
            self.result.count_accepted(event_type)
            self._count_spend(state.play, event_type)
        elif response is not None:
            self.result.rejected[_reason(response)] += 1
        state.remaining -= 1
        if state.remaining == 0:
            self._in_flight.remove(state)
            self._slot_done(state)

    def _slot_done(self, state: _SlotState) -> None:
        if state.accepted.get("impression"):
            self._truth.write(state.play, clicked=state.accepted.get("click", False))

    def _count_spend(self, slot: SlotPlay, event_type: str) -> None:
        line_item_id = slot.slot.line_item_id
        if line_item_id not in self.world.prices:
            self.world.demand_refresh()
        is_cpm, price = self.world.prices.get(line_item_id, (True, 0))
        if (is_cpm and event_type == "impression") or (not is_cpm and event_type == "click"):
            currency = self.world.currencies.get(slot.slot.creative.advertiser_id, "")
            self.result.spend_micros[currency] += price

    def _request(self, method: str, url: str, **kwargs) -> httpx2.Response | None:
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx2.HTTPError as error:
            if not self._reached_server:
                raise LiveSimulationError(
                    f"Cannot reach {self.options.base_url} ({error}): is the server running?"
                ) from error
            self.result.errors += 1
            return None
        self._reached_server = True
        if response.status_code in (401, 403):
            raise LiveSimulationError(
                f"{self.options.base_url} refused the platform key ({response.status_code})."
            )
        if response.status_code >= 500:
            self.result.errors += 1
        return response


def _reason(response: httpx2.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"http_{response.status_code}"


def simulate_live(world: World, options: LiveOptions, **kwargs) -> SimulationResult:
    """Run viewers in real time against a server; see the module."""
    return LiveSimulation(world, options, **kwargs).run()
