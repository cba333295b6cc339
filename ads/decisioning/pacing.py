"""Even pacing: a feedback controller that spreads a line item's daily budget over the day.

Every minute (the first process to claim the minute runs it), for each even-paced line item:

1. target(t) = daily budget × the fraction of the account's local day gone by at t.
2. The money reserved in the last minute, divided by the pass probability p that was in force,
   estimates the unthrottled demand per minute D (smoothed, so one quiet minute does not swing it).
3. To be back on the target curve HORIZON minutes from now, the line item needs
   (target(t + HORIZON) − reserved today) / HORIZON per minute; p = that need / D, within [0, 1].

Decisions let an even line item through with probability p (the `pacing` stage), and rank it by a
pacing factor that nudges line items behind their curve up and those ahead of it down. ASAP line
items always pass with factor 1. The budget itself is a hard stop enforced by reservations.
"""

from __future__ import annotations

from datetime import datetime

from ads.decisioning.index import LineItemEntry
from ads.delivery import keys
from ads.delivery.counters import Counters

HORIZON_MINUTES = 15
SMOOTHING = 0.3
PASS_SCALE = 1_000_000  # p is stored in millionths
FACTOR_RANGE = (0.8, 1.25)


def day_fraction(at: datetime, line_item: LineItemEntry) -> float:
    local = at.astimezone(line_item.tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return min(1.0, (local - midnight).total_seconds() / 86400)


def target_micros(line_item: LineItemEntry, at: datetime) -> float:
    return line_item.daily_budget_micros * day_fraction(at, line_item)


def pacing_factor(line_item: LineItemEntry, at: datetime, reserved_today: int) -> float:
    if line_item.pacing != "even" or reserved_today <= 0:
        return 1.0
    ratio = target_micros(line_item, at) / reserved_today
    low, high = FACTOR_RANGE
    return min(high, max(low, ratio))


def next_pass_probability(
    *,
    p: float,
    demand: float,
    reserved_today: int,
    reserved_last: int,
    target_ahead: float,
    minutes_since_last: int = 1,
) -> tuple[float, float]:
    """One controller step: the new pass probability and demand estimate. The controller
    only ticks in minutes that see a decision, so the spend since the last tick is spread
    over the minutes it took."""
    spent_since_last = reserved_today - reserved_last
    if spent_since_last < 0:  # a new day began: the last total was yesterday's
        spent_since_last = reserved_today
    if p >= 0.01 and spent_since_last > 0:
        observed = spent_since_last / max(1, minutes_since_last) / p
        demand = observed if demand <= 0 else (1 - SMOOTHING) * demand + SMOOTHING * observed
    need_per_minute = (target_ahead - reserved_today) / HORIZON_MINUTES
    if demand <= 0:
        return 1.0, demand
    return min(1.0, max(0.0, need_per_minute / demand)), demand


def pacing_tick(*, store: Counters, line_items: list[LineItemEntry], at: datetime) -> int:
    """Run the controller for every even line item once for the minute of `at`, if no other
    process did. Returns how many line items were updated."""
    minute = at.replace(second=0, microsecond=0)
    even = [li for li in line_items if li.pacing == "even"]
    if not even or not store.claim(keys.pacing_tick(minute), ttl=keys.PACING_TICK_TTL):
        return 0
    read = []
    for line_item in even:
        day = at.astimezone(line_item.tz).date()
        read += [
            keys.pacing_throttle(line_item.id),
            keys.pacing_demand(line_item.id),
            keys.reserved_day(line_item.id, day),
            keys.pacing_last_reserved(line_item.id),
            keys.pacing_last_tick(line_item.id),
        ]
    values = store.get_many(read)
    updates: dict[str, int] = {}
    this_tick = int(minute.timestamp() // 60)
    for position, line_item in enumerate(even):
        p_stored, demand, reserved_today, reserved_last, last_tick = values[
            5 * position : 5 * position + 5
        ]
        # Past midnight the horizon's target is the whole day's budget.
        target_ahead = line_item.daily_budget_micros * min(
            1.0, day_fraction(at, line_item) + HORIZON_MINUTES / 1440
        )
        new_p, new_demand = next_pass_probability(
            p=pass_probability(p_stored),
            demand=float(demand),
            reserved_today=reserved_today,
            reserved_last=reserved_last,
            target_ahead=target_ahead,
            minutes_since_last=this_tick - last_tick if last_tick else 1,
        )
        # Stored +1 so that a p of exactly 0 is told apart from "never set".
        updates[keys.pacing_throttle(line_item.id)] = int(new_p * PASS_SCALE) + 1
        updates[keys.pacing_demand(line_item.id)] = int(new_demand)
        updates[keys.pacing_last_reserved(line_item.id)] = reserved_today
        updates[keys.pacing_last_tick(line_item.id)] = this_tick
    store.set_many(updates, ttl=keys.DAY_TTL)
    return len(even)


def pass_probability(stored: int) -> float:
    """Decode a stored pass probability (0 when never set means: not throttled)."""
    return 1.0 if stored <= 0 else (stored - 1) / PASS_SCALE
