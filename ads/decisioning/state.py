"""What the engine needs to know besides the index, refreshed at most once a second (and each
new minute of the decision clock) per process: which line items are live this minute, pass
probabilities, budget totals, creative click-through estimates and the resulting ranking.

Budgets and caps read here are only a prefilter: the reservation at the decision enforces them
exactly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ads.decisioning import keys, pacing, ranking
from ads.decisioning.counters import Counters
from ads.decisioning.eligibility import budget_keys, budget_rejection, live_rejection
from ads.decisioning.index import CreativeEntry, DemandIndex, LineItemEntry
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
class DeliveryState:
    index_version: int
    minute: datetime
    refreshed_at: float
    live: LiveWindow
    budget_ok: int
    ranked: list[Ranked]  # best score first
    by_position: dict[int, Ranked] = field(default_factory=dict)


def read_state(index: DemandIndex, store: Counters, at: datetime) -> DeliveryState:
    """One read of the counters for every line item and creative in the index."""
    minute = at.replace(second=0, microsecond=0)
    pacing.pacing_tick(store=store, line_items=index.line_items, at=at)
    line_items = index.line_items
    creatives = list(index.creatives.values())
    categories = sorted({creative.category for creative in creatives})
    read: list[str] = []
    for line_item in line_items:
        read += [*budget_keys(line_item, at), keys.pacing_throttle(line_item.id)]
        if line_item.is_cpm:
            read.append(keys.reserved_day(line_item.id, at.astimezone(line_item.tz).date()))
        else:
            read.append(keys.spent_day(line_item.id, at.astimezone(line_item.tz).date()))
    for creative in creatives:
        read += [keys.creative_impressions(creative.id), keys.creative_clicks(creative.id)]
    for category in categories:
        read += [keys.category_impressions(category), keys.category_clicks(category)]
    values = iter(store.get_many(read))

    budget_ok, per_line_item = 0, {}
    for position, line_item in enumerate(line_items):
        day_total, lifetime_total, stored_p, today = (next(values) for _ in range(4))
        if budget_rejection(line_item, day_total, lifetime_total) is None:
            budget_ok |= 1 << position
        p = pacing.pass_probability(stored_p) if line_item.pacing == "even" else 1.0
        per_line_item[line_item.id] = (p, pacing.pacing_factor(line_item, at, today))
    creative_stats = {creative.id: (next(values), next(values)) for creative in creatives}
    category_rate = {
        category: ranking.category_ctr(next(values), next(values)) for category in categories
    }

    ranked = []
    for position, line_item in enumerate(line_items):
        if not line_item.creatives:
            continue
        posteriors = sorted(
            (
                (
                    creative,
                    ranking.creative_posterior(
                        category_rate[creative.category], *creative_stats[creative.id]
                    ),
                )
                for creative in line_item.creatives
            ),
            key=lambda pair: (-pair[1].mean, pair[0].id),
        )
        p, factor = per_line_item[line_item.id]
        score = ranking.expected_value(
            is_cpm=line_item.is_cpm,
            bid=line_item.bid_micros / 1_000_000,
            pctr=posteriors[0][1].mean,
            pacing_factor=factor,
        )
        ranked.append(Ranked(position, line_item, score, p, posteriors, factor))
    ranked.sort(key=lambda entry: (-entry.score, entry.line_item.id))
    return DeliveryState(
        index_version=index.version,
        minute=minute,
        refreshed_at=time.monotonic(),
        live=live_window(index, minute),
        budget_ok=budget_ok,
        ranked=ranked,
        by_position={entry.position: entry for entry in ranked},
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

    def get(self, index: DemandIndex, store: Counters, at: datetime) -> DeliveryState:
        state = self._state
        minute = at.replace(second=0, microsecond=0)
        fresh_for = REFRESH_SECONDS * (5 if self.background else 1)
        if (
            state is not None
            and state.index_version == index.version
            and state.minute == minute
            and time.monotonic() - state.refreshed_at < fresh_for
        ):
            return state
        return self.refresh(index, store, at)

    def refresh(self, index: DemandIndex, store: Counters, at: datetime) -> DeliveryState:
        with self._lock:
            self._state = read_state(index, store, at)
            return self._state

    def reset(self) -> None:
        self._state = None


state_holder = StateHolder()
