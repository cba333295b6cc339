"""The decision engine: eligibility in order, caps and budgets under concurrency, pacing,
ranking, pods, explain, and the index following edits."""

import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from ads import services
from ads.decisioning import engine, index
from ads.decisioning.eligibility import live_rejection, targeting_rejection
from ads.decisioning.engine import DecisionRequestError
from ads.decisioning.index import current_index
from ads.decisioning.state import live_now, state_holder
from ads.delivery import keys, latency
from ads.delivery.counters import counters
from ads.models import DeliveryStatus, LineItem
from tests.ads.conftest import line_item_with_creative, rebuild
from tests.factories import TitleFactory, ViewerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_exploration")]


def explained(decision) -> dict[int, tuple[str | None, str | None]]:
    return {entry["line_item_id"]: (entry["stage"], entry["rule"]) for entry in decision.explain}


def test_a_live_matching_line_item_fills_the_pod(world):
    line_item = line_item_with_creative(world.acme)
    decision = world.decide()
    assert [slot.line_item.id for slot in decision.pod] == [line_item.pk]
    assert decision.reason is None
    assert decision.pod[0].position == 1
    assert decision.duration_seconds == 30


@pytest.mark.parametrize(
    ("fields", "stage", "rule"),
    [
        ({"status": DeliveryStatus.PAUSED}, "live", "paused"),
        ({"campaign__status": DeliveryStatus.PAUSED}, "live", "campaign_paused"),
        ({"start_at_days": 2}, "live", "not_started"),
        ({"ends_before_decision": True}, "live", "ended"),
        ({"target_dayparts": ["morning"]}, "live", "daypart"),
        ({"exclude_title": True}, "targeting", "title_excluded"),
        ({"include_other_title": True}, "targeting", "title_not_included"),
        ({"target_genre": "comedy"}, "targeting", "genre"),
        ({"target_maturity_ratings": ["G", "PG"]}, "targeting", "maturity"),
        ({"target_regions": ["us_northeast"]}, "targeting", "region"),
        ({"target_devices": ["mobile"]}, "targeting", "device"),
        ({"target_age_bands": ["55_plus"]}, "targeting", "age_band"),
    ],
)
def test_each_rule_names_its_rejection(world, fields, stage, rule):
    fields = dict(fields)
    extra = {}
    if "start_at_days" in fields:
        extra["start_at"] = world.at + timedelta(days=fields.pop("start_at_days"))
    at = world.at
    if fields.pop("ends_before_decision", False):
        # The index keeps line items until they end; a decision after the end says so.
        extra["end_at"] = timezone.now() + timedelta(days=1)
        at = world.at + timedelta(days=2)
    if fields.pop("exclude_title", False):
        extra["exclude_titles"] = [world.title]
    if fields.pop("include_other_title", False):
        extra["include_titles"] = [TitleFactory()]
    if "target_genre" in fields:
        extra["target_genres"] = [getattr(world, fields.pop("target_genre"))]
    rejected = line_item_with_creative(world.acme, **fields, **extra)
    chosen = line_item_with_creative(world.globex, category="automotive")
    decision = world.decide(at=at, explain=True)
    assert explained(decision)[rejected.pk] == (stage, rule)
    assert explained(decision)[chosen.pk] == ("pod", "chosen")
    assert [slot.line_item.id for slot in decision.pod] == [chosen.pk]


def test_a_kids_profile_never_gets_ads(world):
    line_item = line_item_with_creative(world.acme)
    decision = world.decide(viewer_id=world.kid.external_id, explain=True)
    assert decision.pod == []
    assert decision.reason == "kids_profile"
    assert explained(decision)[line_item.pk] == ("kids", "kids_profile")


def test_an_unknown_viewer_gets_an_empty_pod_with_the_reason(world):
    line_item_with_creative(world.acme)
    decision = world.decide(viewer_id="nobody")
    assert (decision.pod, decision.reason) == ([], "unknown_viewer")


def test_a_title_or_break_that_does_not_exist_is_a_request_error(world):
    with pytest.raises(DecisionRequestError) as excinfo:
        world.decide(title_id=999_999)
    assert excinfo.value.field == "title_id"
    other_break = TitleFactory().ad_breaks.create(offset_seconds=0)
    rebuild()
    with pytest.raises(DecisionRequestError) as excinfo:
        world.decide(ad_break_id=other_break.pk)
    assert excinfo.value.field == "ad_break_id"
    with pytest.raises(DecisionRequestError) as excinfo:
        world.decide(ad_break_id=None, offset_seconds=601)
    assert excinfo.value.message == f"Title {world.title.pk} has no ad break at 601 s."
    assert world.decide(ad_break_id=None, offset_seconds=600).ad_break_id == world.ad_break.pk


def test_daily_budget_stops_delivery_and_says_so(world):
    # $12.50 CPM: 1.25 cents an impression, so a $0.05 daily budget buys four impressions.
    line_item = line_item_with_creative(
        world.acme, daily_budget=Decimal("0.05"), lifetime_budget=Decimal("10")
    )
    served = [bool(world.decide(viewer_id=f"v{n}").pod) for n in range(6) if _viewer(f"v{n}")]
    assert served == [True, True, True, True, False, False]
    decision = world.decide(explain=True)
    assert explained(decision)[line_item.pk] == ("budget", "daily_budget")
    day = world.at.date()
    assert counters().get_many([keys.reserved_day(line_item.pk, day)]) == [50_000]


def test_lifetime_budget_is_a_hard_stop_too(world):
    line_item = line_item_with_creative(
        world.acme, daily_budget=Decimal("0.02"), lifetime_budget=Decimal("0.02")
    )
    counters().add_many([engine.Bump(keys.reserved_lifetime(line_item.pk), 10_000)])
    state_holder.reset()
    decision = world.decide(explain=True)
    assert explained(decision)[line_item.pk] == ("budget", "lifetime_budget")
    assert decision.pod == []


def _viewer(external_id: str):
    viewer = ViewerFactory(external_id=external_id)
    rebuild()
    return viewer


@pytest.mark.parametrize(
    ("cap_field", "rule"),
    [
        ("frequency_cap_hour", "frequency_cap_hour"),
        ("frequency_cap_day", "frequency_cap_day"),
        ("frequency_cap_lifetime", "frequency_cap_lifetime"),
    ],
)
def test_frequency_cap_allows_the_nth_impression_not_the_next(world, cap_field, rule):
    line_item = line_item_with_creative(world.acme, **{cap_field: 3})
    served = [bool(world.decide(seed=n).pod) for n in range(5)]
    assert served == [True, True, True, False, False]
    assert explained(world.decide(explain=True))[line_item.pk] == ("frequency_cap", rule)
    # Another viewer has caps of their own.
    assert world.decide(viewer_id=_viewer("other").external_id).pod


def test_hourly_cap_resets_the_next_hour(world):
    line_item_with_creative(world.acme, frequency_cap_hour=1)
    assert world.decide().pod
    assert not world.decide().pod
    assert world.decide(at=world.at + timedelta(hours=1)).pod


def test_caps_hold_under_concurrent_decisions(world):
    line_item_with_creative(world.acme, frequency_cap_day=5)
    current_index()  # built once, before the threads
    results: list[bool] = []
    lock = threading.Lock()

    def viewer_session(seed: int) -> None:
        for attempt in range(4):
            served = bool(world.decide(seed=seed * 10 + attempt).pod)
            with lock:
                results.append(served)

    threads = [threading.Thread(target=viewer_session, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 32
    assert results.count(True) == 5


def test_budget_is_never_overspent_under_concurrency(world):
    line_item = line_item_with_creative(
        world.acme, daily_budget=Decimal("0.10"), lifetime_budget=Decimal("100")
    )  # eight impressions' worth
    viewers = [ViewerFactory(external_id=f"c{n}") for n in range(40)]
    rebuild()
    current_index()
    served = []
    lock = threading.Lock()

    def decide_for(viewer) -> None:
        decision = world.decide(viewer_id=viewer.external_id, seed=viewer.pk)
        with lock:
            served.append(len(decision.pod))

    threads = [threading.Thread(target=decide_for, args=(viewer,)) for viewer in viewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(served) == 8
    reserved = counters().get_many([keys.reserved_day(line_item.pk, world.at.date())])
    assert reserved == [100_000]


def test_competitors_never_share_a_pod(world):
    soda = line_item_with_creative(world.acme, bid=Decimal("30"), category="beverages")
    other_soda = line_item_with_creative(world.globex, bid=Decimal("20"), category="beverages")
    car = line_item_with_creative(world.initech, bid=Decimal("10"), category="automotive")
    same_advertiser = line_item_with_creative(world.acme, bid=Decimal("25"), category="finance")
    decision = world.decide(explain=True)
    assert [slot.line_item.id for slot in decision.pod] == [soda.pk, car.pk]
    reasons = explained(decision)
    assert reasons[other_soda.pk] == ("pod", "category_separation")
    assert reasons[same_advertiser.pk] == ("pod", "advertiser_separation")


def test_pods_fit_the_break_and_never_repeat_a_creative(world):
    categories = ["beverages", "automotive", "finance", "retail"]
    advertisers = [world.acme, world.globex, world.initech, world.acme]
    for n, (advertiser, category) in enumerate(zip(advertisers, categories, strict=True)):
        line_item_with_creative(advertiser, bid=Decimal(40 - n), category=category, creatives=2)
    decision = world.decide()  # 90 s break: three 30 s ads
    assert decision.duration_seconds == 90
    assert len({slot.creative.id for slot in decision.pod}) == 3
    assert [slot.position for slot in decision.pod] == [1, 2, 3]
    shorter = world.decide(viewer_id=_viewer("short").external_id, max_duration_seconds=45)
    assert shorter.duration_seconds == 30
    assert len(world.decide(viewer_id=_viewer("one").external_id, pod_size=1).pod) == 1


def test_ranking_is_by_expected_value(world):
    cpm = line_item_with_creative(world.acme, bid=Decimal("20"), category="beverages")
    # CPC $5 × a 1 % prior pCTR × 1000 = $50 per mille: above the $20 CPM.
    cpc = line_item_with_creative(
        world.globex, pricing=LineItem.Pricing.CPC, bid=Decimal("5"), category="automotive"
    )
    decision = world.decide(explain=True)
    assert [slot.line_item.id for slot in decision.pod] == [cpc.pk, cpm.pk]
    scores = {entry["line_item_id"]: entry["score"] for entry in decision.explain}
    assert scores[cpm.pk] == pytest.approx(20.0)
    assert scores[cpc.pk] == pytest.approx(5 * 0.01 * 1000, rel=1e-6)


def test_clicks_move_a_creatives_pctr(world):
    cpc = line_item_with_creative(
        world.globex, pricing=LineItem.Pricing.CPC, bid=Decimal("1"), category="automotive"
    )
    creative = cpc.creatives.get()
    counters().add_many(
        [
            engine.Bump(keys.creative_impressions(creative.pk), 1000),
            engine.Bump(keys.creative_clicks(creative.pk), 50),
        ]
    )
    state_holder.reset()
    (slot,) = world.decide().pod
    # Beta(0.01·200 + 50, 0.99·200 + 950): the category prior (1 %) and 5 % observed.
    assert slot.pctr == pytest.approx(52 / 1200)


def test_the_fast_filter_agrees_with_the_rules_one_by_one(world):
    rng = random.Random(3)
    titles = [world.title, TitleFactory(maturity_rating="R"), TitleFactory(maturity_rating="G")]
    titles[1].genres.set([world.comedy])
    for title in titles[1:]:
        title.ad_breaks.create(offset_seconds=0, max_pod_duration_seconds=60)
    choices = {
        "target_regions": ["us_west", "us_south", "intl"],
        "target_devices": ["ctv", "mobile", "desktop"],
        "target_age_bands": ["25_34", "55_plus"],
        "target_maturity_ratings": ["G", "PG-13", "R"],
        "target_dayparts": ["primetime", "morning"],
    }
    for _ in range(60):
        fields = {
            name: rng.sample(values, rng.randint(1, 2))
            for name, values in choices.items()
            if rng.random() < 0.4
        }
        if rng.random() < 0.3:
            fields["target_genres"] = [rng.choice([world.drama, world.comedy])]
        if rng.random() < 0.15:
            fields["include_titles"] = [rng.choice(titles)]
        elif rng.random() < 0.15:
            fields["exclude_titles"] = [rng.choice(titles)]
        if rng.random() < 0.1:
            fields["status"] = DeliveryStatus.PAUSED
        line_item_with_creative(rng.choice([world.acme, world.globex]), **fields)
    rebuild()
    demand = current_index()
    for trial in range(40):
        title = rng.choice(titles)
        request = world.request(
            title_id=title.pk,
            ad_break_id=title.ad_breaks.first().pk,
            device=rng.choice(["ctv", "mobile", "desktop"]),
            region=rng.choice(["us_west", "us_south", "intl"]),
        )
        at = world.at + timedelta(hours=rng.choice([0, 12]))
        context = engine._resolve(demand, request, at)
        state = state_holder.get(demand, counters(), at)
        fast = demand.masks.matching(
            title=context.title,
            device=context.device,
            region=context.region,
            age_band=context.viewer.age_band,
        ) & live_now(demand, state, context)
        slow = {
            li.id
            for li in demand.line_items
            if live_rejection(li, context) is None and targeting_rejection(li, context) is None
        }
        assert {li.id for i, li in enumerate(demand.line_items) if fast >> i & 1} == slow, trial


def test_the_index_follows_an_edit_within_a_second(
    world, monkeypatch, django_capture_on_commit_callbacks
):
    line_item = line_item_with_creative(world.acme)
    current_index()
    monkeypatch.setattr(index, "VERSION_CHECK_SECONDS", 0.0)
    assert world.decide().pod
    with django_capture_on_commit_callbacks(execute=True):
        services.delivery_status_set(item=line_item, status=DeliveryStatus.PAUSED)
    paused = world.decide(explain=True)
    assert paused.pod == []
    assert explained(paused)[line_item.pk] == ("live", "paused")
    with django_capture_on_commit_callbacks(execute=True):
        services.line_item_update(line_item=line_item, target_devices=["mobile"])
        services.delivery_status_set(item=line_item, status=DeliveryStatus.ACTIVE)
    assert world.decide().pod == []  # a CTV request no longer matches
    assert world.decide(device="mobile").pod


def test_explain_reports_every_line_item(world):
    line_items = [
        line_item_with_creative(world.acme, bid=Decimal("30")),
        line_item_with_creative(world.globex, bid=Decimal("20"), target_devices=["mobile"]),
    ]
    decision = world.decide(explain=True)
    assert {entry["line_item_id"] for entry in decision.explain} == {li.pk for li in line_items}
    chosen, rejected = sorted(decision.explain, key=lambda entry: entry["score"] is None)
    assert (chosen["stage"], chosen["rule"], chosen["score"]) == ("pod", "chosen", 30.0)
    assert (rejected["stage"], rejected["rule"], rejected["score"]) == (
        "targeting",
        "device",
        None,
    )


def test_decisions_fill_and_exploration_are_counted(world, monkeypatch):
    line_item_with_creative(world.acme, frequency_cap_day=2)
    for seed in range(3):
        world.decide(seed=seed)  # the third is capped: empty
    day = world.at.date()
    assert counters().get_many(
        [keys.decisions(day), keys.unfilled(day), keys.exploration(day)]
    ) == [3, 1, 0]
    monkeypatch.setattr(engine.ranking, "EXPLORATION_SHARE", 1.0)
    world.decide(viewer_id=_viewer("explorer").external_id)
    assert counters().get_many([keys.decisions(day), keys.exploration(day)]) == [4, 1]


def test_decision_latency_percentiles_come_from_the_histogram(world):
    recorder = latency.LatencyRecorder()
    for milliseconds in [0.3] * 60 + [0.9] * 39 + [12.0]:
        recorder.record(milliseconds, at=world.at)
    recorder.flush_now(at=world.at)
    figures = latency.latency_percentiles(minutes=5, at=world.at + timedelta(minutes=2))
    # Buckets: 0.3 ms falls in (0.25, 0.5], 0.9 ms in (0.75, 1], 12 ms in (10, 15].
    assert figures == {"decisions": 100, "p50_ms": 0.5, "p99_ms": 1}
    assert latency.latency_percentiles(minutes=1, at=world.at + timedelta(minutes=10)) == {
        "decisions": 0,
        "p50_ms": None,
        "p99_ms": None,
    }


def test_a_lost_race_is_refilled_from_the_rest_of_the_list(world, monkeypatch):
    """A 60 s break: a 60 s ad wins the walk, loses its reservation; two 15 s ads fill in."""
    long_ad = line_item_with_creative(world.acme, bid=Decimal("40"), duration=60)
    short_a = line_item_with_creative(
        world.globex, bid=Decimal("30"), duration=15, category="automotive"
    )
    short_b = line_item_with_creative(
        world.initech, bid=Decimal("20"), duration=15, category="finance"
    )
    store = counters()
    real_reserve = store.reserve
    calls = []

    def reserve(groups, **flags):
        results = real_reserve(groups, **flags)
        calls.append(len(groups))
        return [False, *results[1:]] if len(calls) == 1 else results

    monkeypatch.setattr(store, "reserve", reserve)
    decision = world.decide(max_duration_seconds=60, explain=True)
    assert [slot.line_item.id for slot in decision.pod] == [short_a.pk, short_b.pk]
    assert explained(decision)[long_ad.pk] == ("pod", "reservation_lost")


def test_a_refused_reservation_is_remembered_until_the_limit_moves(world, monkeypatch):
    line_item = line_item_with_creative(world.acme, frequency_cap_hour=1)
    store = counters()
    real_reserve = store.reserve
    capped_attempts = []

    def reserve(groups, **flags):
        if any(bump.limit is not None for group in groups for bump in group):
            capped_attempts.append(len(groups))
        return real_reserve(groups, **flags)

    monkeypatch.setattr(store, "reserve", reserve)
    assert world.decide().pod
    assert not world.decide().pod  # tries, and Redis refuses: the viewer is capped
    assert len(capped_attempts) == 2
    assert not world.decide().pod  # remembered: no round trip for the same refusal
    assert len(capped_attempts) == 2
    # Another viewer is another key; a raised cap is another limit: both are tried at once.
    assert world.decide(viewer_id=_viewer("someone else").external_id).pod
    LineItem.objects.filter(pk=line_item.pk).update(frequency_cap_hour=2)
    rebuild()
    assert world.decide().pod
    assert len(capped_attempts) == 4


def test_candidates_are_the_eligible_ranked_line_items_in_ranking_order(world):
    advertisers = [world.acme, world.globex, world.initech]
    for number in range(14):
        line_item_with_creative(advertisers[number % 3], bid=Decimal(number % 5 + 1))
    index = current_index()
    state = state_holder.get(index, counters(), world.at)
    rng = random.Random(5)
    for _ in range(40):
        mask = rng.getrandbits(len(index.line_items))
        expected = [entry for entry in state.ranked if mask >> entry.position & 1]
        assert state.candidates(mask) == expected
        # The walk finds the same entries as it goes, and again from the top.
        walk = state.walk(mask)
        assert list(walk) == expected and list(walk) == expected
    assert state.candidates(0) == [] and list(state.walk(0)) == []
    # Bits past the index's line items are not line items.
    assert list(state.walk(1 << len(index.line_items))) == []


def test_key_stamps_are_strftime_s():
    for at in (
        datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
        datetime(999, 10, 10, 10, 10, tzinfo=UTC),
    ):
        assert keys.cap_hour(1, 2, at).endswith(f":h{at:%Y%m%d%H}")
        assert keys.cap_day(1, 2, at.date()).endswith(f":d{at:%Y%m%d}")
        assert keys.pacing_tick(at).endswith(f":{at:%Y%m%d%H%M}")


def test_exploration_draws_new_creatives_at_once_and_reproducibly(world, monkeypatch):
    """Three CPC line items with unproven creatives and equal means: an exploring decision
    orders them by Thompson samples, the same for the same seed, not always the same."""
    monkeypatch.setattr(engine.ranking, "EXPLORATION_SHARE", 1.0)
    cpc = [
        line_item_with_creative(
            advertiser, pricing=LineItem.Pricing.CPC, bid=Decimal("2"), category=category
        )
        for advertiser, category in zip(
            [world.acme, world.globex, world.initech],
            ["beverages", "automotive", "finance"],
            strict=True,
        )
    ]
    ids = {line_item.pk for line_item in cpc}
    viewers = [ViewerFactory(external_id=f"explorer-{seed}") for seed in range(12)]
    rebuild()

    def order(seed: int) -> list[int]:
        decision = world.decide(seed=seed, viewer_id=viewers[seed].external_id)
        assert decision.explored
        return [slot.line_item.id for slot in decision.pod]

    orders = [order(seed) for seed in range(12)]
    assert all(set(pod) == ids for pod in orders)
    assert len({tuple(pod) for pod in orders}) > 1  # the samples move the order
    state = state_holder.get(current_index(), counters(), world.at)
    everyone = (1 << len(state.ranked)) - 1
    first, again = (state.candidates(everyone, random.Random(3)) for _ in range(2))
    assert first == again  # a seeded decision is reproducible


def test_a_forked_process_draws_its_own_random_sequence():
    """Processes forked after the engine is imported (the browser tests' server templates, a
    pre-forking server) must not all draw the parent's sequence for decisions that bring none."""
    import os

    from ads.decisioning import engine

    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(write, repr(engine._RANDOM.random()).encode())
        os._exit(0)
    os.waitpid(child, 0)
    os.close(write)
    drawn_there = float(os.read(read, 100))
    os.close(read)
    assert drawn_there != engine._RANDOM.random()
