"""The decision: for a viewer at an ad break, the pod of ads to play.

1. Resolve the request against the index (viewer, title, break); a kids profile gets no ads.
2. Eligibility, as bitmasks over the index: live (status, flight, daypart) and targeting, then
   the budget prefilter from the delivery state.
3. Walk the line items in ranking order (expected value × pacing factor; a capped share of
   decisions explores with Thompson samples), applying pacing's pass probability, competitive
   separation (one ad per advertiser and per category) and the break's duration.
4. Reserve the chosen slots' budgets and frequency caps atomically (one Redis round trip for
   the pod); a slot that lost a race is replaced by continuing the walk, and a slot whose cap or
   budget this process saw refused lately is skipped without asking again (counters.FullMemory).
5. Sign a tracking token for each slot.

With `explain`, every line item in the index is also run through the stages one by one, with
fresh counter reads, and reported with the rule that removed it or its score.

When the counters cannot be used (Redis down, or restarted and not yet healed), the decision is
an empty pod with reason `degraded` rather than an error: a player handles an empty pod as it
handles no fill, resuming the title at once, where a 503 would make it wait, retry or show an
error at the break. Nothing is served against unknown budgets and caps (see
`ads.services.recovery`): between a heal's two phases, when budgets are known and caps not
yet, a pod holding cap keys is reserved only once the viewer's caps are read (the first such
decision for a viewer reads them, `ads.services.caps`), and the CTR model's fatigue columns
(its features, not a limit) are left unknown rather than read as zeros. The same holds for the
database, which a decision reads only for the demand index and the CTR champion when they are
due for a check: a lost connection is retried on a new one
(`config.db.retried_on_lost_connection`: nothing was reserved yet), and a database that stays
out of reach gives `degraded` too, never an error.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
from django.conf import settings
from django.utils import timezone

from ads.decisioning import ad_load, eligibility, ranking
from ads.decisioning.eligibility import Context
from ads.decisioning.index import CreativeEntry, DemandIndex, LineItemEntry, current_index
from ads.decisioning.scoring import (
    ctr_champion,
    forest_ranking,
    predict_ctr,
    rank_by_slot,
    rescored_entry,
    viewer_fatigue,
)
from ads.decisioning.state import DeliveryState, Ranked, live_now, state_holder, thompson_order
from ads.delivery import keys
from ads.delivery.counters import (
    Bump,
    Counters,
    DeliveryStateUnavailable,
    ViewerStateUnknown,
    counters,
)
from ads.delivery.tokens import TrackingClaim, make_token
from ads.models import Creative
from config.db import LOST, retried_on_lost_connection

DEFAULT_MAX_ADS = 6
# The process's generator for decisions that bring none (seeding one per decision reads
# os.urandom each time); its methods are atomic under the GIL.
_RANDOM = random.Random()
# A process forked from one that imported this module (the browser tests' server templates; a
# pre-forking server) draws its own sequence, as the random module's own generator does.
os.register_at_fork(after_in_child=_RANDOM.seed)
SHORTEST_CREATIVE = min(Creative.Duration.values)


class DecisionRequestError(ValueError):
    """The request names something that does not exist or cannot be: a 400 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class DecisionRequest:
    viewer_id: str
    title_id: int
    device: str
    ad_break_id: int | None = None
    offset_seconds: int | None = None
    region: str | None = None
    pod_size: int | None = None
    max_duration_seconds: int | None = None
    explain: bool = False
    engagement_score: float | None = None  # the session's live score, for AD_LOAD_POLICY


@dataclass
class Slot:
    position: int
    creative: CreativeEntry
    line_item: LineItemEntry
    score: float
    pctr: float
    token: str = ""


@dataclass
class Decision:
    decision_id: str
    ad_break_id: int | None
    max_duration_seconds: int
    pod: list[Slot]
    reason: str | None
    explored: bool = False
    explain: list[dict] | None = None
    rejections: dict[str, int] = field(default_factory=dict)

    @property
    def duration_seconds(self) -> int:
        return sum(slot.creative.duration_seconds for slot in self.pod)


def _resolve(index: DemandIndex, request: DecisionRequest, at: datetime) -> Context | str:
    title = index.titles.get(request.title_id)
    if title is None:
        raise DecisionRequestError("title_id", f"No title with id {request.title_id}.")
    if request.ad_break_id is not None:
        ad_break = index.breaks.get(request.ad_break_id)
        if ad_break is None or ad_break.title_id != title.id:
            raise DecisionRequestError(
                "ad_break_id", f"No ad break {request.ad_break_id} in title {title.id}."
            )
    elif request.offset_seconds is not None:
        ad_break = index.breaks_by_offset.get((title.id, request.offset_seconds))
        if ad_break is None:
            raise DecisionRequestError(
                "offset_seconds",
                f"Title {title.id} has no ad break at {request.offset_seconds} s.",
            )
    else:
        raise DecisionRequestError("ad_break_id", "Give ad_break_id or offset_seconds.")
    viewer = index.viewers.get(request.viewer_id)
    if viewer is None:
        return "unknown_viewer"
    max_duration = ad_load.pod_seconds(
        max_seconds=ad_break.max_pod_duration_seconds,
        engagement_score=request.engagement_score,
    )
    if request.max_duration_seconds is not None:
        max_duration = min(max_duration, request.max_duration_seconds)
    return Context(
        at=at,
        viewer=viewer,
        title=title,
        ad_break=ad_break,
        device=request.device,
        region=request.region or viewer.region,
        max_duration_seconds=max_duration,
        max_ads=request.pod_size or DEFAULT_MAX_ADS,
    )


def decide(
    request: DecisionRequest,
    *,
    at: datetime | None = None,
    rng: random.Random | None = None,
    store: Counters | None = None,
) -> Decision:
    """Choose the pod for one ad break. Raises DecisionRequestError for a request naming a
    title or break that does not exist; an unknown viewer or a kids profile gets an empty pod
    with the reason, and so does a decision the counters cannot back (`degraded`)."""
    at = at or timezone.now()
    rng = rng or _RANDOM
    store = store or counters()
    try:
        return retried_on_lost_connection(lambda: _decide(request, at, rng, store))
    except DeliveryStateUnavailable as error:
        # Imported here: the services build on the engine.
        from ads.services.recovery import heal_here

        if heal_here(error):
            try:
                return _decide(request, at, rng, store)
            except DeliveryStateUnavailable:
                pass
    except LOST:  # still lost after the retries (not a query's own error, which stays one)
        logger.warning("Decision degraded: the database is out of reach.", exc_info=True)
    return Decision(new_decision_id(), request.ad_break_id, 0, [], reason=DEGRADED)


DEGRADED = "degraded"
logger = logging.getLogger(__name__)
# A version 4 UUID's fixed bits: the version's nibble and the variant's two bits.
_UUID4_CLEARED = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (4 << 76) | (0x8000 << 48)


def new_decision_id() -> str:
    """`uuid.uuid4().hex`, without making the UUID object (three times the cost of the
    random bytes and their formatting)."""
    value = int.from_bytes(os.urandom(16)) & _UUID4_CLEARED | _UUID4_SET
    return f"{value:032x}"


def _decide(
    request: DecisionRequest, at: datetime, rng: random.Random, store: Counters
) -> Decision:
    index = current_index()
    decision_id = new_decision_id()
    resolved = _resolve(index, request, at)
    if isinstance(resolved, str):
        return Decision(decision_id, request.ad_break_id, 0, [], reason=resolved)
    context = resolved
    state = state_holder.get(index, store, at)

    explain = _explain(index, state, store, context) if request.explain else None
    if context.viewer.is_kids:
        decision = Decision(
            decision_id, context.ad_break.id, context.max_duration_seconds, [], "kids_profile"
        )
        decision.explain = explain
        return decision
    if context.max_duration_seconds == 0:  # the ad load policy skips this break
        decision = Decision(decision_id, context.ad_break.id, 0, [], "ad_load_policy")
        decision.explain = explain
        return decision

    eligible = _eligible(index, state, context)
    explored = rng.random() < ranking.EXPLORATION_SHARE
    model = ctr_champion()
    candidates: Iterable[Ranked]
    if model is None:
        candidates = state.candidates(eligible, rng) if explored else state.walk(eligible)
    elif (
        settings.CTR_FOREST_SCORING
        and not settings.CTR_SLOT_RANKING
        and model.model.forest is not None
    ):
        candidates = forest_ranking(
            state, eligible, model.model, context, at, store, rng if explored else None
        )
    else:
        candidates = _model_scored(
            state.candidates(eligible), model.model, index, context, at, store, state.whole
        )
        candidates = _explored(candidates, explored, rng)
    why: dict[int, str] = {}
    decided, exploring, _ = _day_bumps(at.date())
    tally = [decided, exploring] if explored else [decided]
    pod = _fill_pod(candidates, context, store, rng, why, tally)
    for slot in pod:
        line_item = slot.line_item
        slot.token = make_token(
            TrackingClaim(  # in the fields' order (keywords make a NamedTuple twice as slowly)
                decision_id,
                slot.creative.id,
                line_item.id,
                line_item.advertiser_id,
                context.viewer.id,
                context.title.id,
                context.ad_break.id,
                slot.position,
                context.device,
                context.region,
                line_item.price_micros,
                line_item.is_cpm,
                at,
            )
        )
    decision = Decision(
        decision_id,
        context.ad_break.id,
        context.max_duration_seconds,
        pod,
        reason=None if pod else "no_eligible_ads",
        explored=explored,
    )
    if explain is not None:
        _explain_pod(explain, pod, why)
        decision.explain = explain
    return decision


def _eligible(index: DemandIndex, state: DeliveryState, context: Context) -> int:
    """The mask of line items that are live, targeted at this request and within budget."""
    return (
        index.masks.matching(
            title=context.title,
            device=context.device,
            region=context.region,
            age_band=context.viewer.age_band,
        )
        & live_now(index, state, context)
        & state.budget_ok
    )


def _model_scored(
    candidates: list[Ranked],
    model,
    index: DemandIndex,
    context: Context,
    at: datetime,
    store: Counters,
    fatigue_known: bool = True,
) -> list[Ranked]:
    """Re-rank with the CTR champion: one batched call scores every creative of the CPC line
    items at position 1 (a CPM bid is its own expected value), a second the head of that
    ranking at the pod's later slots (`scoring.rank_by_slot`, with CTR_SLOT_RANKING only: off
    by default, config/settings/ctr.py says why). Each creative's posterior is
    re-centred on the model's pCTR, with the strength its impressions earned, for
    exploration to sample. The viewer's fatigue is one read of the counters, made only for a
    champion trained with the fatigue columns (off by default: ads.learning.features), and
    only when `fatigue_known` (not between a heal's phases: unknown, not zeros)."""
    cpc = [entry for entry in candidates if not entry.line_item.is_cpm]
    if not cpc:
        return candidates
    fatigue = None
    if model.features.fatigue and fatigue_known:
        fatigue = viewer_fatigue(store, context.viewer.id, at)
    creatives = [creative for entry in cpc for creative, _ in entry.creatives]
    pctrs = predict_ctr(model, index, context, creatives, at, fatigue=fatigue).tolist()
    rescored = {}
    offset = 0
    for entry in cpc:
        count = len(entry.creatives)
        rescored[entry.line_item.id] = rescored_entry(entry, pctrs[offset : offset + count])
        offset += count
    merged = [rescored.get(entry.line_item.id, entry) for entry in candidates]
    merged.sort(key=lambda entry: (-entry.score, entry.line_item.id))
    if not settings.CTR_SLOT_RANKING:
        return merged
    slots = min(context.max_ads, context.max_duration_seconds // SHORTEST_CREATIVE)
    return rank_by_slot(merged, model, index, context, at, slots=slots, fatigue=fatigue)


def _explored(candidates: Sequence[Ranked], explored: bool, rng: random.Random) -> Sequence[Ranked]:
    """An exploring decision re-scores CPC line items with a Thompson sample of their best
    creative's pCTR where that creative has few impressions (the model-scored path; without a
    model, `DeliveryState.candidates` does the same on the state's arrays)."""
    if not explored or not candidates:
        return candidates
    best = [entry.creatives[0][1] for entry in candidates]
    count = len(candidates)
    order = thompson_order(
        np.fromiter((entry.score for entry in candidates), np.float64, count),
        np.fromiter((entry.line_item.id for entry in candidates), np.int64, count),
        np.fromiter(
            (
                not entry.line_item.is_cpm
                and posterior.impressions < ranking.EXPLORE_BELOW_IMPRESSIONS
                for entry, posterior in zip(candidates, best, strict=True)
            ),
            bool,
            count,
        ),
        np.fromiter((posterior.alpha for posterior in best), np.float64, count),
        np.fromiter((posterior.beta for posterior in best), np.float64, count),
        rng,
    )
    return [candidates[i] for i in order.tolist()]


def _fill_pod(
    candidates: Iterable[Ranked],
    context: Context,
    store: Counters,
    rng: random.Random,
    why: dict[int, str] | None = None,
    tally: list[Bump] | None = None,
) -> list[Slot]:
    """Greedy fill in ranking order (`candidates` is iterated once a pass), then reserve.
    After a lost race the walk starts over with what is left of the break, skipping the line
    items chosen, lost or throttled.
    `why`, when given, collects the rule that kept each walked line item out of the pod;
    `tally` (decision counters) rides along with the first reservation: one round trip."""
    why = {} if why is None else why
    # The decision time and day in each account zone walked (one conversion a zone).
    local_times: dict = {}
    max_seconds, max_ads, viewer_id, full = (
        context.max_duration_seconds,
        context.max_ads,
        context.viewer.id,
        store.full,
    )
    pod: list[Slot] = []
    out: set[int] = set()  # chosen, lost a reservation, or throttled: not walked again
    while True:
        used_seconds = sum(slot.creative.duration_seconds for slot in pod)
        advertisers = {slot.line_item.advertiser_id for slot in pod}
        categories = {slot.creative.category for slot in pod}
        tentative: list[Slot] = []
        groups: list[list[Bump]] = []  # each tentative slot's reservation
        for entry in candidates:
            line_item = entry.line_item
            if line_item.id in out:
                continue
            left = max_seconds - used_seconds
            if len(pod) + len(tentative) >= max_ads or left < SHORTEST_CREATIVE:
                why[line_item.id] = "pod_full"
                break
            if line_item.advertiser_id in advertisers:
                why[line_item.id] = "advertiser_separation"
                continue
            chosen, fits = None, False
            for creative, posterior in entry.creatives:  # best pCTR first
                if creative.duration_seconds <= left:
                    fits = True
                    if creative.category not in categories:
                        chosen = (creative, posterior)
                        break
            if chosen is None:
                why[line_item.id] = "category_separation" if fits else "duration"
                continue
            if entry.pass_probability < 1.0 and rng.random() >= entry.pass_probability:
                why[line_item.id] = "pacing_throttled"
                out.add(line_item.id)
                continue
            creative, posterior = chosen
            slot = Slot(0, creative, line_item, entry.score, posterior.mean)
            local = local_times.get(line_item.tz)
            if local is None:
                at = context.at.astimezone(line_item.tz)
                local = local_times[line_item.tz] = (at, at.date())
            group = _reservation(line_item, viewer_id, context.at, *local)
            out.add(line_item.id)
            if full.known_full(group):  # this process just lost that race: skip it
                why[line_item.id] = "reservation_lost"
                continue
            tentative.append(slot)
            groups.append(group)
            used_seconds += creative.duration_seconds
            advertisers.add(line_item.advertiser_id)
            categories.add(creative.category)
        if not tentative:
            break
        if tally:
            groups.append(tally)  # no limits: always applied
        reserved = _reserve(store, tentative, groups, context)[: len(tentative)]
        tally = None
        for slot, ok in zip(tentative, reserved, strict=True):
            if ok:
                pod.append(slot)
            else:
                why[slot.line_item.id] = "reservation_lost"
        if all(reserved):
            break
    if not pod:
        store.add_many([*(tally or []), _day_bumps(context.at.date())[2]])
    for position, slot in enumerate(pod, start=1):
        slot.position = position
    return pod


def _reserve(
    store: Counters, tentative: list[Slot], groups: list[list[Bump]], context: Context
) -> list[bool]:
    """Reserve the pod's groups. Known budgets are enough (a heal's first phase), with the
    viewer's caps known when a slot holds cap keys: the first such pod for a viewer reads them
    from the event table, then reserves again."""
    capped = any(slot.line_item.capped for slot in tentative)
    known = keys.viewer_caps_known(context.viewer.id) if capped else None
    try:
        return store.reserve(groups, known=known)
    except ViewerStateUnknown:
        _viewer_caps_load(store, context)
        return store.reserve(groups, known=known)


def _viewer_caps_load(store: Counters, context: Context) -> None:
    """The viewer's caps as of the decision's instant: the hour and day its cap keys name
    (read at the clock's time instead, a decision at 10:59:59 whose read ran at 11:00:00
    counted the 11:00 hour and reserved on an empty 10:00 key)."""
    # Imported here: the services build on the engine.
    from ads.services.caps import viewer_caps_load

    viewer_caps_load(viewer_id=context.viewer.id, store=store, now=context.at)


_DAY_BUMPS: dict = {}


def _day_bumps(day) -> tuple[Bump, Bump, Bump]:
    """The day's decision, exploration and unfilled counters' bumps, made once a day
    (formatting a date into a key costs more than the rest of the tally)."""
    bumps = _DAY_BUMPS.get(day)
    if bumps is None:
        if len(_DAY_BUMPS) > 16:  # past days (or a simulator's): start again
            _DAY_BUMPS.clear()
        bumps = _DAY_BUMPS[day] = (
            Bump(keys.decisions(day), 1, keys.DAY_TTL),
            Bump(keys.exploration(day), 1, keys.DAY_TTL),
            Bump(keys.unfilled(day), 1, keys.DAY_TTL),
        )
    return bumps


def _reservation(
    line_item: LineItemEntry, viewer_id: int, at: datetime, local: datetime, local_day: date
) -> list[Bump]:
    """A slot's budget and frequency cap bumps; `local` and `local_day` are the decision time
    `at` and its date in the line item's account zone."""
    group = list(_budget_bumps(line_item, at, local_day)) if line_item.is_cpm else []
    if line_item.capped:
        for key, cap, ttl in eligibility.cap_keys(line_item, viewer_id, at, local):
            group.append(Bump(key, 1, ttl, cap))
    return group


# (line item, its account's day, price and budgets) → the CPM budget's two bumps: the same for
# every decision of that day, so made once (formatting their keys was a tenth of a decision).
_BUDGET_BUMPS: dict[tuple, tuple[Bump, Bump]] = {}
BUDGET_BUMPS_SIZE = 20_000


def _budget_bumps(line_item: LineItemEntry, at: datetime, local_day: date) -> tuple[Bump, Bump]:
    price = line_item.price_micros
    memo = (
        line_item.id,
        local_day,
        price,
        line_item.daily_budget_micros,
        line_item.lifetime_budget_micros,
    )
    bumps = _BUDGET_BUMPS.get(memo)
    if bumps is None:
        day_key, lifetime_key = eligibility.budget_keys(line_item, at)
        bumps = (
            Bump(day_key, price, keys.DAY_TTL, line_item.daily_budget_micros),
            Bump(lifetime_key, price, None, line_item.lifetime_budget_micros),
        )
        if len(_BUDGET_BUMPS) >= BUDGET_BUMPS_SIZE:  # past days' entries: start again
            _BUDGET_BUMPS.clear()
        _BUDGET_BUMPS[memo] = bumps
    return bumps


def _explain(
    index: DemandIndex, state: DeliveryState, store: Counters, context: Context
) -> list[dict]:
    """Every line item of the index through the stages in order, with fresh counters (between
    a heal's phases, the viewer's caps read first, as a reservation would)."""
    viewer_id = context.viewer.id
    if (
        not state.whole
        and any(line_item.capped for line_item in index.line_items)
        and not store.get_many([keys.viewer_caps_known(viewer_id)])[0]
    ):
        _viewer_caps_load(store, context)
    report = []
    for line_item in index.line_items:
        entry = {
            "line_item_id": line_item.id,
            "advertiser_id": line_item.advertiser_id,
            "name": line_item.name,
        }
        stage, rule = _first_rejection(line_item, store, context)
        if stage is None:
            ranked = next((r for r in state.ranked if r.line_item.id == line_item.id), None)
            entry |= {
                "stage": None,
                "rule": None,
                "score": round(ranked.score, 6) if ranked else None,
            }
        else:
            entry |= {"stage": stage, "rule": rule, "score": None}
        report.append(entry)
    return report


def _first_rejection(
    line_item: LineItemEntry, store: Counters, context: Context
) -> tuple[str | None, str | None]:
    rule = eligibility.live_rejection(line_item, context)
    if rule:
        return eligibility.LIVE, rule
    rule = eligibility.targeting_rejection(line_item, context)
    if rule:
        return eligibility.TARGETING, rule
    if context.viewer.is_kids:
        return eligibility.KIDS, "kids_profile"
    day_total, lifetime_total = store.get_many(list(eligibility.budget_keys(line_item, context.at)))
    rule = eligibility.budget_rejection(line_item, day_total, lifetime_total)
    if rule:
        return eligibility.BUDGET, rule
    caps = eligibility.cap_keys(line_item, context.viewer.id, context.at)
    rule = eligibility.cap_rejection(caps, store.get_many([key for key, _, _ in caps]))
    if rule:
        return eligibility.FREQUENCY_CAP, rule
    return None, None


def _explain_pod(report: list[dict], pod: list[Slot], why: dict[int, str]) -> None:
    chosen = {slot.line_item.id: slot for slot in pod}
    for entry in report:
        if entry["stage"] is not None:
            continue
        slot = chosen.get(entry["line_item_id"])
        if slot is not None:
            entry |= {
                "stage": "pod",
                "rule": "chosen",
                "position": slot.position,
                "creative_id": slot.creative.id,
            }
            continue
        rule = why.get(entry["line_item_id"], "outranked")
        entry |= {
            "stage": eligibility.PACING if rule == "pacing_throttled" else "pod",
            "rule": rule,
        }
