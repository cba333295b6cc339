"""The CTR model's fatigue columns: the viewer's ads in the last hour and three hours and the
minutes since their last ad, equal whether training counts them from the event table or a
decision reads them from the delivery counters, and never counting an impression that had not
happened yet. And ranking with positions: each line item scored at the slot it would fill."""

import datetime as dt

import pytest

from ads import services
from ads.decisioning.scoring import viewer_fatigue
from ads.delivery.counters import counters
from ads.learning import training
from ads.learning.features import FATIGUE_MINUTES, fatigue_from_buckets
from ads.models import Creative
from tests.ads.conftest import line_item_with_creative
from tests.ads.test_events import PLAYER

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_exploration")]


def test_fatigue_from_the_counters_buckets_by_hand():
    at = dt.datetime(2026, 12, 1, 20, 31, 30, tzinfo=dt.UTC)  # in the bucket from 20:30
    counts = [0] * 18
    counts[2] = 1  # 20:10–20:20
    counts[5] = 2  # 19:40–19:50: the last bucket of "the last hour"
    counts[6] = 4  # 19:30–19:40: in the three hours only
    counts[17] = 1  # 17:40–17:50: the oldest bucket read
    # Hour: 1 + 2; three hours: 1 + 2 + 4 + 1; the last ad's bucket began at 20:10, 21.5 min ago.
    assert fatigue_from_buckets(counts, at) == (3.0, 8.0, 21.5)
    assert fatigue_from_buckets([0] * 18, at) == (0.0, 0.0, FATIGUE_MINUTES)  # none: 180
    assert fatigue_from_buckets([0] * 17 + [1], at) == (0.0, 1.0, 171.5)  # 17:40 → 20:31:30


def _show(world, at, positions=1):
    """A decision at `at` whose first `positions` ads the player reports as shown, 30 s
    apart from `at`; returns the decision."""
    decision = world.decide(at=at)
    assert len(decision.pod) >= positions
    services.events_record(
        events=[
            services.IncomingEvent(
                slot.token,
                "impression",
                f"{decision.decision_id}-{n}",
                at + dt.timedelta(seconds=30 * n),
            )
            for n, slot in enumerate(decision.pod[:positions])
        ],
        user_agent=PLAYER,
        at=at + dt.timedelta(minutes=2),
    )
    return decision


def test_training_and_serving_count_the_same_impressions_and_none_later(world):
    # Flights from before the first ad below: the factory's start (a day before the clock)
    # falls after 17:35 yesterday when the tests run between 17:35 and 20:30 UTC.
    began = world.at - dt.timedelta(hours=4)
    line_item_with_creative(world.acme, category=Creative.Category.BEVERAGES, start_at=began)
    line_item_with_creative(world.globex, category=Creative.Category.TECHNOLOGY, start_at=began)
    now = world.at + dt.timedelta(minutes=1)  # 20:31:00, in the bucket from 20:30
    # The viewer's earlier ads (bucket k = how many ten-minute buckets before 20:30's).
    _show(world, now - dt.timedelta(hours=2, minutes=56))  # 17:35, k = 18: too old
    _show(world, now - dt.timedelta(hours=2, minutes=46))  # 17:45, k = 17: three hours
    _show(world, now - dt.timedelta(minutes=56))  # 19:35, k = 6: three hours, not the hour
    _show(world, now - dt.timedelta(minutes=50), positions=2)  # 19:41 and 19:41:30, k = 5
    # What the decision at 20:31 reads from the counters: in the hour 2 ads, in three hours 4,
    # and the last one's bucket began at 19:40, 51 minutes before.
    served = viewer_fatigue(counters(), world.viewer.id, now)
    assert served == (2.0, 4.0, 51.0)
    # Its pod plays (two ads, at 20:31:00 and 20:31:30), then more ads come later.
    target = _show(world, now, positions=2)
    _show(world, now + dt.timedelta(minutes=14), positions=2)  # 20:45: after the decision
    frame = training.training_frame(
        start=world.at - dt.timedelta(days=1), end=world.at + dt.timedelta(hours=1)
    )
    rows = frame[frame["decision_id"].map(lambda d: d.hex) == target.decision_id]
    assert rows["position"].tolist() == [1, 2]
    columns = ["ads_last_hour", "ads_last_3h", "minutes_since_ad"]
    # Both of its rows see what the decision saw: not the pod's own first ad, not 20:45's.
    for values in rows[columns].itertuples(index=False):
        assert tuple(values) == served
    # The first decision of all saw nothing: no ad in three hours.
    first = frame.iloc[0]
    assert (first.ads_last_hour, first.ads_last_3h, first.minutes_since_ad) == (
        0.0,
        0.0,
        FATIGUE_MINUTES,
    )
    # The decision at 20:45 (bucket from 20:40): in its hour (from 19:50) the target's two
    # ads; in its three hours (from 17:50) also 19:35's and 19:41's three; the last bucket
    # with an ad began at 20:30, 15 minutes before.
    later = frame[frame["occurred_at"] >= now + dt.timedelta(minutes=14)].iloc[0]
    assert (later.ads_last_hour, later.ads_last_3h, later.minutes_since_ad) == (2.0, 5.0, 15.0)
