"""Faults: a lost or unreachable counters store never costs a 500, an event, a double count, or
a budget or cap spent twice (ads.services.recovery).

The Redis tests start a Redis server of their own (redis-server on a free port, stopped by its
process), since they stop and restart it; the rest runs on the in-memory counters."""

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
import redis
from django.db import connection
from django.test import Client
from django.utils import timezone

from ads import services
from ads.decisioning.state import state_holder
from ads.delivery import keys
from ads.delivery.counters import Bump, DeliveryStateUnavailable, ViewerStateUnknown, counters
from ads.learning.features import fatigue_bucket
from ads.models import AdEvent, CounterBacklog, LineItem
from catalog.models import Viewer
from tests.ads.conftest import line_item_with_creative, rebuild
from tests.factories import AdEventFactory, ViewerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_exploration")]
PLAYER = "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) InterludePlayer/1.0"


class RedisServer:
    """A redis-server of this test's own, without persistence: stopped, it comes back empty,
    as a crashed cache does."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_server(settings, db):
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    server = RedisServer()
    server.start()
    try:
        settings.COUNTERS_BACKEND = "redis"
        settings.REDIS_URL = server.url
        counters.cache_clear()
        assert services.counters_heal() is True  # a new, empty Redis: known once built
        rebuild()  # the heal built an index before the test's line items
        yield server
    finally:
        server.stop()
        counters.cache_clear()


@pytest.fixture
def api(client):
    _, raw_key = services.platform_key_create(name="Living-room player")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw_key}"
    return client


@pytest.fixture
def served_by_a_server(db):
    """As in a server process: a refresher thread heals (as it does first here: on Redis the
    suite starts each test with an empty database), so requests do not."""
    assert services.counters_heal() is True
    state_holder.background = True
    yield
    state_holder.background = False


def decide(api, world) -> dict:
    response = api.post(
        "/api/v1/decisions",
        {
            "viewer_id": world.viewer.external_id,
            "title_id": world.title.pk,
            "ad_break_id": world.ad_break.pk,
            "device": "ctv",
        },
        content_type="application/json",
    )
    assert response.status_code == 200
    return response.json()


def batch(api, tokens: list[str], event_type: str = "impression") -> dict:
    response = api.post(
        "/api/v1/events",
        {
            "events": [
                {"event_id": f"e-{n}", "token": token, "type": event_type}
                for n, token in enumerate(tokens)
            ]
        },
        content_type="application/json",
        HTTP_USER_AGENT=PLAYER,
    )
    assert response.status_code == 200
    return response.json()


def token_of(payload: dict) -> str:
    return payload["pod"][0]["tracking"]["impression"].split("/t/")[1].split("/")[0]


def spend_keys(line_item, creative) -> list[str]:
    today = timezone.now().date()
    return [
        keys.spent_day(line_item.id, today),
        keys.spent_lifetime(line_item.id),
        keys.creative_impressions(creative.id),
        keys.live(line_item.campaign.advertiser_id, today, "impressions"),
    ]


def test_redis_down_degrades_decisions_and_stores_events_counted_once_after(
    api, world, redis_server, served_by_a_server
):
    line_item = line_item_with_creative(world.acme)
    creative = line_item.creatives.get()
    tokens = [token_of(decide(api, world)) for _ in range(3)]
    assert batch(api, tokens[:1])["accepted"] == 1

    redis_server.stop()
    degraded = decide(api, world)
    assert (degraded["pod"], degraded["reason"]) == ([], "degraded")
    down = batch(api, tokens[1:])
    assert (down["accepted"], down["duplicates"]) == (2, 0)  # stored, and said so
    assert AdEvent.objects.count() == 3
    assert CounterBacklog.objects.count() == 1  # their counter effects, kept
    link = api.get(f"/t/{tokens[0]}/first_quartile", HTTP_USER_AGENT=PLAYER)
    assert link.status_code == 204

    redis_server.start()  # empty: the state is lost
    with pytest.raises(DeliveryStateUnavailable):
        counters().reserve([[Bump("x", 1, limit=5)]])
    assert decide(api, world)["reason"] == "degraded"  # not served before the heal
    assert services.counters_heal() is True
    assert CounterBacklog.objects.count() == 0  # counted by the rebuild
    assert counters().get_many(spend_keys(line_item, creative)) == [3 * 12_500, 3 * 12_500, 3, 3]
    # The batch sent again (its first answer lost): nothing counted twice.
    assert batch(api, tokens[1:])["duplicates"] == 2
    assert services.counters_backlog_drain() == 0
    assert counters().get_many(spend_keys(line_item, creative)) == [3 * 12_500, 3 * 12_500, 3, 3]
    assert decide(api, world)["pod"]


def test_a_restart_is_healed_by_the_first_request_where_no_refresher_runs(api, world, redis_server):
    line_item = line_item_with_creative(world.acme)
    creative = line_item.creatives.get()
    assert batch(api, [token_of(decide(api, world))])["accepted"] == 1
    redis_server.stop()
    redis_server.start()
    # Pooled connections to the old server are made again without an error reaching anyone,
    # and the request that finds the state lost heals it.
    assert decide(api, world)["pod"]
    assert counters().get_many(spend_keys(line_item, creative)) == [12_500, 12_500, 1, 1]


def test_a_spent_budget_stays_spent_through_a_loss(world, served_by_a_server):
    at = timezone.now()
    # Two $12.50 CPM impressions (to two viewers), not three.
    line_item = line_item_with_creative(world.acme, daily_budget=Decimal("0.03"), pacing="asap")
    ViewerFactory(external_id="viewer-2", age_band="25_34", region="us_west", device="ctv")
    rebuild()
    for viewer in ("viewer-1", "viewer-2"):
        (slot,) = world.decide(at=at, viewer_id=viewer).pod
        services.event_track(token=slot.token, event_type="impression", user_agent=PLAYER)
    assert world.decide(at=at).reason == "no_eligible_ads"

    counters().delete_prefix(keys.PREFIX)  # the store lost everything
    state_holder.reset()
    assert world.decide(at=at).reason == "degraded"
    assert services.counters_heal() is True
    state_holder.reset()
    assert world.decide(at=at).reason == "no_eligible_ads"
    today = at.date()
    assert counters().get_many([keys.reserved_day(line_item.id, today)]) == [25_000]


def test_frequency_caps_are_rebuilt_from_the_impressions(world, served_by_a_server):
    at = timezone.now()
    line_item = line_item_with_creative(world.acme, frequency_cap_day=1, pacing="asap")
    rebuild()
    (slot,) = world.decide(at=at).pod
    services.event_track(token=slot.token, event_type="impression", user_agent=PLAYER)
    assert world.decide(at=at).reason == "no_eligible_ads"

    counters().delete_prefix(keys.PREFIX)
    assert services.counters_heal() is True
    state_holder.reset()
    decision = world.decide(at=at, explain=True)
    assert decision.reason == "no_eligible_ads"  # still capped for this viewer
    assert [(entry["stage"], entry["rule"]) for entry in decision.explain] == [
        ("frequency_cap", "frequency_cap_day")
    ]
    today = at.date()
    assert counters().get_many([keys.cap_day(line_item.id, world.viewer.id, today)]) == [1]


def test_a_heal_holds_decisions_and_events_back_then_the_backlog_counts_once(
    world, served_by_a_server
):
    line_item = line_item_with_creative(world.acme)
    creative = line_item.creatives.get()
    rebuild()
    at = timezone.now()
    (slot,) = world.decide(at=at).pod
    store = counters()
    assert store.claim(keys.healing(), ttl=60)  # another process is healing
    outcome = services.event_track(token=slot.token, event_type="impression", user_agent=PLAYER)
    assert outcome.status == "accepted"
    assert world.decide(at=at).reason == "degraded"
    assert services.counters_backlog_drain(at=at + timedelta(seconds=5)) == 0
    assert store.get_many(spend_keys(line_item, creative)) == [0, 0, 0, 0]

    store.release(keys.healing())
    assert services.counters_backlog_drain(at=at + timedelta(seconds=5)) == 1
    assert services.counters_backlog_drain(at=at + timedelta(seconds=5)) == 0
    assert store.get_many(spend_keys(line_item, creative)) == [12_500, 12_500, 1, 1]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def each_backend(request, settings, tmp_path, db):
    """The test on each counters backend, healed once as a new store is: this process's
    memory, a SQLite file, a Redis server of its own; as in a server process, a decision does
    not heal (its refresher thread does)."""
    server = None
    if request.param == "redis":
        if shutil.which("redis-server") is None:
            pytest.skip("needs redis-server")
        server = RedisServer()
        server.start()
        settings.REDIS_URL = server.url
    elif request.param == "sqlite":
        settings.COUNTERS_SQLITE_PATH = tmp_path / "counters.sqlite3"
    settings.COUNTERS_BACKEND = request.param
    counters.cache_clear()
    try:
        assert services.counters_heal() is True
        rebuild()
        state_holder.background = True
        yield request.param
    finally:
        state_holder.background = False
        if server is not None:
            server.stop()
        counters.cache_clear()


def test_between_the_heals_phases_every_line_item_serves_within_its_limits(world, each_backend):
    """Phase 1 (budgets written) serves every line item: the uncapped CPM one within its
    rebuilt budget, the capped one within each viewer's caps (read at the viewer's first
    decision), the CPC one within its rebuilt spend. After phase 2 no budget or cap was passed
    across the heal."""
    at = timezone.now()
    # Four $12.50 CPM impressions a day.
    uncapped = line_item_with_creative(world.acme, daily_budget=Decimal("0.05"), pacing="asap")
    capped = line_item_with_creative(
        world.globex, category="automotive", frequency_cap_day=1, pacing="asap"
    )
    cpc = line_item_with_creative(
        world.initech, category="finance", pricing="cpc", bid=Decimal("2.00"), pacing="asap"
    )
    viewers = [world.viewer.external_id]
    for number in range(2, 7):
        viewers.append(f"viewer-{number}")
        ViewerFactory(external_id=viewers[-1], age_band="25_34", region="us_west", device="ctv")
    rebuild()
    tokens = []

    def served(decision) -> set[int]:
        tokens.extend(slot.token for slot in decision.pod)
        return {slot.line_item.id for slot in decision.pod}

    everyone = {uncapped.pk, capped.pk, cpc.pk}
    assert served(world.decide(at=at)) == everyone
    for token in tokens:
        services.event_track(token=token, event_type="impression", user_agent=PLAYER)

    store = counters()
    store.delete_prefix(keys.PREFIX)  # the store lost everything
    state_holder.reset()
    assert world.decide(at=at).reason == "degraded"
    between = []

    def phase_one_written() -> None:
        state_holder.reset()
        for viewer in viewers:
            decision = world.decide(at=at, viewer_id=viewer, explain=True)
            between.append(served(decision))
        # A pod holding a cap key needs the viewer's caps known, whatever a state read says:
        # a viewer no decision above read (a fixed id could be one of theirs, the ids of a
        # PostgreSQL test database running on from earlier tests).
        unread = Viewer.objects.order_by("-pk").values_list("pk", flat=True)[0] + 1
        group = [Bump(keys.cap_day(capped.pk, unread, at.date()), 1, keys.DAY_TTL, 1)]
        with pytest.raises(ViewerStateUnknown):
            store.reserve([group], known=keys.viewer_caps_known(unread))

    services.counters_rebuild(store=store, after_budgets=phase_one_written)
    # viewer-1 saw the capped one before the loss; three more impressions fit the budget (one
    # was spent before the loss), then none; the CPC one, without clicks, serves each.
    expected = [{uncapped.pk}] + [{uncapped.pk, capped.pk}] * 2 + [{capped.pk}] * 3
    assert between == [line_items | {cpc.pk} for line_items in expected]
    today = at.date()
    assert store.get_many([keys.reserved_day(uncapped.pk, today)]) == [50_000]

    state_holder.reset()
    assert served(world.decide(at=at)) == {cpc.pk}  # capped for viewer-1, budget spent
    assert served(world.decide(at=at, viewer_id=viewers[1])) == {cpc.pk}
    for token in tokens[3:]:
        services.event_track(token=token, event_type="impression", user_agent=PLAYER)
    impressions = AdEvent.objects.filter(event_type=AdEvent.Type.IMPRESSION)
    spent = sum(impressions.filter(line_item=uncapped).values_list("cost_micros", flat=True))
    assert spent == 50_000 == uncapped.daily_budget * 1_000_000
    per_viewer = Counter(impressions.filter(line_item=capped).values_list("viewer", flat=True))
    assert sorted(per_viewer.values()) == [1] * 6
    assert store.get_many([keys.budgets_known()]) == [0]
    assert CounterBacklog.objects.count() == 0


def test_between_the_phases_a_capped_line_item_serves_a_viewer_with_history_up_to_its_caps(
    world, each_backend
):
    """A viewer who saw two capped line items once each before the loss (a day cap of 2, a
    lifetime cap of 2) is served each once more between the heal's phases (its caps read from
    the table at its first decision), then not again: not between the phases, not after the
    second phase wrote its older counts over the ones reserved meanwhile."""
    at = timezone.now()
    daily = line_item_with_creative(world.acme, frequency_cap_day=2, pacing="asap")
    ever = line_item_with_creative(
        world.globex, category="automotive", frequency_cap_lifetime=2, pacing="asap"
    )
    rebuild()
    first = world.decide(at=at)
    assert {slot.line_item.id for slot in first.pod} == {daily.pk, ever.pk}
    for slot in first.pod:
        services.event_track(token=slot.token, event_type="impression", user_agent=PLAYER)

    store = counters()
    store.delete_prefix(keys.PREFIX)
    state_holder.reset()
    between = []

    tokens = []

    def phase_one_written() -> None:
        state_holder.reset()
        for explain in (False, False, True):  # explain reads the caps itself: last
            decision = world.decide(at=at, explain=explain)
            rules = sorted(entry["rule"] for entry in decision.explain or [])
            between.append(({slot.line_item.id for slot in decision.pod}, rules))
            tokens.extend(slot.token for slot in decision.pod)

    # The impressions of the pods served between the phases arrive after phase 2 read the
    # table: it writes counts older than the reservations.
    services.counters_rebuild(store=store, after_budgets=phase_one_written)
    for token in tokens:
        services.event_track(token=token, event_type="impression", user_agent=PLAYER)
    capped_out = ["frequency_cap_day", "frequency_cap_lifetime"]
    assert between == [({daily.pk, ever.pk}, []), (set(), []), (set(), capped_out)]
    state_holder.reset()
    after = world.decide(at=at, explain=True)
    assert after.pod == []
    assert sorted(entry["rule"] for entry in after.explain) == capped_out
    day = at.astimezone(world.acme.tzinfo).date()
    viewer = world.viewer.pk
    assert store.get_many(
        [keys.cap_day(daily.pk, viewer, day), keys.cap_lifetime(ever.pk, viewer)]
    ) == [2, 2]
    shown = AdEvent.objects.filter(event_type=AdEvent.Type.IMPRESSION, viewer=viewer)
    assert Counter(shown.values_list("line_item", flat=True)) == {daily.pk: 2, ever.pk: 2}


def test_between_the_phases_a_viewers_caps_are_read_at_the_decisions_instant(world, each_backend):
    """The caps read for a decision count the hour its cap keys name, the decision's, not the
    clock's: read at the clock's, a decision at 10:59:59 whose read ran at 11:00:00 found the
    10:00 hour empty and served over its hour cap (here the decision is an hour before the
    clock, so every run shows it). A viewer without history is served, so the refusal is the
    cap's."""
    at = timezone.now() - timedelta(hours=1)
    hourly = line_item_with_creative(world.acme, frequency_cap_hour=1, pacing="asap")
    ViewerFactory(external_id="newcomer", age_band="25_34", region="us_west", device="ctv")
    rebuild()
    AdEventFactory(creative=hourly.creatives.get(), viewer=world.viewer, occurred_at=at)
    store = counters()
    store.delete_prefix(keys.PREFIX)
    state_holder.reset()
    served = {}

    def phase_one_written() -> None:
        state_holder.reset()
        for viewer in (world.viewer.external_id, "newcomer"):
            pod = world.decide(at=at, viewer_id=viewer).pod
            served[viewer] = {slot.line_item.id for slot in pod}

    services.counters_rebuild(store=store, after_budgets=phase_one_written)
    assert served == {world.viewer.external_id: set(), "newcomer": {hourly.pk}}


def test_between_the_phases_a_viewers_caps_cost_its_first_decision_two_queries(
    world, served_by_a_server, django_assert_num_queries
):
    """The read is the viewer's own (its impressions under hour and day caps today, and ever
    for lifetime caps): two queries at its first capped pod, none after."""
    line_item_with_creative(world.acme, frequency_cap_day=3, frequency_cap_lifetime=9)
    rebuild()
    at = timezone.now()
    store = counters()
    store.delete_prefix(keys.PREFIX)
    assert store.claim(keys.healing(), ttl=60)
    store.set_many({keys.budgets_known(): 1}, ttl=keys.lifetime(keys.budgets_known))
    ViewerFactory(external_id="viewer-2", age_band="25_34", region="us_west", device="ctv")
    assert len(world.decide(at=at, viewer_id="viewer-2").pod) == 1  # the index, the champion
    with django_assert_num_queries(2):
        assert len(world.decide(at=at).pod) == 1
    with django_assert_num_queries(0):
        assert len(world.decide(at=at).pod) == 1


def test_a_viewers_caps_read_again_between_the_phases_count_each_impression_once(
    world, each_backend
):
    """Another process heals (budgets written, caps not yet). A viewer's caps are read, a pod
    reserved, and read again (a second process, or a marker that expired) before and after
    the pod's impression is stored; the second phase then writes its older snapshot: the cap
    holds the decisions once, never less (a read lowering it) nor more (a read adding to
    it). The impressions stored meanwhile wait in the backlog and count once after."""
    capped = line_item_with_creative(world.acme, frequency_cap_day=3, pacing="asap")
    creative = capped.creatives.get()
    rebuild()
    at = timezone.now()
    (before,) = world.decide(at=at).pod
    services.event_track(token=before.token, event_type="impression", user_agent=PLAYER)
    snapshot = services.caps.cap_values()  # what the other process's phase 2 read

    store = counters()
    store.delete_prefix(keys.PREFIX)
    assert store.claim(keys.healing(), ttl=60)
    store.set_many({keys.budgets_known(): 1}, ttl=keys.lifetime(keys.budgets_known))
    state_holder.reset()
    day = at.astimezone(world.acme.tzinfo).date()
    cap = keys.cap_day(capped.pk, world.viewer.pk, day)

    (during,) = world.decide(at=at).pod  # reads the viewer's caps (1), reserves the second
    assert store.get_many([cap, keys.viewer_caps_known(world.viewer.pk)]) == [2, 1]
    assert services.viewer_caps_load(viewer_id=world.viewer.pk) == 1  # the table still says 1
    assert store.get_many([cap]) == [2]
    services.event_track(token=during.token, event_type="impression", user_agent=PLAYER)
    assert services.viewer_caps_load(viewer_id=world.viewer.pk) == 1  # the table says 2 now
    assert store.get_many([cap]) == [2]
    store.raise_many(services.caps.cap_floors(snapshot))  # phase 2 writes what it read (1)
    store.mark_known()
    assert store.get_many([cap]) == [2]

    (last,) = world.decide(at=at).pod
    assert world.decide(at=at).reason == "no_eligible_ads"
    assert services.counters_backlog_drain(at=at + timedelta(seconds=5)) == 1
    services.event_track(token=last.token, event_type="impression", user_agent=PLAYER)
    # Spend and click-through of the two impressions since the loss, each once (the one before
    # it is the other process's phase 1 to write, not played here).
    assert store.get_many([cap, *spend_keys(capped, creative)[1:3]]) == [3, 2 * 12_500, 2]


def test_a_cpc_line_item_served_between_the_phases_has_its_events_counted_once(world, each_backend):
    """Another process heals and has written phase 1. A CPC line item ($2 a click, $2 a day)
    serves; its impression and click, stored meanwhile, count at once on spend, click-through
    and live totals, so it serves no more (its budget holds before the epoch), and the
    impression's fatigue bucket (a viewer's key: phase 2's) after the epoch; each once,
    however often the drain offers the entries."""
    cpc = line_item_with_creative(
        world.initech,
        pricing="cpc",
        bid=Decimal("2.00"),
        daily_budget=Decimal("2.00"),
        pacing="asap",
    )
    creative = cpc.creatives.get()
    ViewerFactory(external_id="viewer-2", age_band="25_34", region="us_west", device="ctv")
    at = timezone.now()
    store = counters()
    store.delete_prefix(keys.PREFIX)  # lost: phase 1 finds no event to count
    assert store.claim(keys.healing(), ttl=60)
    store.hold([keys.healing(), keys.budgets_known()], ttl=60)
    rebuild()
    (slot,) = world.decide(at=at).pod
    assert slot.line_item.id == cpc.pk
    for event_type in ("impression", "click"):
        outcome = services.event_track(token=slot.token, event_type=event_type, user_agent=PLAYER)
        assert outcome.status == "accepted"
    fatigue = keys.viewer_ads(world.viewer.pk, fatigue_bucket(at))
    counted = [
        *spend_keys(cpc, creative)[:2],
        keys.creative_clicks(creative.id),
        keys.live(world.initech.pk, at.date(), "clicks"),
        fatigue,
    ]
    assert store.get_many(counted) == [2_000_000, 2_000_000, 1, 1, 0]
    assert CounterBacklog.objects.count() == 2  # waiting for their viewers' part
    later = at + timedelta(seconds=5)
    assert services.counters_backlog_drain(at=later) == 0
    assert store.get_many(counted) == [2_000_000, 2_000_000, 1, 1, 0]
    state_holder.reset()
    decision = world.decide(at=at, viewer_id="viewer-2", explain=True)
    assert decision.pod == []
    assert [entry["rule"] for entry in decision.explain] == ["daily_budget"]

    store.mark_known()  # the other process's phase 2 is written
    assert services.counters_backlog_drain(at=later) == 2
    assert services.counters_backlog_drain(at=later) == 0
    assert store.get_many(counted) == [2_000_000, 2_000_000, 1, 1, 1]
    assert CounterBacklog.objects.count() == 0
    clicks = AdEvent.objects.filter(event_type=AdEvent.Type.CLICK, line_item=cpc)
    assert sum(clicks.values_list("cost_micros", flat=True)) == 2_000_000


def test_between_the_phases_a_cpc_line_item_serves_within_its_rebuilt_spend(world, each_backend):
    """A CPC line item ($2 a click, $6 a day) was clicked twice: once counted before the loss,
    once stored while the counters were lost (its backlog entry in the heal's snapshot, marked
    there as counted). Between the heal's phases it serves on its rebuilt spend ($4), the
    drain leaves the snapshot's entry alone, and a click stored meanwhile counts at once: at
    $6 it serves no more, before the epoch. After it, spend and clicks are the table's, each
    click once."""
    cpc = line_item_with_creative(
        world.initech,
        pricing="cpc",
        bid=Decimal("2.00"),
        daily_budget=Decimal("6.00"),
        pacing="asap",
    )
    creative = cpc.creatives.get()
    viewers = [world.viewer.external_id]
    for number in range(2, 5):
        viewers.append(f"viewer-{number}")
        ViewerFactory(external_id=viewers[-1], age_band="25_34", region="us_west", device="ctv")
    rebuild()
    at = timezone.now()
    tokens = [world.decide(at=at, viewer_id=viewer).pod[0].token for viewer in viewers[:3]]
    for token in tokens:
        services.event_track(token=token, event_type="impression", user_agent=PLAYER)
    services.event_track(token=tokens[0], event_type="click", user_agent=PLAYER)

    store = counters()
    store.delete_prefix(keys.PREFIX)  # the store lost everything
    state_holder.reset()
    services.event_track(token=tokens[1], event_type="click", user_agent=PLAYER)
    assert CounterBacklog.objects.count() == 1  # refused: the state is lost
    spent = spend_keys(cpc, creative)[:2]
    clicks = [keys.creative_clicks(creative.id), keys.live(world.initech.pk, at.date(), "clicks")]
    between = []

    def phase_one_written() -> None:
        assert store.get_many([*spent, *clicks]) == [4_000_000, 4_000_000, 2, 2]
        assert services.counters_backlog_drain(at=at + timedelta(seconds=5)) == 0
        assert store.get_many([*spent, *clicks]) == [4_000_000, 4_000_000, 2, 2]
        state_holder.reset()
        between.append(
            {slot.line_item.id for slot in world.decide(at=at, viewer_id=viewers[3]).pod}
        )
        outcome = services.event_track(token=tokens[2], event_type="click", user_agent=PLAYER)
        assert outcome.status == "accepted"
        assert store.get_many([*spent, *clicks]) == [6_000_000, 6_000_000, 3, 3]
        state_holder.reset()
        decision = world.decide(at=at, viewer_id=viewers[3], explain=True)
        between.append({slot.line_item.id for slot in decision.pod})
        assert [entry["rule"] for entry in decision.explain] == ["daily_budget"]

    services.counters_rebuild(store=store, after_budgets=phase_one_written)
    assert between == [{cpc.pk}, set()]
    assert services.counters_backlog_drain(at=at + timedelta(seconds=5)) == 1
    assert CounterBacklog.objects.count() == 0
    assert store.get_many([*spent, *clicks]) == [6_000_000, 6_000_000, 3, 3]
    stored = AdEvent.objects.filter(event_type=AdEvent.Type.CLICK, line_item=cpc)
    assert sum(stored.values_list("cost_micros", flat=True)) == 6_000_000


def _budget_spent_then_state_lost(world):
    """A line item whose one impression spent its day's budget, then a store that lost its
    state (as Redis restarted empty): the line item, the impression's time and the store."""
    line_item = line_item_with_creative(world.acme, daily_budget=Decimal("0.02"), pacing="asap")
    rebuild()
    at = timezone.now()
    (slot,) = world.decide(at=at).pod
    services.event_track(token=slot.token, event_type="impression", user_agent=PLAYER)
    store = counters()
    store.delete_prefix(keys.PREFIX)
    state_holder.reset()
    return line_item, at, store


def test_a_store_that_loses_its_state_again_during_a_heal_is_not_taken_for_healed(
    world, each_backend
):
    """Redis restarts empty between the heal's phases: the heal stops at its next step (the
    claim it holds is gone with the rest) instead of setting the epoch over an empty store,
    which would have served the spent budget again from zero; the next heal counts it."""
    line_item, at, store = _budget_spent_then_state_lost(world)

    def lost_again() -> None:
        store.delete_prefix(keys.PREFIX)

    with pytest.raises(DeliveryStateUnavailable):
        services.counters_rebuild(store=store, after_budgets=lost_again)
    assert not store.state_known()
    assert store.get_many([keys.budgets_known(), keys.healing()]) == [0, 0]
    assert world.decide(at=at).reason == "degraded"
    assert services.counters_heal() is True
    state_holder.reset()
    assert world.decide(at=at).reason == "no_eligible_ads"
    assert store.get_many([keys.reserved_day(line_item.pk, at.date())]) == [12_500]


def test_between_the_phases_the_drain_passes_over_entries_partly_applied(
    served_by_a_server, monkeypatch
):
    """Between a heal's phases the entries whose first part the counters hold stay in the
    backlog (their viewers' part waits): the drain passes over them to the entries behind,
    whatever their number, instead of offering the same first ones again each second."""
    from ads.services import recovery

    monkeypatch.setattr(recovery, "DRAIN_BATCH", 2)
    monkeypatch.setattr(recovery, "DRAIN_SCAN", 2)
    store = counters()
    store.delete_prefix(keys.PREFIX)
    assert store.claim(keys.healing(), ttl=60)
    store.hold([keys.healing(), keys.budgets_known()], ttl=60)
    bumps = [Bump("il:spent", 1), Bump(keys.viewer_ads(1, 1), 1)]
    applied = [services.recovery.backlog_write(bumps=bumps) for _ in range(5)]
    waiting = [services.recovery.backlog_write(bumps=bumps) for _ in range(3)]
    for entry_id in applied:
        assert services.recovery.backlog_apply(entry_id=entry_id, bumps=bumps) is False
    assert store.get_many(["il:spent"]) == [5]
    later = timezone.now() + timedelta(seconds=5)
    assert services.counters_backlog_drain(at=later) == 0
    assert store.get_many(["il:spent"]) == [7]
    assert services.counters_backlog_drain(at=later) == 0
    assert store.get_many(["il:spent"]) == [8]
    assert services.counters_backlog_drain(at=later) == 0
    assert store.get_many(["il:spent", keys.viewer_ads(1, 1)]) == [8, 0]
    assert store.get_many([keys.applied(entry_id) for entry_id in waiting]) == [1, 1, 1]

    store.mark_known()
    assert services.counters_backlog_drain(at=later) == 2
    assert sum(services.counters_backlog_drain(at=later) for _ in range(4)) == 6
    assert store.get_many(["il:spent", keys.viewer_ads(1, 1)]) == [8, 8]


def test_the_refresher_drains_while_its_process_heals(served_by_a_server, monkeypatch):
    """The heal runs in a thread of its own: the refresher that started it drains the backlog
    meanwhile (between the phases, the clicks of a CPC line item), and starts no second heal
    while the first runs."""
    import threading

    from ads.decisioning import refresher
    from ads.services import recovery

    counters().delete_prefix(keys.PREFIX)  # lost
    started, healing, heals, drains = threading.Event(), threading.Event(), [], []

    def long_heal() -> bool:
        heals.append(threading.current_thread().name)
        started.set()
        return healing.wait(timeout=10)

    monkeypatch.setattr(recovery, "counters_heal", long_heal)
    monkeypatch.setattr(recovery, "counters_backlog_drain", lambda: drains.append(1))
    refresher._keep_counters()
    refresher._keep_counters()
    assert started.wait(timeout=10)
    assert (heals, drains) == (["counters-heal"], [1, 1])
    healing.set()
    refresher._healer.join(timeout=10)
    assert not refresher._healer.is_alive()


def test_a_heal_takes_back_the_budgets_a_dead_heal_left_before_it_reads_them(
    served_by_a_server, monkeypatch
):
    """A heal that died between its phases (its healing claim expired) left budgets known:
    reservations bounded by their budgets go on meanwhile. The next heal takes that back
    before it reads the reservations, so none is made between its reading and its writing
    (which would be overwritten), and it keeps the ones made before."""
    from ads.services import rebuild as rebuilding

    store = counters()
    store.delete_prefix(keys.PREFIX)
    store.set_many({keys.budgets_known(): 1}, ttl=keys.lifetime(keys.budgets_known))
    reserved = keys.reserved_day(1, timezone.now().date())
    budget = [Bump(reserved, 12_500, keys.DAY_TTL, 50_000)]
    assert store.reserve([budget]) == [True]
    read = rebuilding._summed_values
    refused = []

    def reading(since, **options):
        with pytest.raises(DeliveryStateUnavailable):
            store.reserve([budget])
        refused.append(since)
        return read(since, **options)

    monkeypatch.setattr(rebuilding, "_summed_values", reading)
    assert services.counters_heal() is True
    assert len(refused) == 1
    assert store.get_many([reserved]) == [12_500]
    assert store.reserve([budget]) == [True]


def test_a_heal_keeps_its_claim_while_it_writes_for_longer_than_the_claim_lives(world, monkeypatch):
    """A busy day's caps take longer to write than the healing claim lives (HEAL_TTL): the heal
    renews its claim (and budgets known) between chunks, so no second heal starts over it."""
    from types import SimpleNamespace

    from ads.delivery.counters import local
    from ads.delivery.counters.local import LocalCounters
    from ads.services import rebuild as rebuilding

    capped = line_item_with_creative(world.acme, frequency_cap_day=2, pacing="asap")
    viewers = [
        ViewerFactory(external_id=f"capped-{n}", age_band="25_34", region="us_west", device="ctv")
        for n in range(3)
    ]
    rebuild()
    at = timezone.now()
    for viewer in viewers:
        (slot,) = world.decide(at=at, viewer_id=viewer.external_id).pod
        assert slot.line_item.id == capped.pk
        services.event_track(token=slot.token, event_type="impression", user_agent=PLAYER)

    clock = SimpleNamespace(now=1_000.0)
    monkeypatch.setattr(local, "time", SimpleNamespace(monotonic=lambda: clock.now))
    store = LocalCounters()
    store.delete_prefix(keys.PREFIX)  # lost
    second_heal, budgets_known = [], []

    def slow(write):
        def written(*args, **options):
            write(*args, **options)
            clock.now += keys.HEAL_TTL / 2.4  # three chunks outlive an unrenewed claim
            second_heal.append(store.claim(keys.healing(), ttl=keys.HEAL_TTL))
            budgets_known.append(store.get_many([keys.budgets_known()])[0])

        return written

    monkeypatch.setattr(store, "set_many", slow(store.set_many))
    monkeypatch.setattr(store, "raise_many", slow(store.raise_many))
    monkeypatch.setattr(rebuilding, "WRITE_CHUNK", 1)
    services.counters_rebuild(store=store)
    assert len(second_heal) > 12  # phase 1's keys and phase 2's, one chunk each
    assert not any(second_heal)
    phase_two = budgets_known[budgets_known.index(1) :]  # from phase 1's end to the epoch
    assert len(phase_two) == 6 and all(phase_two)  # 3 day caps, 3 fatigue buckets: known
    assert store.state_known()
    day = at.astimezone(world.acme.tzinfo).date()
    assert store.get_many([keys.cap_day(capped.pk, viewers[0].pk, day)]) == [1]


class Renewals:
    """The heal's renewing thread's holds on `store`, counted, so that a test waits for the
    thread's turn (`next_one`) instead of sleeping through a guess of it."""

    def __init__(self, store, monkeypatch) -> None:
        self.begun = self.ended = 0
        self.stopped = False  # a hold raised: the thread returns, no hold follows
        self._changed = threading.Condition()
        hold = store.hold

        def counted(*args, **kwargs):
            with self._changed:
                self.begun += 1
            try:
                return hold(*args, **kwargs)
            except DeliveryStateUnavailable:
                self.stopped = True
                raise
            finally:
                with self._changed:
                    self.ended += 1
                    self._changed.notify_all()

        monkeypatch.setattr(store, "hold", counted)

    def next_one(self, timeout: float = 5.0) -> None:
        """Until a hold begun after this call has ended, or the thread has stopped holding
        (or `timeout` passed: the test's assertions then say what did not happen)."""
        with self._changed:
            after = self.begun + 1
            self._changed.wait_for(lambda: self.ended >= after or self.stopped, timeout)


def test_a_heal_keeps_its_claim_while_it_reads_for_longer_than_the_claim_lives(world, monkeypatch):
    """Phase 2's read of a busy day's caps can outlast the healing claim (HEAL_TTL) on a loaded
    machine: a thread renews the claim and budgets known while the heal reads, so no second
    heal starts over it, line items serve throughout, and the heal ends known."""
    from types import SimpleNamespace

    from ads.delivery.counters import local
    from ads.delivery.counters.local import LocalCounters
    from ads.services import rebuild as rebuilding

    clock = SimpleNamespace(now=1_000.0)
    monkeypatch.setattr(local, "time", SimpleNamespace(monotonic=lambda: clock.now))
    monkeypatch.setattr(rebuilding, "CLAIM_RENEWAL_SECONDS", 0.01)
    store = LocalCounters()
    store.delete_prefix(keys.PREFIX)  # lost
    renewals = Renewals(store, monkeypatch)
    second_heal, budgets_known = [], []

    def slow_read() -> None:
        for _ in range(3):  # a claim and a half
            clock.now += keys.HEAL_TTL / 2
            renewals.next_one()  # the renewing thread's turn, at the new time
            second_heal.append(store.claim(keys.healing(), ttl=keys.HEAL_TTL))
            budgets_known.append(store.get_many([keys.budgets_known()])[0])

    services.counters_rebuild(store=store, after_budgets=slow_read)
    assert (second_heal, budgets_known) == ([False] * 3, [1] * 3)
    assert store.state_known()


def test_a_pod_asks_for_the_viewers_caps_known_when_a_slot_holds_cap_keys(world, monkeypatch):
    """The engine tells the store what its pod needs besides known budgets: the viewer's caps
    known when a slot holds cap keys, whatever its pricing."""
    line_item_with_creative(world.acme, pacing="asap")
    store = counters()
    real_reserve = store.reserve
    asked = []

    def reserve(groups, **flags):
        asked.append(flags["known"])
        return real_reserve(groups, **flags)

    monkeypatch.setattr(store, "reserve", reserve)
    rebuild()
    assert len(world.decide().pod) == 1
    line_item_with_creative(world.globex, category="automotive", frequency_cap_hour=3)
    rebuild()
    assert len(world.decide(viewer_id=world.viewer.external_id, seed=8).pod) == 2
    line_item_with_creative(world.initech, category="finance", pricing="cpc")
    LineItem.objects.exclude(pricing="cpc").update(status="paused")
    rebuild()
    assert len(world.decide().pod) == 1
    line_item_with_creative(world.globex, category="travel", pricing="cpc", frequency_cap_day=2)
    rebuild()
    assert len(world.decide().pod) == 2
    known = keys.viewer_caps_known(world.viewer.pk)
    assert asked == [None, known, None, known]


def test_a_backlog_entry_is_applied_once_however_often_it_is_offered(served_by_a_server):
    store = counters()
    bumps, viewer_bumps = [Bump("il:x", 5)], [Bump(keys.viewer_ads(3, 9), 1)]
    for _ in range(2):
        assert store.apply_once(keys.applied(41), bumps, viewer_bumps) is True
    assert store.get_many(["il:x", keys.viewer_ads(3, 9), keys.applied(41)]) == [5, 1, 2]


@pytest.mark.django_db(transaction=True)
def test_a_lost_database_connection_is_retried_once(world):
    if connection.vendor != "postgresql":
        pytest.skip("terminates a PostgreSQL backend")
    line_item_with_creative(world.acme)
    (slot,) = world.decide(at=timezone.now()).pod
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    import psycopg

    settings_dict = connection.settings_dict
    with psycopg.connect(
        host=settings_dict["HOST"],
        port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"],
        dbname=settings_dict["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    (outcome,) = services.events_record(
        events=[services.IncomingEvent(token=slot.token, event_type="impression")],
        user_agent=PLAYER,
    )
    assert outcome.status == "accepted"
    assert AdEvent.objects.count() == 1


def _terminate_backend() -> None:
    """pg_terminate_backend of this connection's server process, from another connection."""
    import psycopg

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    settings_dict = connection.settings_dict
    with psycopg.connect(
        host=settings_dict["HOST"],
        port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"],
        dbname=settings_dict["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.fixture
def api_process():
    """The api process's WSGI application (the lean path before Django's API stack), keeping
    its connection from request to request as gunicorn's threads do (CONN_MAX_AGE): a backend
    terminated between requests is met by the next one's queries."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from ads import api
    from config.api_wsgi import APIHandler, HotPath

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield HotPath(APIHandler(), api)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def wsgi_post(application, path: str, body: dict, key: str) -> tuple[str, dict, dict]:
    import io
    import json

    payload = json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(payload),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(payload)),
        "CONTENT_TYPE": "application/json",
        "HTTP_USER_AGENT": PLAYER,
        "HTTP_AUTHORIZATION": f"Bearer {key}",
    }
    started = []
    chunks = application(environ, lambda status, headers, exc_info=None: started.append(status))
    content = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    status = started[0]
    headers = {}
    if hasattr(chunks, "headers"):  # Django's response
        headers = dict(chunks.headers)
    return status, json.loads(content), headers


@pytest.mark.django_db(transaction=True)
def test_a_terminated_backend_costs_no_decision_and_no_batch(world, api_process):
    """Each database read of the hot path meets a terminated backend: the platform key's
    lookup, the demand index's rebuild, the batch's insert. Each is retried on a new
    connection inside the server: no 500, nothing degraded."""
    if connection.vendor != "postgresql":
        pytest.skip("terminates a PostgreSQL backend")
    from ads.decisioning.index import index_holder
    from ads.services.keys import platform_keys_forget

    line_item_with_creative(world.acme)
    _, key = services.platform_key_create(name="Living-room player")
    served = []
    for forget in (platform_keys_forget, index_holder.reset):
        forget()  # the key's lookup, then the index, is due to be read again
        _terminate_backend()
        status, payload, _ = wsgi_post(api_process, "/api/v1/decisions", world.body(), key)
        assert (status, payload["reason"], len(payload["pod"])) == ("200 OK", None, 1)
        served.append(token_of(payload))
    _terminate_backend()
    events = [
        {"event_id": f"e-{n}", "token": t, "type": "impression"} for n, t in enumerate(served)
    ]
    status, payload, _ = wsgi_post(api_process, "/api/v1/events", {"events": events}, key)
    assert (status, payload["accepted"]) == ("200 OK", 2)
    assert AdEvent.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_batch_asks_no_health_check_of_a_connection_its_reads_just_used(world, monkeypatch):
    """A request starts with its connection to be checked (CONN_HEALTH_CHECKS: a `SELECT 1`
    before its first Django statement). A batch's first statements (the references it reads)
    prove the connection alive, so the transaction that stores it asks no check."""
    if connection.vendor != "postgresql":
        pytest.skip("the batch's reads bypass Django's cursor on PostgreSQL only")
    line_item_with_creative(world.acme)
    (slot,) = world.decide(at=timezone.now()).pod
    connection.ensure_connection()
    checks = []
    is_usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(True) or is_usable())
    connection.health_check_done = False  # as at the start of a request
    (outcome,) = services.events_record(
        events=[services.IncomingEvent(token=slot.token, event_type="impression")],
        user_agent=PLAYER,
    )
    assert outcome.status == "accepted"
    assert checks == []


@pytest.mark.django_db(transaction=True)
def test_a_backend_terminated_between_a_batchs_reads_and_its_insert_costs_nothing(
    world, monkeypatch
):
    """With no health check between them, a connection lost after the batch's reads fails its
    insert's transaction, and the batch's work runs again on a new connection: every event
    accepted, stored once and counted once."""
    if connection.vendor != "postgresql":
        pytest.skip("terminates a PostgreSQL backend")
    from ads.services import events as event_service

    line_item_with_creative(world.acme)
    (slot,) = world.decide(at=timezone.now()).pod
    services.events_record(
        events=[services.IncomingEvent(token=slot.token, event_type="impression")],
        user_agent=PLAYER,
    )
    reference_rows = event_service._reference_rows
    terminated = []

    def then_terminated(ids):
        rows = reference_rows(ids)
        if not terminated:
            terminated.append(True)
            _terminate_backend()
        return rows

    monkeypatch.setattr(event_service, "_reference_rows", then_terminated)
    outcomes = services.events_record(
        events=[
            services.IncomingEvent(token=slot.token, event_type=event_type)
            for event_type in ("first_quartile", "midpoint", "click")
        ],
        user_agent=PLAYER,
    )
    assert terminated
    assert [outcome.status for outcome in outcomes] == ["accepted"] * 3
    assert AdEvent.objects.count() == 4
    assert CounterBacklog.objects.count() == 0
    assert counters().get_many(
        [keys.creative_impressions(slot.creative.id), keys.creative_clicks(slot.creative.id)]
    ) == [1, 1]


@pytest.mark.django_db(transaction=True)
def test_a_database_out_of_reach_degrades_decisions_and_refuses_batches(world, api_process):
    """With PostgreSQL refusing connections (after the retries): a decision is an empty pod,
    reason `degraded` (the player resumes its title); a batch or a tracking link is answered
    503 with Retry-After (nothing stored, nothing claimed `accepted`); a key never seen by this
    process, 503."""
    if connection.vendor != "postgresql":
        pytest.skip("points the connection at a closed PostgreSQL port")
    from ads.decisioning.index import index_holder
    from ads.services.keys import platform_keys_forget

    line_item_with_creative(world.acme)
    _, key = services.platform_key_create(name="Living-room player")
    status, payload, _ = wsgi_post(api_process, "/api/v1/decisions", world.body(), key)
    assert status == "200 OK"
    token = token_of(payload)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = closed_port
    try:
        index_holder.reset()  # the decision must read the database
        status, payload, _ = wsgi_post(api_process, "/api/v1/decisions", world.body(), key)
        assert (status, payload["pod"], payload["reason"]) == ("200 OK", [], "degraded")
        batch = {"events": [{"event_id": "e-1", "token": token, "type": "impression"}]}
        status, payload, headers = wsgi_post(api_process, "/api/v1/events", batch, key)
        assert (status, payload["error"]["code"]) == ("503 Service Unavailable", "unavailable")
        assert headers.get("Retry-After") == "1"
        platform_keys_forget()
        status, payload, _ = wsgi_post(api_process, "/api/v1/decisions", world.body(), key)
        assert status == "503 Service Unavailable"
        link = Client().get(f"/t/{token}/impression", HTTP_USER_AGENT=PLAYER)
        assert (link.status_code, link["Retry-After"]) == (503, "1")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert AdEvent.objects.count() == 0
    status, payload, _ = wsgi_post(api_process, "/api/v1/events", batch, key)
    assert (status, payload["accepted"]) == ("200 OK", 1)


def test_dashboard_reads_fall_back_to_the_table_while_redis_is_down(
    api, world, redis_server, served_by_a_server
):
    """The live tiles, the platform's totals and the pacing read the event table while Redis
    is down: the numbers the counters held, not an error; what only Redis counts (decisions,
    latency) is unknown."""
    from ads import selectors

    line_item = line_item_with_creative(world.acme)
    tokens = [token_of(decide(api, world)) for _ in range(3)]
    assert batch(api, tokens)["accepted"] == 3
    assert batch(api, tokens[:1], "click")["accepted"] == 1
    day = timezone.localtime(timezone.now(), world.acme.tzinfo).date()
    utc_day = timezone.now().astimezone(UTC).date()

    def read() -> tuple:
        return (
            selectors.live_totals(advertiser=world.acme, day=day),
            selectors.platform_live_totals(day=utc_day),
            selectors.line_item_spend(advertiser=world.acme, line_items=[line_item], day=day),
        )

    from_counters = read()
    assert from_counters[0] == {"impressions": 3, "clicks": 1, "completes": 0, "spend": 37_500}
    redis_server.stop()
    assert read() == from_counters
    assert selectors.decision_counts(day=utc_day) == (0, 0)
    assert selectors.decision_latency()["p99_ms"] is None


def test_a_channel_layer_out_of_reach_costs_the_batch_nothing(world, settings):
    """The dashboards' channel layer (its own Redis connections, which die with Redis and come
    back after it) cannot send: the batch is stored, counted and answered `accepted`, not an
    error that would make the player send it again."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{closed_port}/0"]},
        }
    }
    counters().mark_known()
    line_item_with_creative(world.acme)
    (slot,) = world.decide(at=timezone.now()).pod
    (outcome,) = services.events_record(
        events=[services.IncomingEvent(token=slot.token, event_type="impression")],
        user_agent=PLAYER,
    )
    assert outcome.status == "accepted"
    assert AdEvent.objects.count() == 1


def test_a_cache_out_of_reach_costs_no_decision(world, settings):
    """The CTR champion's pointer lives in the cache (Redis): out of reach, a decision is made
    with the champion the process holds (here none), not answered with an error."""
    from ml.serving import champions

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
        }
    }
    champions.reset()
    counters().mark_known()
    line_item_with_creative(world.acme)
    decision = world.decide(at=timezone.now())
    assert (len(decision.pod), decision.reason) == (1, None)


def test_a_request_that_heals_its_store_counts_its_own_viewers_part_once(world, each_backend):
    """No refresher (a command, a worker): the event batch that finds the state lost heals it
    itself. The heal's snapshot holds the batch's own entry, so phase 2 counts its fatigue
    bucket from the table; the request's retry of the entry it still holds must then add
    nothing (the heal marks the entry whole with phase 2)."""
    state_holder.background = False  # no refresher: the request heals
    line_item_with_creative(world.acme)
    rebuild()
    at = timezone.now()
    (slot,) = world.decide(at=at).pod
    counters().delete_prefix(keys.PREFIX)  # the store lost everything
    state_holder.reset()
    outcome = services.event_track(token=slot.token, event_type="impression", user_agent=PLAYER)
    assert outcome.status == "accepted"
    assert counters().state_known()
    assert CounterBacklog.objects.count() == 0
    fatigue = keys.viewer_ads(world.viewer.pk, fatigue_bucket(at))
    assert counters().get_many([fatigue]) == [1]


def test_a_heal_that_lost_its_claim_to_another_does_not_mark_the_store_known(world, each_backend):
    """The store loses its state again between heal A's phases, and another process's heal B
    claims it: A must stop, not mark known (over a store holding nothing of B's yet, every
    budget would read zero) nor release B's claim."""
    line_item, at, store = _budget_spent_then_state_lost(world)

    def lost_again_and_claimed_by_another_heal() -> None:
        store.delete_prefix(keys.PREFIX)
        assert store.claim(keys.healing(), ttl=keys.HEAL_TTL)  # heal B, another process

    with pytest.raises(DeliveryStateUnavailable):
        services.counters_rebuild(store=store, after_budgets=lost_again_and_claimed_by_another_heal)
    assert not store.state_known()
    assert store.get_many([keys.healing(), keys.spent_day(line_item.pk, at.date())]) == [1, 0]


def test_a_heals_renewal_does_not_say_budgets_known_under_another_heals_claim(
    world, each_backend, monkeypatch
):
    """As above, before anyone marks known: heal A's renewal thread must not set budgets
    known under B's claim (B releases it first, as a heal does), or reservations would be
    taken on every budget from zero before B's phase 1 is written."""
    from ads.services import rebuild as rebuilding

    monkeypatch.setattr(rebuilding, "CLAIM_RENEWAL_SECONDS", 0.02)
    store = counters()
    renewals = Renewals(store, monkeypatch)
    reserved = []

    def lost_again_and_claimed_by_another_heal() -> None:
        store.delete_prefix(keys.PREFIX)
        assert store.claim(keys.healing(), ttl=keys.HEAL_TTL)  # heal B
        store.release(keys.budgets_known())
        renewals.next_one()  # A's renewal thread's turn, under B's claim
        with contextlib.suppress(DeliveryStateUnavailable):
            reserved.append(store.reserve([[Bump("il:x", 1, limit=5)]]))

    with pytest.raises(DeliveryStateUnavailable):
        services.counters_rebuild(store=store, after_budgets=lost_again_and_claimed_by_another_heal)
    assert reserved == []
