"""The embedded default's counters: a SQLite file that every local process shares, behaving as
the in-memory and Redis backends do, rebuilt from the event table when it is new."""

import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from ads import services
from ads.delivery import keys
from ads.delivery.counters import (
    Bump,
    DeliveryStateUnavailable,
    LocalCounters,
    RedisCounters,
    SqliteCounters,
    ViewerStateUnknown,
    counters,
    database_identity,
    rebuild_if_new,
)
from tests.ads.conftest import line_item_with_creative

BASE_DIR = Path(__file__).resolve().parents[2]
PLAYER = "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) InterludePlayer/1.0"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request, tmp_path):
    """Each behaviour below holds for the local backends and Redis alike (Redis when the
    suite runs with REDIS_URL)."""
    if request.param == "memory":
        return LocalCounters()
    if request.param == "redis":
        if not settings.REDIS_URL:
            pytest.skip("Redis: no REDIS_URL")
        store = RedisCounters(settings.REDIS_URL)
        store._redis.flushdb()
    else:
        store = SqliteCounters(tmp_path / "counters.sqlite3")
    store.mark_known()  # an empty store knows nothing until rebuilt (see test_faults.py)
    return store


def test_adds_reads_and_sets(store):
    store.add_many([Bump("a", 2), Bump("b", 5), Bump("a", 3)])
    assert store.get_many(["a", "b", "missing"]) == [5, 5, 0]
    store.set_many({"a": 40, "c": 7})
    assert store.get_many(["a", "c"]) == [40, 7]
    assert store.get_many([]) == []


def test_a_reservation_is_whole_or_nothing_and_remembers_the_full_key(store):
    group = [Bump("budget", 30, limit=100), Bump("cap", 1, limit=2)]
    assert store.reserve([group, group, group]) == [True, True, False]
    assert store.get_many(["budget", "cap"]) == [60, 2]  # the third took nothing
    assert store.full.known_full(group)
    assert store.reserve([[Bump("budget", 40, limit=100)]]) == [True]
    assert store.reserve([[Bump("budget", 1, limit=100)]]) == [False]
    assert store.get_many(["budget"]) == [100]


def test_between_a_heals_phases_reservations_pass_and_entries_apply_their_first_part(store):
    """A store that lost its state refuses every reservation and application. Once a heal has
    written the budgets (`keys.budgets_known`, the healing key still held), reservations are
    accepted within their limits, and a backlog entry's first part is applied once (its marker
    says so) while its part on a viewer's keys waits; the epoch accepts everything, applies the
    rest once, and forgets the budgets' mark."""
    budget = [Bump("budget", 40, limit=100)]
    capped = [Bump("budget", 10, limit=100), Bump("cap", 1, limit=1)]
    marker, first, viewers = keys.applied(7), [Bump("spent", 5)], [Bump(keys.viewer_ads(1, 2), 1)]
    counted = ["budget", "cap", "spent", keys.viewer_ads(1, 2), marker]
    store.delete_prefix(keys.PREFIX)  # lost
    with pytest.raises(DeliveryStateUnavailable):
        store.reserve([budget])
    assert store.claim(keys.healing(), ttl=60)
    with pytest.raises(DeliveryStateUnavailable):  # healing, budgets not written yet
        store.reserve([budget])
    with pytest.raises(DeliveryStateUnavailable):
        store.apply_once(marker, first, viewers)
    store.hold([keys.healing(), keys.budgets_known()], ttl=60)
    assert store.reserve([budget, budget, budget]) == [True, True, False]
    assert store.reserve([capped]) == [True]
    for _ in range(2):
        assert store.apply_once(marker, first, viewers) is False
    assert store.get_many(counted) == [90, 1, 5, 0, keys.APPLIED_BUDGETS]
    assert not store.state_known()

    store.mark_known()
    assert store.state_known()
    assert store.get_many([keys.budgets_known(), keys.healing()]) == [0, 0]
    for _ in range(2):
        assert store.apply_once(marker, first, viewers) is True
    assert store.get_many(counted) == [90, 1, 5, 1, keys.APPLIED_ALL]
    assert store.apply_once(keys.applied(8), first, viewers) is True  # both parts in one step
    assert store.get_many(["spent", keys.viewer_ads(1, 2)]) == [10, 2]


def test_a_heals_steps_that_make_the_state_known_need_its_claim(store):
    """Setting budgets known, renewing them and setting the epoch are refused once the heal's
    claim is gone (the store lost its state again: a Redis restart), and change nothing."""
    store.delete_prefix(keys.PREFIX)
    held = [keys.healing(), keys.budgets_known()]
    with pytest.raises(DeliveryStateUnavailable):
        store.hold(held, ttl=60)
    with pytest.raises(DeliveryStateUnavailable):
        store.mark_known(claim=1)
    assert store.get_many([keys.epoch(), *held]) == [0, 0, 0]
    assert not store.state_known()
    assert store.claim(keys.healing(), ttl=60)
    store.hold(held, ttl=60)
    assert store.get_many(held) == [1, 1]
    store.mark_known(claim=1)
    assert store.state_known()
    assert store.get_many([keys.epoch(), *held]) == [1, 0, 0]


def test_between_a_heals_phases_a_capped_reservation_waits_for_its_viewers_caps(store):
    """With the budgets known, a reservation naming a viewer's marker (`known`) is refused
    (ViewerStateUnknown, nothing reserved) until `raise_many` raised the viewer's cap keys and
    set the marker; `raise_many` raises a key to its floor and never lowers it. With the epoch,
    the marker is not asked for."""
    marker = keys.viewer_caps_known(5)
    capped = [Bump("budget", 10, limit=100), Bump("cap", 1, limit=3)]
    store.delete_prefix(keys.PREFIX)
    assert store.claim(keys.healing(), ttl=60)
    store.hold([keys.healing(), keys.budgets_known()], ttl=60)
    with pytest.raises(ViewerStateUnknown):
        store.reserve([capped], known=marker)
    assert store.get_many(["budget", "cap"]) == [0, 0]

    store.raise_many([Bump("cap", 2, 600), Bump("other", 4)], marker=Bump(marker, 1, 600))
    assert store.reserve([capped, capped], known=marker) == [True, False]
    store.raise_many([Bump("cap", 2, 600), Bump("other", 1)])  # an older count: kept higher
    assert store.get_many(["budget", "cap", "other", marker]) == [10, 3, 4, 1]
    store.raise_many([Bump("other", 6)])
    assert store.get_many(["other"]) == [6]

    store.mark_known()
    store.release(marker)
    assert store.reserve([[Bump("cap2", 1, limit=1)]], known=marker) == [True]


def test_threads_racing_on_one_viewers_caps_between_a_heals_phases_stay_within_them(store):
    """Eight threads (as api processes would) decide for one viewer with one impression under
    a cap of 3 between a heal's phases: each finds the caps unknown, reads them (the table's
    count: 1) and raises to it with the marker, and reserves; whoever reads last, two pods are
    reserved in all, never more."""
    marker = keys.viewer_caps_known(5)
    group = [Bump("cap", 1, 600, 3)]
    store.delete_prefix(keys.PREFIX)
    assert store.claim(keys.healing(), ttl=60)
    store.hold([keys.healing(), keys.budgets_known()], ttl=60)
    start = threading.Barrier(8)
    reserved = []

    def decide_again_and_again() -> None:
        start.wait()
        for _ in range(4):
            try:
                (ok,) = store.reserve([group], known=marker)
            except ViewerStateUnknown:
                store.raise_many([Bump("cap", 1, 600)], marker=Bump(marker, 1, 600))
                (ok,) = store.reserve([group], known=marker)
            reserved.append(ok)
            # Another process whose marker ran out reads the caps again.
            store.raise_many([Bump("cap", 1, 600)], marker=Bump(marker, 1, 600))

    threads = [threading.Thread(target=decide_again_and_again) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reserved.count(True) == 2
    assert store.get_many(["cap"]) == [3]


def test_many_keys_are_set_and_raised_as_a_few_are(store):
    """A heal's thousands of keys (Redis packs them into scripts, RAISE_CHUNK keys each): set,
    and raised, with their ttl, as a few keys are."""
    many = {f"fatigue:{number}": number for number in range(12_000)}
    store.set_many(many, ttl=600)
    store.raise_many([Bump(f"fatigue:{number}", 6_000, 600) for number in range(12_000)])
    assert store.get_many(list(many)) == [max(number, 6_000) for number in range(12_000)]
    if isinstance(store, RedisCounters):
        assert 0 < store._redis.ttl("fatigue:11999") <= 600


@pytest.mark.skipif(not settings.REDIS_URL, reason="Redis: no REDIS_URL")
def test_redis_reloads_its_script_and_reports_a_wrong_key(store):
    """Redis forgets scripts when restarted (SCRIPT FLUSH here): the reservation loads it
    again and counts once. A key holding something else is Redis's error, raised whole, and
    the connection is left clean for the next reservation."""
    if not isinstance(store, RedisCounters):
        pytest.skip("Redis only")
    store._redis.script_flush()
    group = [Bump("budget", 30, ttl=60, limit=100), Bump("cap", 1, limit=2)]
    assert store.reserve([group, group]) == [True, True]
    assert store.get_many(["budget", "cap"]) == [60, 2]
    assert 0 < store._redis.ttl("budget") <= 60 and store._redis.ttl("cap") == -1
    store._redis.rpush("listed", "x")
    with pytest.raises(redis.exceptions.ResponseError):
        store.reserve([group, [Bump("listed", 1)]])
    assert store.reserve([[Bump("budget", 40, limit=100)]]) == [True]
    assert store.get_many(["budget"]) == [100]
    lifetime = 123_456_789_012_345_678  # micros: beyond a Lua number's exact integers
    assert store.reserve([[Bump("spent", lifetime, limit=-1 + 2 * lifetime)]]) == [True]
    assert store.get_many(["spent"]) == [lifetime]


def test_claims_and_deleting_a_prefix(store):
    assert store.claim_many(["tick:1", "tick:2"], ttl=60) == [True, True]
    assert store.claim("tick:1", ttl=60) is False
    assert store.claim_many(["tick:1", "tick:3"], ttl=60) == [False, True]
    store.add_many([Bump("il:x", 1), Bump("il:{li:1}:y", 1), Bump("other", 1)])
    store.delete_prefix("il:")
    assert store.get_many(["il:x", "il:{li:1}:y", "other"]) == [0, 0, 1]


def test_expiry_is_wall_clock_and_a_bump_keeps_the_first_expiry(tmp_path):
    clock = Clock()
    store = SqliteCounters(tmp_path / "counters.sqlite3", clock=clock)
    store.add_many([Bump("day", 1, ttl=100)])
    clock.now += 60
    store.add_many([Bump("day", 1, ttl=100)])  # does not push the expiry back
    assert store.get_many(["day"]) == [2]
    clock.now += 50
    assert store.get_many(["day"]) == [0]
    store.add_many([Bump("day", 4, ttl=100)])  # an expired key starts again
    assert store.get_many(["day"]) == [4]
    assert store.claim("lock", ttl=10) is True
    clock.now += 11
    assert store.claim("lock", ttl=10) is True
    store.set_many({"pace": 9}, ttl=5)
    clock.now += 6
    assert store.get_many(["pace"]) == [0]


def test_the_counts_survive_the_process_and_a_new_connection(tmp_path):
    path = tmp_path / "counters.sqlite3"
    SqliteCounters(path).add_many([Bump("spent", 12_500)])
    assert SqliteCounters(path).get_many(["spent"]) == [12_500]


# Runs in another interpreter: counts, then reserves against a shared limit as fast as it can.
WORKER = textwrap.dedent(
    """
    import sys
    from ads.delivery.counters.sqlite import SqliteCounters
    from ads.delivery.counters.base import Bump

    path, name, attempts = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = SqliteCounters(path)
    store.mark_known()  # as a rebuild leaves it
    store.add_many([Bump(f"seen:{name}", 1)])
    print(store.get_many(["seen:first", "seen:second"]))
    won = sum(
        store.reserve([[Bump("budget", 1, limit=150), Bump(f"won:{name}", 1)]])[0]
        for _ in range(attempts)
    )
    print(won)
    """
)


def run_worker(path: Path, name: str, attempts: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(path), name, str(attempts)],
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_share_counts_and_a_reservation_limit(tmp_path):
    path = tmp_path / "counters.sqlite3"
    first = run_worker(path, "first", attempts=0)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert out.split("\n")[0] == "[1, 0]"
    # The second process sees what the first counted; then both race for a limit of 150.
    racers = [run_worker(path, "second", attempts=120), run_worker(path, "third", attempts=120)]
    outputs = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        outputs.append(out.split("\n"))
    assert outputs[0][0] == "[1, 1]"
    won = [int(lines[1]) for lines in outputs]
    assert sum(won) == 150  # 240 attempts, never past the limit
    store = SqliteCounters(path)
    assert store.get_many(["budget", "won:second", "won:third"]) == [150, *won]


# -- rebuilt from the event table when new -------------------------------------------------


@dataclass
class Spent:
    at: datetime
    line_item_id: int


@pytest.fixture(scope="module")
def migrations_table(django_db_setup, django_db_blocker) -> None:
    """The table of applied migrations, which a database made from the models lacks (the
    suite's --no-migrations); made outside any test's transaction (SQLite cannot make a table
    inside one with its foreign key checks on)."""
    with django_db_blocker.unblock():
        MigrationRecorder(connection).ensure_schema()


@pytest.fixture
def spent_today(world, migrations_table) -> Spent:
    """Three impressions of a $12.50 CPM line item, recorded now (in the memory counters), in
    a database that looks migrated: the suite makes its databases from the models
    (--no-migrations), and a file is rebuilt only for a database with migrations applied."""
    MigrationRecorder(connection).record_applied("ads", "0001_initial")
    line_item_with_creative(world.acme)
    now = timezone.now()
    for viewer_seed in range(3):
        (slot,) = world.decide(at=now, seed=viewer_seed).pod
        services.events_record(
            events=[services.IncomingEvent(slot.token, "impression", f"i{viewer_seed}")],
            user_agent=PLAYER,
            at=now,
        )
    return Spent(at=now, line_item_id=slot.line_item.id)


def watched_keys(world, spent: Spent) -> list[str]:
    today = spent.at.date()  # the account's time zone is UTC
    return [
        keys.spent_day(spent.line_item_id, today),
        keys.reserved_day(spent.line_item_id, today),
        keys.live(world.acme.pk, today, "impressions"),
        keys.live(world.acme.pk, today, "spend"),
        keys.live_platform(today, "impressions"),
    ]


def test_a_new_file_is_rebuilt_from_the_event_table(world, spent_today, settings, tmp_path):
    watched = watched_keys(world, spent_today)
    assert counters().get_many(watched) == [37_500, 37_500, 3, 37_500, 3]
    settings.COUNTERS_BACKEND = "sqlite"
    settings.COUNTERS_SQLITE_PATH = tmp_path / "counters.sqlite3"
    counters.cache_clear()
    store = counters()
    assert isinstance(store, SqliteCounters)
    assert store.get_many(watched) == [37_500, 37_500, 3, 37_500, 3]
    assert store.counts_for() == database_identity()
    # Another process opening the same file finds it built: no second rebuild.
    store.add_many([Bump(watched[2], 1)])
    assert rebuild_if_new(SqliteCounters(settings.COUNTERS_SQLITE_PATH)) is False
    assert store.get_many([watched[2]]) == [4]


def test_a_file_built_for_another_database_starts_over(world, spent_today, tmp_path):
    store = SqliteCounters(tmp_path / "counters.sqlite3")
    store.start_over_for("another-database@2020-01-01")
    store.add_many([Bump(keys.live(world.acme.pk, spent_today.at.date(), "impressions"), 999)])
    assert rebuild_if_new(store) is True
    assert store.get_many(watched_keys(world, spent_today)) == [37_500, 37_500, 3, 37_500, 3]


def test_day_totals_of_a_day_partly_before_since_are_left_alone(world, spent_today):
    spent_key, reserved_key, live_key, *_ = watched_keys(world, spent_today)
    lifetime_key = keys.spent_lifetime(spent_today.line_item_id)
    counters().delete_prefix(keys.PREFIX)
    services.counters_rebuild(since=spent_today.at - timedelta(seconds=1))
    # A day's spend and live totals wait for a whole day (part of one is no day's total, and
    # the event totals hold whole days); lifetime spend is whole.
    assert counters().get_many([spent_key, lifetime_key, live_key]) == [0, 37_500, 0]
    services.counters_rebuild(since=spent_today.at - timedelta(days=1))
    assert counters().get_many([spent_key, live_key]) == [37_500, 3]
