"""pCTR inside a decision: the CTR champion scores every candidate creative of a request in
one batched call. Without a champion the engine keeps its Beta-posterior estimates."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np

from ads.decisioning import ranking
from ads.decisioning.index import CreativeEntry, DemandIndex
from ads.decisioning.state import DeliveryState, Ranked, thompson_order
from ads.delivery import keys
from ads.delivery.counters import MICROS, Counters
from ads.learning.features import (
    FATIGUE_BUCKETS,
    FORMAT_VERSION,
    fatigue_bucket,
    fatigue_from_buckets,
    viewer_clock,
)
from ml import selectors as ml_selectors
from ml.models import ModelKind


def ctr_champion():
    """The CTR champion of this process (None until one is trained and promoted, or while
    the champion is an artifact of an older feature layout, which cannot score requests)."""
    current = ml_selectors.champion(ModelKind.CTR)
    if current is None or getattr(current.model, "format_version", 1) != FORMAT_VERSION:
        return None
    return current


def viewer_fatigue(store: Counters, viewer_id: int, at: datetime) -> tuple[float, float, float]:
    """The viewer's fatigue columns at `at` from the delivery counters: one read of the
    counters of their last FATIGUE_BUCKETS ten-minute buckets (bumped by each accepted
    impression, ads.services.events)."""
    bucket = fatigue_bucket(at)
    counts = store.get_many(
        [keys.viewer_ads(viewer_id, bucket - k) for k in range(FATIGUE_BUCKETS)]
    )
    return fatigue_from_buckets(counts, at)


def predict_ctr(
    model,
    index: DemandIndex,
    context,
    creatives: list[CreativeEntry],
    at: datetime,
    *,
    fatigue: tuple[float, float, float] | None = None,
    positions: Sequence[int] | None = None,
) -> np.ndarray:
    """pCTR of each creative for this decision's viewer, title, break and time: at position 1
    (shape (creatives,)), or at each of `positions` (shape (positions, creatives)), with the
    viewer's `fatigue` (`viewer_fatigue`; None: unknown, NaN). The rows are built with numpy
    from the request's row and each creative's cached columns
    (ads.learning.features.ServingRows)."""
    rows = model.serving.matrix(
        _request_columns(context),
        context.viewer.id,
        creatives,
        at,
        fatigue=fatigue,
        positions=positions,
    )
    scores = model.predict_matrix(rows)
    return scores if positions is None else scores.reshape(len(positions), len(creatives))


def _request_columns(context) -> dict:
    """The decision's own columns, as ads.learning.features.ServingRows takes them."""
    title, viewer = context.title, context.viewer
    return {
        "age_band": viewer.age_band,
        "gender": viewer.gender,
        "region": context.region,
        "device": context.device,
        "maturity": title.maturity_rating,
        "year": title.year,
        "break_minutes": context.ad_break.offset_seconds / 60,
        "is_preroll": float(context.ad_break.offset_seconds == 0),
        "genres": title.genre_slugs,
    }


def _recentred(entry: Ranked, pctrs) -> list:
    """The entry's creatives with their posteriors re-centred on `pctrs` (one per creative,
    in the entry's order), each with the strength its impressions earned, best first."""
    posteriors = []
    for (creative, posterior), pctr in zip(entry.creatives, pctrs, strict=True):
        strength = posterior.alpha + posterior.beta
        posteriors.append(
            (
                creative,
                ranking.Posterior(pctr * strength, (1 - pctr) * strength, posterior.impressions),
            )
        )
    posteriors.sort(key=lambda pair: (-pair[1].mean, pair[0].id))
    return posteriors


def rescored_entry(entry: Ranked, pctrs: Sequence[float]) -> Ranked:
    """A CPC entry with its creatives' posteriors re-centred on the model's `pctrs` (one per
    creative, in the entry's order), each with the strength its impressions earned (for
    exploration to sample), best first, and its expected value from the best."""
    posteriors = _recentred(entry, pctrs)
    score = ranking.expected_value(
        is_cpm=False,
        bid=entry.line_item.bid_micros / MICROS,
        pctr=posteriors[0][1].mean,
        pacing_factor=entry.pacing_factor,
    )
    return Ranked(
        entry.position,
        entry.line_item,
        score,
        entry.pass_probability,
        posteriors,
        entry.pacing_factor,
    )


class ForestScoring:
    """A LightGBM champion's pCTR for a decision's candidates without the booster's row-by-row
    walk (ads.learning.forest): which leaves each creative's own columns allow is computed
    once per creative (a row of `table`, filled on first sight), which leaves the context
    allows once per title break and once per viewer's columns (each cached: decisions repeat
    them); their intersection leaves one leaf a tree, the creative's, and their values sum to
    the booster's raw score, the same double."""

    CACHE_SIZE = 20_000  # context parts kept (per kind); past it, start again

    def __init__(self, model) -> None:
        forest = model.forest
        if forest is None:
            raise ValueError("Not a LightGBM binary model.")
        self.model = model
        self.forest = forest
        self.serving = serving = model.serving
        width = serving.width
        self.creative_columns = np.zeros(width, dtype=bool)
        self.creative_columns[serving.creative_columns] = True
        # The context's columns in two parts, each cached by its values: the title and break's
        # (the same for every decision at that break) and the rest (viewer, device, clock).
        self.break_columns = np.zeros(width, dtype=bool)
        self.break_columns[[serving.index[name] for name in BREAK_COLUMNS]] = True
        self.break_columns[
            serving.genre_offset : serving.genre_offset + len(serving.features.genres)
        ] = True
        self.viewer_columns = ~(self.creative_columns | self.break_columns)
        self.parts: dict[bool, dict[tuple, np.ndarray]] = {True: {}, False: {}}
        # creative entry → column of the table (uint64[tree, creative]: the leaves each
        # creative's own columns allow); swapped whole (see ServingRows.cache).
        self.cache: tuple[dict, np.ndarray] = ({}, np.empty((forest.trees, 0), dtype=np.uint64))

    def creative_rows(self, creatives) -> np.ndarray:
        """Each creative's row in the table (filled on first sight)."""
        slot, table = self.cache
        missing = list({creative: None for creative in creatives if creative not in slot})
        if missing:
            rows = np.full((len(missing), self.serving.width), np.nan)
            rows[:, self.serving.creative_columns] = self.serving.creative_block(missing)
            added = self.forest.masks(self.forest.agreement(rows, self.creative_columns))
            slot = {**slot, **{entry: table.shape[1] + n for n, entry in enumerate(missing)}}
            table = np.ascontiguousarray(np.hstack([table, added.T]))
            self.cache = (slot, table)
        return np.fromiter((slot[creative] for creative in creatives), np.intp, len(creatives))

    def _context_masks(self, context, at: datetime, fatigue) -> np.ndarray:
        """uint64[tree]: the leaves the decision's context allows, from two cached parts: the
        title and break's columns (keyed by their index entries, which an edit replaces), and
        the viewer's, request's and clock's (keyed by the values they are made from)."""
        viewer = context.viewer
        region = context.region
        viewer_key = (
            viewer.age_band,
            viewer.gender,
            region,
            context.device,
            viewer_clock(region, at),
            fatigue if self.serving.fatigue else None,
            viewer.id if self.serving.viewer_history else None,
        )
        break_key = (context.title, context.ad_break)
        of_break, of_viewer = self.parts[True].get(break_key), self.parts[False].get(viewer_key)
        if of_break is None or of_viewer is None:
            row = self.serving.context_row(_request_columns(context), viewer.id, at, 1, fatigue)[
                None, :
            ]
            for part, key, columns in (
                (True, break_key, self.break_columns),
                (False, viewer_key, self.viewer_columns),
            ):
                cached = self.parts[part]
                if len(cached) >= self.CACHE_SIZE:
                    cached.clear()
                cached[key] = self.forest.masks(self.forest.agreement(row, columns))[0]
            of_break, of_viewer = self.parts[True][break_key], self.parts[False][viewer_key]
        return of_break & of_viewer

    def pctr(self, context, at: datetime, table_rows: np.ndarray, fatigue=None) -> np.ndarray:
        """pCTR at position 1 of the creatives at `table_rows` for the decision's `context`."""
        _, table = self.cache
        reached = (
            table.take(table_rows, axis=1) & self._context_masks(context, at, fatigue)[:, None]
        )
        raw = self.forest.raw_from_masks(reached)
        return self.model.calibrated(self.forest.probability(raw))


# The context's columns set by the title and its break.
BREAK_COLUMNS = ("maturity", "year", "break_minutes", "is_preroll")


@dataclass
class _StateArrays:
    """A state's CPC entries' creatives as flat arrays (entry after entry, each entry's
    creatives in its order), for one champion."""

    owner: np.ndarray  # the entry's place in state.ranked
    table_rows: np.ndarray
    strength: np.ndarray  # the creative's posterior strength (alpha + beta)
    impressions: np.ndarray
    creative_ids: np.ndarray
    counts: np.ndarray  # per ranked entry: its creatives here (CPM: none)
    bid: np.ndarray  # per ranked entry
    pacing_factor: np.ndarray
    is_cpc: np.ndarray

    @classmethod
    def build(cls, state: DeliveryState, scoring: ForestScoring) -> _StateArrays:
        owner: list[int] = []
        creatives: list[CreativeEntry] = []
        strength: list[float] = []
        impressions: list[int] = []
        for number, entry in enumerate(state.ranked):
            if entry.line_item.is_cpm:
                continue
            for creative, posterior in entry.creatives:
                owner.append(number)
                creatives.append(creative)
                strength.append(posterior.alpha + posterior.beta)
                impressions.append(posterior.impressions)
        ranked = state.ranked
        return cls(
            owner=np.array(owner, dtype=np.intp),
            table_rows=scoring.creative_rows(creatives),
            strength=np.array(strength, dtype=np.float64),
            impressions=np.array(impressions, dtype=np.int64),
            creative_ids=np.array([creative.id for creative in creatives], dtype=np.int64),
            counts=np.bincount(np.array(owner, dtype=np.intp), minlength=len(ranked)),
            bid=np.array([entry.line_item.bid_micros / MICROS for entry in ranked]),
            pacing_factor=np.array([entry.pacing_factor for entry in ranked]),
            is_cpc=np.array([not entry.line_item.is_cpm for entry in ranked], dtype=bool),
        )


class _Rescored(Ranked):
    """A CPC entry as `rescored_entry` makes it, with the score computed with the arrays
    (the same double), whose creatives are re-centred when first read: the pod's walk passes
    over many entries on their line item alone (an advertiser already in the pod)."""

    def __init__(self, entry: Ranked, score: float, pctrs: np.ndarray) -> None:
        self.position = entry.position
        self.line_item = entry.line_item
        self.score = score
        self.pass_probability = entry.pass_probability
        self.pacing_factor = entry.pacing_factor
        self._entry, self._pctrs = entry, pctrs

    def __getattr__(self, name: str):
        if name != "creatives":
            raise AttributeError(name)
        self.creatives = _recentred(self._entry, self._pctrs.tolist())
        return self.creatives


class LazyRanking(Sequence[Ranked]):
    """Ranked entries in a known order, each made when first reached: a pod walks a few dozen
    of a few hundred candidates, and a CPC entry's re-centred posteriors cost more than its
    place in the order."""

    def __init__(self, count: int, make: Callable[[int], Ranked]) -> None:
        self._count = count
        self._make = make
        self._made: list[Ranked] = []

    def __len__(self) -> int:
        return self._count

    def _entry(self, number: int) -> Ranked:
        if not 0 <= number < self._count:
            raise IndexError(number)
        while len(self._made) <= number:
            self._made.append(self._make(len(self._made)))
        return self._made[number]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            return [self._entry(number) for number in range(*key.indices(self._count))]
        return self._entry(key + self._count if key < 0 else key)

    def __iter__(self) -> Iterator[Ranked]:
        for number in range(self._count):
            yield self._entry(number)


def forest_ranking(
    state: DeliveryState,
    eligible: int,
    model,
    context,
    at: datetime,
    store: Counters,
    explore_rng: random.Random | None,
) -> LazyRanking:
    """The candidates in the order `engine._model_scored` then `engine._explored` give them
    (expected value with the champion's pCTR, best first, ties by line item id; with
    `explore_rng`, the exploring decision's Thompson order, drawn alike), computed as arrays:
    every CPC candidate's creatives scored at once (`ForestScoring`), each line item's value
    from its best, and the entries themselves made only as the pod's walk reaches them."""
    scoring = model.cached("forest_scoring", ForestScoring)
    arrays = state.derived.get(scoring)
    if arrays is None:
        arrays = state.derived[scoring] = _StateArrays.build(state, scoring)
    ranked = state.arrays
    if ranked is None:
        return LazyRanking(0, state.ranked.__getitem__)
    chosen = state.chosen(eligible)
    scores = ranked.scores[chosen]
    alpha, beta = ranked.alpha[chosen], ranked.beta[chosen]
    explorable = np.zeros(len(chosen), dtype=bool)
    owner, pctr = np.empty(0, dtype=np.intp), np.empty(0)  # the CPC creatives scored
    cpc = arrays.is_cpc[chosen]
    if cpc.any():
        places = chosen[cpc]  # the CPC candidates' places in `ranked`, ascending
        selected = np.zeros(len(state.ranked), dtype=bool)
        selected[places] = True
        flat = np.flatnonzero(selected[arrays.owner])  # their creatives, entry after entry
        owner = arrays.owner[flat]
        starts = np.cumsum(arrays.counts[places]) - arrays.counts[places]
        # Between a heal's phases the fatigue buckets are not known: unknown, not zeros.
        fatigue = (
            viewer_fatigue(store, context.viewer.id, at)
            if model.features.fatigue and state.whole
            else None
        )
        pctr = scoring.pctr(context, at, arrays.table_rows[flat], fatigue)
        strength = arrays.strength[flat]
        # As rescored_entry computes them: the re-centred posterior and its mean.
        creative_alpha, creative_beta = pctr * strength, (1 - pctr) * strength
        mean = creative_alpha / (creative_alpha + creative_beta)
        best_mean = np.maximum.reduceat(mean, starts)
        scores[cpc] = arrays.bid[places] * best_mean * 1000 * arrays.pacing_factor[places]
        if explore_rng is not None:  # the best creative's posterior (ties: the lower id)
            best = np.lexsort((arrays.creative_ids[flat], -mean, owner))[starts]
            alpha[cpc], beta[cpc] = creative_alpha[best], creative_beta[best]
            explorable[cpc] = arrays.impressions[flat[best]] < ranking.EXPLORE_BELOW_IMPRESSIONS
    line_item_ids = ranked.line_item_ids[chosen]
    order = np.lexsort((line_item_ids, -scores))
    if explore_rng is not None and len(order):
        order = order[
            thompson_order(
                scores[order],
                line_item_ids[order],
                explorable[order],
                alpha[order],
                beta[order],
                explore_rng,
            )
        ]
    places = chosen[order].tolist()
    values = scores[order].tolist()

    def make(number: int) -> Ranked:
        place = places[number]
        entry = state.ranked[place]
        if entry.line_item.is_cpm:
            return entry
        start = int(np.searchsorted(owner, place))
        return _Rescored(entry, values[number], pctr[start : start + len(entry.creatives)])

    return LazyRanking(len(places), make)


# Slot ranking re-scores this many line items per slot of the pod, from the top of the
# position-1 ranking: enough for the walk's skips (separation, duration, pacing) without
# scoring every candidate at every position.
SHORTLIST_PER_SLOT = 2


def rank_by_slot(
    candidates: list[Ranked],
    model,
    index: DemandIndex,
    context,
    at: datetime,
    *,
    slots: int,
    fatigue: tuple[float, float, float] | None = None,
) -> list[Ranked]:
    """Order the head of the ranking slot by slot: the i-th line item is the one worth most
    at the i-th slot of the pod, its creatives scored at that position (attention fades down
    a pod, and not evenly: a long ad suffers more late in it), so a CPC line item that wins
    slot 1 may lose slot 3 to a CPM bid. `candidates` come ranked by their pCTR at position 1
    (`slots` ≥ 2 and a shortlist of SHORTLIST_PER_SLOT × slots line items are re-scored, in
    one batched call); the rest follow in that order. The walk that fills the pod may skip a
    line item (separation, duration, pacing), so the i-th one is scored at the slot it would
    fill when none before it is skipped."""
    head, tail = candidates[: SHORTLIST_PER_SLOT * slots], candidates[SHORTLIST_PER_SLOT * slots :]
    cpc = [entry for entry in head if not entry.line_item.is_cpm]
    if slots < 2 or not cpc:
        return candidates
    creatives = [creative for entry in cpc for creative, _ in entry.creatives]
    later = predict_ctr(
        model, index, context, creatives, at, fatigue=fatigue, positions=range(2, slots + 1)
    )
    values = np.empty((len(head), slots))
    tables: dict[int, np.ndarray] = {}  # a CPC entry's pCTR per (slot, creative)
    offset = 0
    for number, entry in enumerate(head):
        if entry.line_item.is_cpm:
            values[number] = entry.score  # a CPM bid is worth the same in every slot
            continue
        count = len(entry.creatives)
        first = np.array([posterior.mean for _, posterior in entry.creatives])
        table = np.vstack([first, later[:, offset : offset + count]])
        offset += count
        tables[number] = table
        bid = entry.line_item.bid_micros / MICROS
        values[number] = bid * table.max(axis=1) * 1000 * entry.pacing_factor
    ordered: list[Ranked] = []
    taken = np.zeros(len(head), dtype=bool)
    for slot in range(slots):
        number = int(np.argmax(np.where(taken, -np.inf, values[:, slot])))  # ties: earlier
        if taken[number]:
            break  # fewer line items than slots
        taken[number] = True
        entry = head[number]
        scored = tables.get(number)
        if scored is not None:
            posteriors = _recentred(entry, scored[slot])
            entry = replace(entry, score=float(values[number, slot]), creatives=posteriors)
        ordered.append(entry)
    ordered += [entry for number, entry in enumerate(head) if not taken[number]]
    return ordered + tail
