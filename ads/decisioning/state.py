"""What the engine needs to know besides the index, refreshed at most once a second (and each
new minute of the decision clock) per process: which line items are live this minute, pass
probabilities, budget totals, creative click-through estimates and the resulting ranking.

Budgets and caps read here are only a prefilter: the reservation at the decision enforces them
exactly. Between a heal's two phases (budgets written, caps not yet: ads.services.recovery) the
state is read with `whole` False: the budgets read are known (CPC spend included: the clicks
stored since the heal's snapshot are applied to it from then), the viewers' fatigue is not.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from ads.decisioning import pacing, ranking
from ads.decisioning.eligibility import budget_keys, budget_rejection, live_rejection
from ads.decisioning.index import CreativeEntry, DemandIndex, LineItemEntry
from ads.delivery import keys
from ads.delivery.counters import Counters, DeliveryStateUnavailable
from ads.models import daypart_at

REFRESH_SECONDS = 1.0


@dataclass
class LiveWindow:
    """Line items live for the whole minute, and those whose flight starts or ends within it
    (checked one by one against the exact time)."""

    minute: datetime
    whole_minute: int
    boundary: list[int]


def live_window(index: DemandIndex, minute: datetime) -> LiveWindow:
    whole, boundary = 0, []
    minute_end = minute + timedelta(minutes=1)
    local_daypart = {}
    for position, line_item in enumerate(index.line_items):
        starts_inside = minute < line_item.start_at < minute_end
        ends_inside = line_item.end_at is not None and minute < line_item.end_at < minute_end
        if starts_inside or ends_inside:
            boundary.append(position)
            continue
        if line_item.tz not in local_daypart:
            local_daypart[line_item.tz] = minute.astimezone(line_item.tz)
        local = local_daypart[line_item.tz]
        if line_item.start_at > minute or (line_item.end_at and line_item.end_at <= minute):
            continue
        if local.date() < line_item.campaign_start or (
            line_item.campaign_end and local.date() > line_item.campaign_end
        ):
            continue
        if line_item.dayparts and daypart_at(local) not in line_item.dayparts:
            continue
        whole |= 1 << position
    return LiveWindow(minute, whole, boundary)


_live_windows: dict[int, tuple[DemandIndex, datetime, LiveWindow]] = {}


def _live_window(index: DemandIndex, minute: datetime) -> LiveWindow:
    """live_window, computed once per index and minute (it depends on nothing else; a
    refresher reads the state every second)."""
    known = _live_windows.get(id(index))
    if known is not None and known[0] is index and known[1] == minute:
        return known[2]
    window = live_window(index, minute)
    _live_windows.clear()
    _live_windows[id(index)] = (index, minute, window)
    return window


@dataclass
class Ranked:
    """A line item's place in the ranking: its score and its creatives, best pCTR first."""

    position: int
    line_item: LineItemEntry
    score: float
    pass_probability: float
    creatives: list[tuple[CreativeEntry, ranking.Posterior]]
    pacing_factor: float = 1.0


@dataclass
class RankArrays:
    """The ranking as arrays (element i is ranked[i]), so a decision selects its candidates
    and draws its Thompson samples with a few vectorised operations instead of a Python loop
    over every line item."""

    positions: np.ndarray  # index positions (bit numbers of the masks)
    scores: np.ndarray
    line_item_ids: np.ndarray
    explorable: np.ndarray  # CPC line items whose best creative has few impressions
    alpha: np.ndarray  # that creative's posterior (meaningful where explorable)
    beta: np.ndarray
    entries: np.ndarray  # the Ranked entries themselves (objects): picked in C, not a loop

    @classmethod
    def build(cls, ranked: list[Ranked]) -> RankArrays:
        # From lists (np.fromiter over a generator costs twice as much).
        best = [entry.creatives[0][1] for entry in ranked]
        entries = np.empty(len(ranked), dtype=object)
        for number, entry in enumerate(ranked):
            entries[number] = entry
        return cls(
            positions=np.array([entry.position for entry in ranked], dtype=np.intp),
            scores=np.array([entry.score for entry in ranked], dtype=np.float64),
            line_item_ids=np.array([entry.line_item.id for entry in ranked], dtype=np.int64),
            explorable=np.array(
                [
                    not entry.line_item.is_cpm
                    and posterior.impressions < ranking.EXPLORE_BELOW_IMPRESSIONS
                    for entry, posterior in zip(ranked, best, strict=True)
                ],
                dtype=bool,
            ),
            alpha=np.array([posterior.alpha for posterior in best], dtype=np.float64),
            beta=np.array([posterior.beta for posterior in best], dtype=np.float64),
            entries=entries,
        )


class Walk:
    """The ranked entries whose bit is set in a decision's mask, in ranking order (as
    `DeliveryState.candidates` lists them), each found as an iteration reaches it: the pod's
    walk stops after a few dozen of a few hundred candidates, and selecting every one first
    (a numpy pass and a list of objects) cost more than testing one byte of the mask for each
    entry walked. Iterable again, from the top (the walk starts over after a lost race)."""

    __slots__ = ("_order", "_mask")

    def __init__(self, order: list[tuple[int, int, Ranked]], mask: bytes) -> None:
        self._order = order
        self._mask = mask

    def __iter__(self) -> Iterator[Ranked]:
        mask = self._mask
        for byte, bit, entry in self._order:
            if mask[byte] & bit:
                yield entry


def mask_bits(mask: int, size: int) -> np.ndarray:
    """Bit i of `mask` as element i of a boolean array of `size`."""
    raw = (mask & ((1 << size) - 1)).to_bytes((size + 7) // 8 or 1, "little")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=size, bitorder="little")
    return bits.view(bool)


def thompson_order(
    scores: np.ndarray,
    line_item_ids: np.ndarray,
    explorable: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    rng: random.Random,
) -> np.ndarray:
    """The order of an exploring decision: explorable entries' scores scaled by a Thompson
    sample of their best creative's pCTR over its mean, all drawn at once; best first, ties by
    line item id. The draws come from a generator seeded by `rng`, so a seeded decision stays
    reproducible."""
    scores = scores.copy()
    if explorable.any():
        # A model's pCTR of exactly 0 or 1 would give a zero parameter, which no beta has.
        a = np.maximum(alpha[explorable], 1e-9)
        b = np.maximum(beta[explorable], 1e-9)
        draws = np.random.default_rng(rng.getrandbits(64)).beta(a, b)
        scores[explorable] *= draws / (a / (a + b))
    return np.lexsort((line_item_ids, -scores))


@dataclass
class DeliveryState:
    index_version: int
    minute: datetime
    refreshed_at: float
    live: LiveWindow
    budget_ok: int
    ranked: list[Ranked]  # best score first
    by_position: dict[int, Ranked] = field(default_factory=dict)
    arrays: RankArrays | None = None
    size: int = 0  # line items in the index: the width of the masks
    whole: bool = True  # False between a heal's phases: budgets known, caps and fatigue not

    # Arrays derived from this state for a CTR champion (ads.decisioning.scoring), by the
    # champion's scorer: made at its first decision, gone with the state.
    derived: dict = field(default_factory=dict)
    # Each ranked entry, in order, with the byte of a mask that holds its bit and that bit
    # (`walk`).
    walk_order: list[tuple[int, int, Ranked]] = field(default_factory=list)

    def walk(self, eligible: int) -> Walk:
        """The ranked entries whose bit is set in `eligible`, in ranking order, found as they
        are iterated (`Walk`)."""
        size = self.size
        mask = (eligible & ((1 << size) - 1)).to_bytes((size + 7) // 8 or 1, "little")
        return Walk(self.walk_order, mask)

    def chosen(self, eligible: int) -> np.ndarray:
        """The places in `ranked` of the entries whose bit is set in `eligible`, ascending."""
        arrays = self.arrays
        if arrays is None or not self.ranked:
            return np.empty(0, dtype=np.intp)
        return np.flatnonzero(mask_bits(eligible, self.size)[arrays.positions])

    def candidates(self, eligible: int, explore_rng: random.Random | None = None) -> list[Ranked]:
        """The ranked entries whose bit is set in `eligible`, in ranking order; with
        `explore_rng`, in the order of an exploring decision (`thompson_order`)."""
        arrays = self.arrays
        if arrays is None or not self.ranked:
            return []
        chosen = self.chosen(eligible)
        if explore_rng is not None and len(chosen):
            chosen = chosen[
                thompson_order(
                    arrays.scores[chosen],
                    arrays.line_item_ids[chosen],
                    arrays.explorable[chosen],
                    arrays.alpha[chosen],
                    arrays.beta[chosen],
                    explore_rng,
                )
            ]
        return arrays.entries[chosen].tolist()


def _read_keys(index: DemandIndex, at: datetime) -> tuple[list[str], list, list[str]]:
    """The counters read_state reads, in order: per line item its budget's (day, lifetime)
    totals and pass probability, per creative (line item by line item, so each line item's
    are side by side) its impressions and clicks, per category the same, then the guard keys
    (epoch, healing, budgets known). The list only changes with the index or an account's
    local date, so it is kept for the next refresh (ten thousand keys take longer to format
    than to fetch; the Redis backend keeps the command it packed for the same list, too)."""
    days = tuple(sorted({(str(tz), at.astimezone(tz).date()) for tz in _zones(index)}))
    cached = _keys_cache.get(id(index))
    if cached is not None and cached[0] is index and cached[1] == days:
        return cached[2]
    creatives = [creative for line_item in index.line_items for creative in line_item.creatives]
    categories = sorted({creative.category for creative in creatives})
    read: list[str] = []
    for line_item in index.line_items:
        # The day total is also what pacing compares with its curve (money reserved for CPM,
        # spent for CPC today).
        read += [*budget_keys(line_item, at), keys.pacing_throttle(line_item.id)]
    for creative in creatives:
        read += [keys.creative_impressions(creative.id), keys.creative_clicks(creative.id)]
    for category in categories:
        read += [keys.category_impressions(category), keys.category_clicks(category)]
    read += [keys.epoch(), keys.healing(), keys.budgets_known()]
    result = (read, creatives, categories)
    _keys_cache.clear()
    _keys_cache[id(index)] = (index, days, result)
    return result


def _zones(index: DemandIndex) -> set:
    return {line_item.tz for line_item in index.line_items}


_keys_cache: dict[int, tuple[DemandIndex, tuple, tuple[list[str], list, list[str]]]] = {}


@dataclass
class _Posteriors:
    """The last refresh's creative posteriors, best first, per line item, with the counts and
    category rates they came from: a refresh recomputes only the line items whose counts
    moved (most do not from one second to the next), not three thousand posteriors and a
    thousand sorts."""

    index: DemandIndex | None = None
    category_values: list[int] = field(default_factory=list)
    by_line_item: dict[int, tuple[list[int], list]] = field(default_factory=dict)


_posteriors = _Posteriors()


def read_state(index: DemandIndex, store: Counters, at: datetime) -> DeliveryState:
    """One read of the counters for every line item and creative in the index; raises
    DeliveryStateUnavailable when the counters are not known (a store that lost its state
    reads as zeros: every budget unspent); between a heal's phases, known budgets are
    enough."""
    global _posteriors
    minute = at.replace(second=0, microsecond=0)
    pacing.pacing_tick(store=store, line_items=index.line_items, at=at)
    line_items = index.line_items
    read, creatives, categories = _read_keys(index, at)
    read_values = store.get_many(read)
    epoch, healing, budgets_known = read_values[-3:]
    whole = bool(epoch) and not healing
    if not whole and not budgets_known:
        # Lost, or being rebuilt: these values may be zeros that are not true.
        raise DeliveryStateUnavailable("The counters are not known yet.", lost=True)

    budget_ok, per_line_item = 0, []
    for position, line_item in enumerate(line_items):
        day_total, lifetime_total, stored_p = read_values[3 * position : 3 * position + 3]
        if budget_rejection(line_item, day_total, lifetime_total) is None:
            budget_ok |= 1 << position
        p = pacing.pass_probability(stored_p) if line_item.pacing == "even" else 1.0
        per_line_item.append((p, pacing.pacing_factor(line_item, at, day_total)))
    creatives_start = 3 * len(line_items)
    categories_start = creatives_start + 2 * len(creatives)
    category_values = read_values[categories_start:-3]
    category_rate = {
        category: ranking.category_ctr(*category_values[2 * number : 2 * number + 2])
        for number, category in enumerate(categories)
    }
    last = _posteriors
    if last.index is not index or last.category_values != category_values:
        last = _Posteriors()
    current = _Posteriors(index, category_values)

    ranked = []
    offset = creatives_start
    for position, line_item in enumerate(line_items):
        count = 2 * len(line_item.creatives)
        if not count:
            continue
        stats = read_values[offset : offset + count]
        offset += count
        known = last.by_line_item.get(line_item.id)
        if known is not None and known[0] == stats:
            posteriors = known[1]
        else:
            posteriors = sorted(
                (
                    (
                        creative,
                        ranking.creative_posterior(
                            category_rate[creative.category],
                            stats[2 * number],
                            stats[2 * number + 1],
                        ),
                    )
                    for number, creative in enumerate(line_item.creatives)
                ),
                key=lambda pair: (-pair[1].mean, pair[0].id),
            )
        current.by_line_item[line_item.id] = (stats, posteriors)
        p, factor = per_line_item[position]
        score = ranking.expected_value(
            is_cpm=line_item.is_cpm,
            bid=line_item.bid_micros / 1_000_000,
            pctr=posteriors[0][1].mean,
            pacing_factor=factor,
        )
        ranked.append(Ranked(position, line_item, score, p, posteriors, factor))
    _posteriors = current
    # Best score first, ties by line item id: ordered in numpy (a key function over a
    # thousand entries cost a tenth of the refresh).
    order = np.lexsort(
        (
            np.array([entry.line_item.id for entry in ranked], dtype=np.int64),
            -np.array([entry.score for entry in ranked], dtype=np.float64),
        )
    )
    ranked = [ranked[number] for number in order.tolist()]
    return DeliveryState(
        index_version=index.version,
        minute=minute,
        refreshed_at=time.monotonic(),
        live=_live_window(index, minute),
        budget_ok=budget_ok,
        ranked=ranked,
        by_position={entry.position: entry for entry in ranked},
        arrays=RankArrays.build(ranked),
        size=len(line_items),
        whole=whole,
        walk_order=[(entry.position >> 3, 1 << (entry.position & 7), entry) for entry in ranked],
    )


def live_now(index: DemandIndex, state: DeliveryState, context) -> int:
    """The live mask at the exact decision time."""
    mask = state.live.whole_minute
    for position in state.live.boundary:
        if live_rejection(index.line_items[position], context) is None:
            mask |= 1 << position
    return mask


class StateHolder:
    def __init__(self) -> None:
        self._state: DeliveryState | None = None
        self._lock = threading.Lock()
        self.background = False  # see IndexHolder.background

    def _fresh(self, index: DemandIndex, at: datetime) -> DeliveryState | None:
        state = self._state
        fresh_for = REFRESH_SECONDS * (5 if self.background else 1)
        if (
            state is not None
            and state.index_version == index.version
            and state.minute == at.replace(second=0, microsecond=0)
            and time.monotonic() - state.refreshed_at < fresh_for
        ):
            return state
        return None

    def get(self, index: DemandIndex, store: Counters, at: datetime) -> DeliveryState:
        state = self._fresh(index, at)
        if state is not None:
            return state
        with self._lock:
            # Another thread (the refresher, at a new minute) may have refreshed meanwhile:
            # then this one does not read everything again.
            state = self._fresh(index, at)
            if state is None:
                state = self._state = read_state(index, store, at)
            return state

    def refresh(self, index: DemandIndex, store: Counters, at: datetime) -> DeliveryState:
        with self._lock:
            self._state = read_state(index, store, at)
            return self._state

    def reset(self) -> None:
        self._state = None


state_holder = StateHolder()
