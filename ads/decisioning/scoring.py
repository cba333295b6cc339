"""pCTR inside a decision: the CTR champion scores every candidate creative of a request in
one batched call. Without a champion the engine keeps its Beta-posterior estimates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np

from ads.decisioning import ranking
from ads.decisioning.index import CreativeEntry, DemandIndex
from ads.decisioning.state import Ranked
from ads.delivery import keys
from ads.delivery.counters import MICROS, Counters
from ads.learning.features import (
    FATIGUE_BUCKETS,
    FORMAT_VERSION,
    fatigue_bucket,
    fatigue_from_buckets,
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
    title, viewer = context.title, context.viewer
    request = {
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
    rows = model.serving.matrix(
        request, viewer.id, creatives, at, fatigue=fatigue, positions=positions
    )
    scores = model.predict_matrix(rows)
    return scores if positions is None else scores.reshape(len(positions), len(creatives))


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
            posteriors = []
            for (creative, posterior), pctr in zip(entry.creatives, scored[slot], strict=True):
                strength = posterior.alpha + posterior.beta
                posteriors.append(
                    (
                        creative,
                        ranking.Posterior(
                            pctr * strength, (1 - pctr) * strength, posterior.impressions
                        ),
                    )
                )
            posteriors.sort(key=lambda pair: (-pair[1].mean, pair[0].id))
            entry = replace(entry, score=float(values[number, slot]), creatives=posteriors)
        ordered.append(entry)
    ordered += [entry for number, entry in enumerate(head) if not taken[number]]
    return ordered + tail
