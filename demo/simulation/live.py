"""Live mode: viewers watch now, at the pace of the wall clock, through the same HTTP endpoints
as the viewer app's player (static/js/watch_player.js), so that open dashboards move with what
real viewers would produce.

`viewers` viewers are online at once; each starts a session within the first two minutes
(most of them picking a title up where they left it, so mid-rolls come soon), and another one
shortly after each ends. Each viewer is a browser of its own (an HTTP client with its own
cookie jar): it GETs /watch/ for the CSRF cookie and POSTs its profile choice once, then for
each session

1. opens it (POST /watch/api/sessions, with the CSRF token in X-CSRFToken, as the player's
   fetch does) and asks the title's VMAP (GET /vmap/1.0; a kids profile asks none);
2. sends what the player reports (play, pause, resume, seek and skip with from and to, an ad
   break's pod, ad_start and ad_end per ad, complete, abandon) in batches to
   /watch/api/sessions/<id>/events, each event's `offset_ms` counted from the session's
   opening; a batch leaves FLUSH_SECONDS after its first event, as the player's timer sends
   it; `complete` is sent at once, `abandon` as the beacon of a closing tab (a form with the
   CSRF token);
3. at each ad break, asks the break's VAST tag from the VMAP, reads the pod from the VAST
   (ElementTree) and fires each ad's trackers (impression, quartiles, complete, click) when
   the simulated viewer reaches them, without cookies, as the player's trackers do.

The ad tags name the public player id AUDIENCE_PLAYER, not the web player's: these viewers
watch on their own devices (TVs, phones, tablets, desktops), staff can tell the simulated
audience apart in admin and switch its ads off there, and it has its own rate limit.

Sessions still running when the run stops (after `minutes`, which may be infinite, or Ctrl-C)
get what is due of their events and stay open, as a player that lost its network would leave
them.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import random
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
from django.utils import timezone

from config.progress import progress as progress_bar
from demo.simulation.profiles import BreakProfile, CreativeProfile, TitleProfile, ViewerProfile
from demo.simulation.recording import USER_AGENT, SimulationResult, TruthWriter
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

AUDIENCE_PLAYER = "interlude-audience"
FIRST_START_WITHIN_SECONDS = 120
NEXT_SESSION_GAP_SECONDS = (10, 120)
LIVE_RESUME_SHARE = 0.7
FLUSH_SECONDS = 2.0  # the player's batch timer (FLUSH_MS in static/js/watch_player.js)
MAX_BATCH = 200  # events per batch, as the player and the endpoint allow
MAX_SLEEP_SECONDS = 0.5
REQUEST_TIMEOUT_SECONDS = 10.0
SERVER_POLL_SECONDS = 0.5
VAST = "{http://www.iab.com/VAST}"
VMAP = "{http://www.iab.net/videosuite/vmap}"
# The VAST's trackers the simulated player fires, by the platform's event type. VAST's `start`
# is the impression's own link again (ads/vast/render.py): a browser's player fires both and
# the second is answered "replayed"; the simulated player fires the impression once.
VAST_TRACKERS = {
    "first_quartile": "firstQuartile",
    "midpoint": "midpoint",
    "third_quartile": "thirdQuartile",
    "complete": "complete",
}
# Why an ad tag answered no ads, when it is a refusal rather than no fill (ads/vast/answers.py).
TAG_REFUSALS = frozenset({"invalid_parameter", "inactive_player", "bot", "rate_limited"})


class LiveSimulationError(Exception):
    """The server cannot be used: unreachable, or it does not know the audience's player."""


@dataclass(frozen=True)
class LiveOptions:
    base_url: str
    viewers: int = 300
    minutes: float = 10.0
    seed: int = 1
    player_id: str = AUDIENCE_PLAYER
    truth_out: Path | None = None
    progress: bool = False
    # How long to wait at the start for a server that is still starting (the demo starts both).
    wait_for_server_seconds: float = 0.0


@dataclass
class _Browser:
    """One simulated viewer's browser: its cookie jar holds the CSRF cookie and the session
    bound to its profile."""

    viewer: ViewerProfile
    client: httpx2.Client
    bound: bool = False

    @property
    def csrf_token(self) -> str:
        return self.client.cookies.get("csrftoken") or ""


@dataclass
class _Playback:
    """A session as its player reports it: the server's session, the VMAP's breaks (offset →
    VAST tag) and the events not yet sent, in time order."""

    run: SessionRun
    browser: _Browser
    session_id: int
    opened_at: datetime
    breaks: dict[int, str]
    outbox: list[tuple[datetime, dict]] = field(default_factory=list)
    recorded: int = 0  # of run.events, those already put in the outbox
    sequence: int = 0
    flush_at: datetime | None = None
    ended: bool = False

    def queue(self, kind: str, position: int, at: datetime, detail: dict) -> None:
        self.sequence += 1
        event = {
            "event_id": f"e{self.sequence}",
            "kind": kind,
            "position_seconds": min(self.run.title.duration_seconds, max(0, position)),
            # Milliseconds since the session opened (0 before), as the player counts them.
            "offset_ms": max(0, round((at - self.opened_at).total_seconds() * 1000)),
            "detail": detail,
        }
        bisect.insort(self.outbox, (at, event), key=lambda pending: pending[0])

    def due(self, now: datetime) -> list[dict]:
        """The events that happened by `now` (at most a batch), taken out of the outbox."""
        count = min(MAX_BATCH, bisect.bisect_right(self.outbox, now, key=lambda p: p[0]))
        events = [event for _, event in self.outbox[:count]]
        del self.outbox[:count]
        return events


@dataclass
class _SlotState:
    """An ad whose tracking links are being fired."""

    play: SlotPlay
    remaining: int
    accepted: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class _VastAd:
    """What the simulated player reads of one `<Ad>` of a VAST pod."""

    position: int
    creative_id: int
    decision_id: str
    name: str
    advertiser: str
    category: str
    duration_seconds: int
    trackers: dict[str, str]  # the platform's event type → URL


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
        # One pool of connections for every browser; each browser has its own cookie jar.
        self._transport = transport or httpx2.HTTPTransport()
        # Ad tags and trackers go without cookies, as the player's fetches do.
        self._tags = self._new_client()
        self._browsers: dict[int, _Browser] = {}
        self._rng = random.Random(derived_seed(options.seed, "live"))
        self._queue: list[tuple[datetime, int, str, Any]] = []
        self._order = itertools.count()
        self._running: dict[int, _Playback] = {}  # by viewer id
        self._truth = TruthWriter(options.truth_out)
        self._in_flight: list[_SlotState] = []
        self._started_wall = 0.0
        self._started_at = timezone.now()
        self._reached_server = False

    def _new_client(self) -> httpx2.Client:
        return httpx2.Client(
            base_url=self.options.base_url.rstrip("/"),
            headers={"User-Agent": USER_AGENT},
            timeout=REQUEST_TIMEOUT_SECONDS,
            transport=self._transport,
        )

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
        progress = progress_bar(
            desc="live sessions", unit="sessions", show=self.options.progress, mininterval=0.5
        )
        try:
            while (remaining := deadline - self._clock()) > 0:
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
                elif kind == "flush":
                    self._flush(item)
                else:
                    self._fire(*item)
        except KeyboardInterrupt:
            pass  # Ctrl-C ends the run like the deadline does
        finally:
            progress.close()
            for state in self._in_flight:
                self._slot_done(state)
            for playback in list(self._running.values()):  # they stay open
                self._send(playback, playback.due(self.now()), retry=False)
            self._truth.close()
            self._transport.close()
        self.result.seconds = self._clock() - self._started_wall
        return self.result

    def _wait_for_server(self) -> None:
        """Ask /healthz until the server answers, for `wait_for_server_seconds` at most."""
        deadline = self._clock() + self.options.wait_for_server_seconds
        while True:
            try:
                self._tags.get("/healthz")
                return
            except httpx2.HTTPError as error:
                if self._clock() >= deadline:
                    raise LiveSimulationError(
                        f"Cannot reach {self.options.base_url} ({error}): is the server running?"
                    ) from error
            self._sleep(SERVER_POLL_SECONDS)

    # -- the viewer's browser -----------------------------------------------------------------

    def _browser(self, viewer: ViewerProfile) -> _Browser | None:
        """The viewer's browser, bound to its profile (the first time: GET /watch/ for the
        CSRF cookie, then the profile's form, as a person clicking it would); None when the
        server refused."""
        browser = self._browsers.get(viewer.id)
        if browser is None:
            browser = self._browsers[viewer.id] = _Browser(viewer, self._new_client())
        if not browser.bound:
            page = self._request(browser.client, "GET", "/watch/")
            if page is None or page.status_code != 200 or not browser.csrf_token:
                return None
            chosen = self._request(
                browser.client,
                "POST",
                f"/watch/profiles/{viewer.id}",
                data={"csrfmiddlewaretoken": browser.csrf_token},
            )
            if chosen is None or chosen.status_code != 302:
                return None
            browser.bound = True
        return browser

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
        playback = self._open(plan)
        if playback is None:  # refused or failed: the viewer tries again later
            self._push(self._next_start(), "start", viewer)
            return
        self._running[viewer.id] = playback
        self.result.sessions += 1
        self._step(playback, play(playback.run, self))

    def _open(self, plan: SessionPlan) -> _Playback | None:
        browser = self._browser(plan.viewer)
        if browser is None:
            return None
        response = self._request(
            browser.client,
            "POST",
            "/watch/api/sessions",
            json={"title_id": plan.title.id, "device": plan.device},
            headers={"X-CSRFToken": browser.csrf_token},
        )
        if response is None or response.status_code != 201:
            if response is not None and response.status_code == 403:
                browser.bound = False  # the server forgot the profile: choose it again
            return None
        run = SessionRun(plan=plan, world=self.world, rng=random.Random(plan.seed))
        playback = _Playback(
            run=run,
            browser=browser,
            session_id=response.json()["session_id"],
            opened_at=self.now(),
            breaks={},
        )
        if not plan.viewer.is_kids:  # a kids profile's player asks for no ads
            playback.breaks = self._schedule(plan)
        return playback

    def _schedule(self, plan: SessionPlan) -> dict[int, str]:
        """The title's VMAP: each break's offset in seconds → its VAST tag."""
        query = {
            "player": self.options.player_id,
            "viewer": plan.viewer.external_id,
            "title": plan.title.id,
            "device": plan.device,
        }
        response = self._request(self._tags, "GET", f"/vmap/1.0?{urlencode(query)}")
        if response is None:
            return {}
        if response.status_code != 200:
            if response.status_code == 400 and "player" in _fields(response):
                raise LiveSimulationError(
                    f"{self.options.base_url} has no player {self.options.player_id!r}."
                )
            self._refused(response, _reason(response))  # a limit: this session has no ads
            return {}
        breaks = {}
        root = ElementTree.fromstring(response.content)
        for ad_break in root.iter(f"{VMAP}AdBreak"):
            tag = ad_break.find(f"{VMAP}AdSource/{VMAP}AdTagURI")
            if tag is not None and tag.text:
                offset = _offset_seconds(ad_break.get("timeOffset", ""), plan.title)
                breaks[offset] = tag.text.strip()
        return breaks

    def _step(self, playback: _Playback, steps: Generator[datetime, None, None]) -> None:
        try:
            wake_at = next(steps)
        except StopIteration:
            self._record(playback)
            self._end(playback)
            return
        self._record(playback)
        self._push(wake_at, "session", (playback, steps))

    def _record(self, playback: _Playback) -> None:
        """Put the session's new player actions in the outbox, as the player records them
        (an ad break with its ads' ad_start and ad_end is queued by `ad_break`, with what the
        VAST gave)."""
        for kind, position, at, detail in playback.run.events[playback.recorded :]:
            if kind == "ad_break":
                continue
            player_detail = {"from": detail["from"], "to": detail["to"]} if "to" in detail else {}
            playback.queue(kind, position, at, player_detail)
        playback.recorded = len(playback.run.events)
        self._schedule_flush(playback)

    def _end(self, playback: _Playback) -> None:
        """The session's last batch: `complete` flushed at once, `abandon` in the closing
        tab's beacon; then the viewer's next session, a little later."""
        run = playback.run
        del self._running[run.viewer.id]
        while playback.outbox:
            events = playback.due(self.now() + timedelta(days=1))  # all that is left
            beacon = run.abandoned and not playback.outbox
            self._send(playback, events, beacon=beacon, retry=False)
        playback.ended = True
        self._push(self._next_start(), "start", run.viewer)

    def _next_start(self) -> datetime:
        return self.now() + timedelta(seconds=self._rng.uniform(*NEXT_SESSION_GAP_SECONDS))

    def _schedule_flush(self, playback: _Playback) -> None:
        if playback.flush_at is None and playback.outbox:
            first = max(playback.outbox[0][0], self.now())
            playback.flush_at = first + timedelta(seconds=FLUSH_SECONDS)
            self._push(playback.flush_at, "flush", playback)

    def _flush(self, playback: _Playback) -> None:
        playback.flush_at = None
        if playback.ended:
            return
        self._send(playback, playback.due(self.now()))
        self._schedule_flush(playback)

    def _send(
        self, playback: _Playback, events: list[dict], *, beacon: bool = False, retry: bool = True
    ) -> None:
        """POST a batch to the session's events endpoint: JSON with the CSRF header, or the
        beacon's form with the token in it. A failed request puts the batch back when `retry`
        (the same event ids: stored once when it goes again), as the player does."""
        if not events:
            return
        batch = {"events": events, "watched_seconds": playback.run.watched_seconds}
        token = playback.browser.csrf_token
        path = f"/watch/api/sessions/{playback.session_id}/events"
        if beacon:
            response = self._request(
                playback.browser.client,
                "POST",
                path,
                data={"csrfmiddlewaretoken": token, "batch": json.dumps(batch)},
            )
        else:
            response = self._request(
                playback.browser.client, "POST", path, json=batch, headers={"X-CSRFToken": token}
            )
        if response is None or response.status_code >= 500:
            if retry:
                for event in events:
                    at = playback.opened_at + timedelta(milliseconds=event["offset_ms"])
                    bisect.insort(playback.outbox, (at, event), key=lambda pending: pending[0])
            return
        if response.status_code == 200:
            self.result.playback_events += response.json()["stored"]
        else:
            self.result.rejected[f"playback {_reason(response)}"] += len(events)

    # -- ad breaks ----------------------------------------------------------------------------

    def ad_break(self, session: SessionRun, ad_break: BreakProfile, at: datetime) -> PodPlay:
        playback = self._running[session.viewer.id]
        tag = playback.breaks.get(ad_break.offset_seconds)
        if tag is None:  # no ads here (a kids profile; a break the VMAP does not have)
            return PodPlay("", [], 0, abandoned=False)
        cache_buster = f"{self._rng.randrange(10**8):08d}"
        response = self._request(self._tags, "GET", tag.replace("[CACHEBUSTING]", cache_buster))
        self.result.decisions += 1
        if response is None:
            return PodPlay("", [], 0, abandoned=False)
        ads = self._pod(response)
        if not ads:
            return PodPlay("", [], 0, abandoned=False)
        slots = [
            SlotInput(
                position=ad.position,
                creative=self._creative(ad),
                line_item_id=self.world.line_items.get(ad.creative_id, 0),
                handle=ad,
            )
            for ad in ads
        ]
        pod = plan_pod(session, ad_break, ads[0].decision_id, slots, at)
        # The pod as a whole, then each ad's start and end, as the player reports them.
        pod_seconds = sum(ad.duration_seconds for ad in ads)
        pod_detail = {"break": ad_break.offset_seconds, "ads": len(ads), "pod_seconds": pod_seconds}
        playback.queue("ad_break", session.position, at, pod_detail)
        for number, slot_play in enumerate(pod.slots, 1):
            state = _SlotState(slot_play, remaining=len(slot_play.events))
            self._in_flight.append(state)
            for event_type, occurred_at in slot_play.events:
                self._push(occurred_at, "fire", (state, event_type))
            ad: _VastAd = slot_play.slot.handle
            detail = {
                "break": ad_break.offset_seconds,
                "ad": number,
                "ads": len(ads),
                "creative": ad.name,
                "advertiser": ad.advertiser,
            }
            playback.queue("ad_start", session.position, slot_play.start_at, detail)
            left_during = pod.abandoned and number == len(pod.slots) and not slot_play.completed
            if not left_during:  # the player ends an ad when its time has run
                ad_end = slot_play.start_at + timedelta(seconds=ad.duration_seconds)
                playback.queue("ad_end", session.position, ad_end, detail)
        return pod

    def _pod(self, response: httpx2.Response) -> list[_VastAd]:
        """The ads of a VAST pod, in sequence; none for an empty VAST (its `<Error>` URL says
        why: a refusal is counted, no fill is not)."""
        try:
            root = ElementTree.fromstring(response.content)
        except ElementTree.ParseError:
            self.result.errors += 1
            return []
        ads = [_vast_ad(element) for element in root.iter(f"{VAST}Ad")]
        if not ads:
            error = root.findtext(f"{VAST}Error") or ""
            reason = parse_qs(urlsplit(error.strip()).query).get("reason", [""])[0]
            if reason == "unknown_player":
                raise LiveSimulationError(
                    f"{self.options.base_url} has no player {self.options.player_id!r}."
                )
            self._refused(response, reason)
        return sorted(ads, key=lambda ad: ad.position)

    def _refused(self, response: httpx2.Response, reason: str) -> None:
        if response.status_code == 429:
            reason = "rate_limited"
        if reason in TAG_REFUSALS:
            self.result.refused[reason] += 1

    def _creative(self, ad: _VastAd) -> CreativeProfile:
        creative = self.world.creatives.get(ad.creative_id)
        if creative is None:  # made since the run began
            self.world.demand_refresh()
            creative = self.world.creatives.get(ad.creative_id)
        return creative or CreativeProfile(ad.creative_id, 0, ad.category, ad.duration_seconds)

    # -- tracking -----------------------------------------------------------------------------

    def _fire(self, state: _SlotState, event_type: str) -> None:
        ad: _VastAd = state.play.slot.handle
        response = self._request(self._tags, "GET", ad.trackers[event_type])
        # The VAST's trackers are pixels: 204 when counted (ClickTracking too).
        ok = response is not None and response.status_code == 204
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

    def _request(
        self, client: httpx2.Client, method: str, url: str, **kwargs
    ) -> httpx2.Response | None:
        try:
            response = client.request(method, url, **kwargs)
        except httpx2.HTTPError as error:
            if not self._reached_server:
                raise LiveSimulationError(
                    f"Cannot reach {self.options.base_url} ({error}): is the server running?"
                ) from error
            self.result.errors += 1
            return None
        self._reached_server = True
        if response.status_code >= 500:
            self.result.errors += 1
        return response


def _vast_ad(element: ElementTree.Element) -> _VastAd:
    """One `<Ad>`: the creative's id from its UniversalAdId (else the Creative's id), the
    decision from AdServingId, the trackers from Impression, the Linear's TrackingEvents and
    its ClickTracking."""
    inline = element.find(f"{VAST}InLine")
    creative = inline.find(f"{VAST}Creatives/{VAST}Creative")
    linear = creative.find(f"{VAST}Linear")
    universal_id = creative.findtext(f"{VAST}UniversalAdId") or creative.get("id")
    tracking = {
        event.get("event"): (event.text or "").strip() for event in linear.iter(f"{VAST}Tracking")
    }
    trackers = {"impression": (inline.findtext(f"{VAST}Impression") or "").strip()}
    trackers |= {ours: tracking[theirs] for ours, theirs in VAST_TRACKERS.items()}
    trackers["click"] = (linear.findtext(f"{VAST}VideoClicks/{VAST}ClickTracking") or "").strip()
    hours, minutes, seconds = (linear.findtext(f"{VAST}Duration") or "0:0:0").split(":")
    return _VastAd(
        position=int(element.get("sequence", "1")),
        creative_id=int(universal_id.strip()),
        decision_id=(inline.findtext(f"{VAST}AdServingId") or "").strip(),
        name=inline.findtext(f"{VAST}AdTitle") or "",
        advertiser=inline.findtext(f"{VAST}Advertiser") or "",
        category=inline.findtext(f"{VAST}Category") or "",
        duration_seconds=round(int(hours) * 3600 + int(minutes) * 60 + float(seconds)),
        trackers=trackers,
    )


def _offset_seconds(time_offset: str, title: TitleProfile) -> int:
    """A VMAP timeOffset in seconds: "start", "end" or HH:MM:SS.mmm (the player's rule)."""
    if time_offset == "start":
        return 0
    if time_offset == "end":
        return title.duration_seconds
    hours, minutes, seconds = time_offset.split(":")
    return round(int(hours) * 3600 + int(minutes) * 60 + float(seconds))


def _fields(response: httpx2.Response) -> dict:
    try:
        return dict(response.json()["error"].get("fields") or {})
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


def _reason(response: httpx2.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"http_{response.status_code}"


def simulate_live(world: World, options: LiveOptions, **kwargs) -> SimulationResult:
    """Run viewers in real time against a server; see the module."""
    return LiveSimulation(world, options, **kwargs).run()
