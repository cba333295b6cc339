"""Even pacing over a simulated day: spend follows the target curve."""

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ads.decisioning import pacing
from ads.decisioning.engine import decide
from ads.delivery import keys
from ads.delivery.counters import counters
from ads.models import LineItem
from tests.ads.conftest import line_item_with_creative

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_exploration")]


def simulate_day(world, line_item: LineItem, rate_per_minute) -> dict[int, int]:
    """Decisions minute by minute through a day; returns reserved spend at each hour mark."""
    rng = random.Random(11)
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        days=1
    )
    reserved_at_hour = {}
    for minute in range(24 * 60):
        at = midnight + timedelta(minutes=minute)
        if minute % 60 == 0:
            (reserved,) = counters().get_many([keys.reserved_day(line_item.pk, at.date())])
            reserved_at_hour[minute // 60] = reserved
        expected = rate_per_minute(minute / 60)
        arrivals = int(expected) + (rng.random() < expected - int(expected))
        for arrival in range(arrivals):
            decide(world.request(), at=at + timedelta(seconds=arrival), rng=rng)
    end = midnight + timedelta(hours=23, minutes=59, seconds=59)
    (reserved,) = counters().get_many([keys.reserved_day(line_item.pk, end.date())])
    reserved_at_hour[24] = reserved
    return reserved_at_hour


@pytest.mark.parametrize(
    "rate_per_minute",
    [
        pytest.param(lambda hour: 4.0, id="flat traffic"),
        # Viewers come in the evening: five times the traffic at 21:00 as at 09:00.
        pytest.param(lambda hour: 3.0 + 2.0 * math.sin((hour - 15) / 24 * 2 * math.pi), id="daily"),
    ],
)
def test_even_pacing_stays_within_ten_percent_of_the_target_curve(world, rate_per_minute):
    # $10 CPM: a cent an impression; $10 a day is 1,000 impressions of ~4,300 opportunities.
    line_item = line_item_with_creative(
        world.acme,
        bid=Decimal("10"),
        daily_budget=Decimal("10"),
        lifetime_budget=Decimal("1000"),
        pacing=LineItem.Pacing.EVEN,
    )
    reserved = simulate_day(world, line_item, rate_per_minute)
    budget = 10_000_000
    for hour in range(2, 25):
        target = budget * hour / 24
        assert abs(reserved[hour] - target) <= 0.10 * target, (hour, reserved[hour], target)
    assert reserved[24] <= budget


def test_asap_spends_as_fast_as_traffic_allows(world):
    line_item = line_item_with_creative(
        world.acme,
        bid=Decimal("10"),
        daily_budget=Decimal("1"),
        lifetime_budget=Decimal("1000"),
        pacing=LineItem.Pacing.ASAP,
    )
    reserved = simulate_day(world, line_item, lambda hour: 4.0)
    # 100 impressions at 4 a minute: spent in the first hour, then a hard stop.
    assert reserved[1] == 1_000_000
    assert reserved[24] == 1_000_000


def test_the_controller_throttles_when_ahead_and_opens_when_behind():
    ahead, demand = pacing.next_pass_probability(
        p=1.0, demand=0.0, reserved_today=600, reserved_last=500, target_ahead=700
    )
    # 100 spent last minute at p=1: demand 100/min; need (700 − 600) / 15 per minute.
    assert demand == 100
    assert ahead == pytest.approx(100 / 15 / 100)
    behind, _ = pacing.next_pass_probability(
        p=0.1, demand=100.0, reserved_today=100, reserved_last=95, target_ahead=5_000
    )
    assert behind == 1.0
    spent_out, _ = pacing.next_pass_probability(
        p=0.5, demand=100.0, reserved_today=5_000, reserved_last=4_990, target_ahead=4_000
    )
    assert spent_out == 0.0


def test_a_quiet_spell_does_not_inflate_the_demand_estimate():
    # 50 spent over the 10 minutes since the last tick at p = 0.5: 10 a minute of demand.
    p, demand = pacing.next_pass_probability(
        p=0.5,
        demand=0.0,
        reserved_today=550,
        reserved_last=500,
        target_ahead=700,
        minutes_since_last=10,
    )
    assert demand == 10
    assert p == pytest.approx(1.0)  # needs (700 - 550) / 15 = 10 a minute: all of the demand
