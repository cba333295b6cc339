"""Events: signed tracking links and batches, each counted exactly once."""

import base64
import io
import os
import threading
from datetime import timedelta

import pytest
from django.core import signing
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from ads import services
from ads.delivery import keys, tokens
from ads.delivery.counters import counters
from ads.models import AdEvent
from ads.services import events as event_service
from tests.ads.conftest import line_item_with_creative
from tests.factories import AdBreakFactory, TitleFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_exploration")]
PLAYER = "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) InterludePlayer/1.0"


@pytest.fixture
def slot(world):
    line_item_with_creative(world.acme)
    (slot,) = world.decide(at=timezone.now()).pod  # tracking links are fired "now"
    return slot


def track(client, token, event, user_agent=PLAYER):
    return client.get(f"/t/{token}/{event}", HTTP_USER_AGENT=user_agent)


def test_a_tracking_link_counts_an_impression_once(client, world, slot):
    response = track(client, slot.token, "impression")
    assert response.status_code == 204
    event = AdEvent.objects.get()
    assert (event.event_type, event.creative_id, event.viewer_id, event.title_id) == (
        "impression",
        slot.creative.id,
        world.viewer.pk,
        world.title.pk,
    )
    assert event.cost_micros == 12_500  # $12.50 CPM
    assert (event.device, event.region, event.pod_position) == ("ctv", "us_west", 1)
    replay = track(client, slot.token, "impression")
    assert replay.status_code == 400
    assert replay.json()["error"]["code"] == "replayed"
    assert AdEvent.objects.count() == 1
    day = event.occurred_at.date()
    assert counters().get_many(
        [
            keys.spent_day(slot.line_item.id, day),
            keys.creative_impressions(slot.creative.id),
            keys.invalid_events("replayed", day),
        ]
    ) == [12_500, 1, 1]


def test_a_forged_token_is_rejected_and_counted_as_invalid(client, slot):
    forged = slot.token[:-2] + ("AA" if not slot.token.endswith("AA") else "BB")
    response = track(client, forged, "impression")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "forged"
    assert not AdEvent.objects.exists()
    assert counters().get_many([keys.invalid_events("forged", timezone.now().date())]) == [1]


def test_an_expired_token_is_rejected(slot):
    late = timezone.now() + tokens.TOKEN_TTL + timedelta(seconds=1)
    outcome = services.event_track(token=slot.token, event_type="impression", at=late)
    assert (outcome.status, outcome.reason) == ("rejected", "expired")
    assert not AdEvent.objects.exists()


def test_a_click_needs_an_impression_and_redirects(client, slot):
    first = track(client, slot.token, "click")
    assert first.status_code == 302
    assert first["Location"] == "https://brand.example.com/landing"
    assert not AdEvent.objects.exists()  # redirected, not counted
    track(client, slot.token, "impression")
    assert track(client, slot.token, "click").status_code == 302
    assert sorted(AdEvent.objects.values_list("event_type", flat=True)) == ["click", "impression"]


def test_bots_are_filtered(client, slot):
    response = track(client, slot.token, "impression", user_agent="Googlebot/2.1")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bot"
    assert not AdEvent.objects.exists()


@pytest.mark.parametrize("user_agent", [None, "", "   "])
def test_a_tracking_link_without_a_user_agent_is_a_bots(client, slot, user_agent):
    headers = {} if user_agent is None else {"HTTP_USER_AGENT": user_agent}
    response = client.get(f"/t/{slot.token}/impression", **headers)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "bot",
        "message": "Requests from automated agents are not counted.",
        "fields": {},
    }
    assert not AdEvent.objects.exists()
    assert counters().get_many([keys.invalid_events("bot", timezone.now().date())]) == [1]


def test_a_batch_without_a_user_agent_is_counted(slot):
    """A batch comes from a server holding a platform key: its User-Agent is the server's."""
    (outcome,) = services.events_record(
        events=[services.IncomingEvent(token=slot.token, event_type="impression")]
    )
    assert (outcome.status, outcome.reason) == ("accepted", None)


def test_an_unknown_event_type_is_named(client, slot):
    response = track(client, slot.token, "rewind")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_event_type"


def test_cpc_spends_at_the_click(world):
    line_item = line_item_with_creative(world.globex, pricing="cpc", category="automotive")
    (slot,) = world.decide().pod
    outcomes = services.events_record(
        events=[
            services.IncomingEvent(slot.token, "impression", "a"),
            services.IncomingEvent(slot.token, "click", "b"),
        ],
        user_agent=PLAYER,
        at=world.at,
    )
    assert [outcome.status for outcome in outcomes] == ["accepted", "accepted"]
    costs = dict(AdEvent.objects.values_list("event_type", "cost_micros"))
    assert costs == {"impression": 0, "click": 12_500_000}
    assert counters().get_many([keys.spent_lifetime(line_item.pk)]) == [12_500_000]


def test_a_batch_sent_twice_counts_once(world):
    line_item_with_creative(world.acme)
    (slot,) = world.decide().pod
    batch = [
        services.IncomingEvent(slot.token, event, f"client-{event}")
        for event in ["complete", "impression", "first_quartile", "midpoint", "third_quartile"]
    ]
    first = services.events_record(events=batch, user_agent=PLAYER, at=world.at)
    assert [outcome.status for outcome in first] == ["accepted"] * 5
    again = services.events_record(events=batch, user_agent=PLAYER, at=world.at)
    assert [(outcome.status, outcome.reason) for outcome in again] == [
        ("duplicate", "replayed")
    ] * 5
    assert AdEvent.objects.count() == 5
    assert counters().get_many([keys.creative_impressions(slot.creative.id)]) == [1]


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_count_once(world):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    line_item_with_creative(world.acme)
    (slot,) = world.decide().pod
    statuses = []
    lock = threading.Lock()

    def report() -> None:
        outcomes = services.events_record(
            events=[services.IncomingEvent(slot.token, "impression", "same")],
            user_agent=PLAYER,
            at=world.at,
        )
        with lock:
            statuses.extend(outcome.status for outcome in outcomes)
        connection.close()

    threads = [threading.Thread(target=report) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == ["accepted"] + ["duplicate"] * 7
    assert AdEvent.objects.count() == 1
    assert counters().get_many([keys.creative_impressions(slot.creative.id)]) == [1]


def test_a_reported_time_outside_the_tokens_life_is_rejected(world, slot):
    outcomes = services.events_record(
        events=[
            services.IncomingEvent(
                slot.token, "impression", "early", occurred_at=world.at - timedelta(hours=1)
            )
        ],
        user_agent=PLAYER,
        at=world.at,
    )
    assert (outcomes[0].status, outcomes[0].reason) == ("rejected", "bad_timestamp")


def test_counters_rebuild_from_the_event_table(world):
    line_item = line_item_with_creative(world.acme)
    for viewer_seed in range(3):
        (slot,) = world.decide(seed=viewer_seed).pod
        services.events_record(
            events=[services.IncomingEvent(slot.token, "impression", f"i{viewer_seed}")],
            user_agent=PLAYER,
            at=world.at,
        )
    creative_id = slot.creative.id
    watched = [
        keys.spent_day(line_item.pk, world.at.date()),
        keys.spent_lifetime(line_item.pk),
        keys.creative_impressions(creative_id),
    ]
    day = world.at.date()
    watched += [
        keys.live(world.acme.pk, day, "impressions"),
        keys.live(world.acme.pk, day, "spend"),
        keys.live_platform(day, "impressions"),
        keys.live_platform_spend(day, world.acme.currency),
    ]
    before = counters().get_many(watched)
    assert before == [37_500, 37_500, 3, 3, 37_500, 3, 37_500]
    counters().delete_prefix(keys.PREFIX)  # Redis lost its data
    assert counters().get_many(watched) == [0] * len(watched)
    services.counters_rebuild(since=world.at - timedelta(days=1))
    assert counters().get_many(watched) == before
    assert counters().get_many([keys.reserved_day(line_item.pk, world.at.date())]) == [37_500]


def test_the_rebuild_command_restores_spend(world, slot):
    services.event_track(token=slot.token, event_type="impression", user_agent=PLAYER)
    counters().delete_prefix(keys.PREFIX)
    output = io.StringIO()
    call_command("rebuild_counters", stdout=output)
    assert output.getvalue().startswith("Rebuilt ")
    assert counters().get_many([keys.spent_lifetime(slot.line_item.id)]) == [12_500]


def record(world, *events):
    """events_record of (token, type) pairs, reported now by a player."""
    return services.events_record(
        events=[
            services.IncomingEvent(token, event_type, f"e{number}")
            for number, (token, event_type) in enumerate(events)
        ],
        user_agent=PLAYER,
        at=world.at,
    )


def test_a_batch_answers_each_event_in_its_place(world):
    line_item_with_creative(world.acme)
    (slot,) = world.decide().pod
    outcomes = record(
        world,
        (slot.token, "midpoint"),
        (slot.token + "x", "impression"),
        (slot.token, "impression"),
        (slot.token, "rewind"),
        (slot.token, "midpoint"),
    )
    assert [(o.status, o.reason, o.client_event_id) for o in outcomes] == [
        ("accepted", None, "e0"),  # its impression is in the same batch, later
        ("rejected", "forged", "e1"),
        ("accepted", None, "e2"),
        ("rejected", "unknown_event_type", "e3"),
        ("duplicate", "replayed", "e4"),
    ]
    assert sorted(AdEvent.objects.values_list("event_type", "client_event_id")) == [
        ("impression", "e2"),
        ("midpoint", "e0"),
    ]


def test_a_batch_reads_each_token_once_and_answers_each_of_its_events(world, monkeypatch):
    """A batch carries a slot's token once per event of the slot: each distinct token is read
    once, and each event is still answered in its place, every event of a refused token with
    its reason, and counted as invalid once per event."""
    line_item_with_creative(world.acme)
    (slot,) = world.decide().pod
    (old,) = world.decide(at=world.at - tokens.TOKEN_TTL - timedelta(minutes=1), seed=8).pod
    forged = slot.token[:-2] + ("AA" if not slot.token.endswith("AA") else "BB")
    reads = []
    read_token = event_service.read_token

    def counted_read(token, *, at):
        reads.append(token)
        return read_token(token, at=at)

    monkeypatch.setattr(event_service, "read_token", counted_read)
    outcomes = record(
        world,
        (forged, "impression"),
        (slot.token, "impression"),
        (old.token, "impression"),
        (forged, "midpoint"),
        (slot.token, "midpoint"),
        (old.token, "complete"),
        (slot.token, "midpoint"),
        (forged, "click"),
    )
    assert [(o.status, o.reason, o.client_event_id) for o in outcomes] == [
        ("rejected", "forged", "e0"),
        ("accepted", None, "e1"),
        ("rejected", "expired", "e2"),
        ("rejected", "forged", "e3"),
        ("accepted", None, "e4"),
        ("rejected", "expired", "e5"),
        ("duplicate", "replayed", "e6"),
        ("rejected", "forged", "e7"),
    ]
    # The refused tokens' events carry no claim; the others their token's.
    assert [o.claim is None for o in outcomes] == [o.status == "rejected" for o in outcomes]
    assert sorted(reads) == sorted([forged, slot.token, old.token])
    assert sorted(AdEvent.objects.values_list("event_type", "client_event_id")) == [
        ("impression", "e1"),
        ("midpoint", "e4"),
    ]
    day = world.at.date()
    assert counters().get_many(
        [
            keys.invalid_events("forged", day),
            keys.invalid_events("expired", day),
            keys.invalid_events("replayed", day),
        ]
    ) == [3, 2, 1]


def test_later_events_need_their_impression_stored_or_in_the_batch(world):
    line_item_with_creative(world.acme)
    (slot,) = world.decide().pod
    (alone,) = record(world, (slot.token, "complete"))
    assert (alone.status, alone.reason) == ("rejected", "no_impression")
    record(world, (slot.token, "impression"))
    (later,) = record(world, (slot.token, "complete"))
    assert later.status == "accepted"
    assert counters().get_many([keys.invalid_events("no_impression", world.at.date())]) == [1]


@pytest.mark.parametrize("deleted", ["creative", "viewer", "title"])
def test_events_of_a_deleted_creative_viewer_or_title_are_rejected(world, deleted):
    line_item = line_item_with_creative(world.acme)
    (slot,) = world.decide().pod
    {"creative": line_item.creatives.get(), "viewer": world.viewer, "title": world.title}[
        deleted
    ].delete()
    (outcome,) = record(world, (slot.token, "impression"))
    assert (outcome.status, outcome.reason) == ("rejected", "unknown_reference")
    assert not AdEvent.objects.exists()


def test_each_reference_is_found_in_its_own_table(world):
    """A batch's references are read in one statement, an array of ids per table; with a
    viewer, a title and an ad break whose ids all differ, an array read against another
    table would reject the event."""
    line_item_with_creative(world.acme)
    title = TitleFactory(pk=world.viewer.pk + 1000)
    ad_break = AdBreakFactory(pk=world.viewer.pk + 2000, title=title)
    ids = {"viewer": world.viewer.pk, "title": title.pk, "ad_break": ad_break.pk}
    (slot,) = world.decide(title_id=title.pk, ad_break_id=ad_break.pk).pod
    (outcome,) = record(world, (slot.token, "impression"))
    assert outcome.status == "accepted", outcome
    event = AdEvent.objects.get()
    assert (event.viewer_id, event.title_id, event.ad_break_id) == tuple(ids.values())


def test_a_claim_whose_creative_is_not_its_line_items_is_rejected(world):
    line_item_with_creative(world.acme)
    other = line_item_with_creative(world.globex)
    (slot,) = world.decide().pod
    claim = tokens.read_token(slot.token, at=world.at)
    moved = tokens.make_token(claim._replace(line_item_id=other.pk))
    (outcome,) = record(world, (moved, "impression"))
    assert (outcome.status, outcome.reason) == ("rejected", "unknown_reference")


def test_an_event_of_a_deleted_ad_break_is_stored_without_it(world):
    line_item_with_creative(world.acme)
    (slot,) = world.decide().pod
    world.ad_break.delete()
    (outcome,) = record(world, (slot.token, "impression"))
    assert outcome.status == "accepted"
    assert AdEvent.objects.get().ad_break_id is None


def test_deleting_a_creative_deletes_its_events(world):
    """The foreign keys have no database constraint; Django still cascades."""
    line_item = line_item_with_creative(world.acme)
    (slot,) = world.decide().pod
    record(world, (slot.token, "impression"), (slot.token, "complete"))
    assert AdEvent.objects.count() == 2
    line_item.creatives.get().delete()
    assert not AdEvent.objects.exists()


def test_the_event_table_has_no_foreign_key_constraints_nor_redundant_indexes(db):
    table = AdEvent._meta.db_table
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    assert not [name for name, c in constraints.items() if c["foreign_key"]]
    indexed = sorted(tuple(c["columns"]) for c in constraints.values() if c["index"])
    assert ("advertiser_id",) not in indexed
    assert ("line_item_id",) not in indexed
    assert [
        tuple(c["columns"]) for c in constraints.values() if c["unique"] and not c["primary_key"]
    ] == [("event_id", "decided_at")]
    if connection.vendor == "postgresql":
        assert not [name for name in constraints if name.endswith("_like")]


def test_tokens_are_opaque(world):
    """A token travels on the viewer's device: nothing in it is readable, neither as it is nor
    decoded (the price, the advertiser, the viewer)."""
    line_item_with_creative(world.acme)
    (slot,) = world.decide().pod
    claim = tokens.read_token(slot.token, at=world.at)
    assert (claim.price_micros, claim.advertiser_id) == (12_500, world.acme.pk)
    readable = [slot.token] + [
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("latin-1")
        for part in slot.token.split(":")  # the signed format was payload:signature
    ]
    for secret in (str(claim.price_micros), claim.decision_id, '"ctv"', '"us_west"'):
        assert not any(secret in text for text in readable)
    with pytest.raises(signing.BadSignature):  # not a signed object any more
        signing.Signer(salt="interlude.tracking.v1").unsign_object(slot.token)


def test_two_slots_of_one_decision_have_unrelated_tokens(world):
    line_item_with_creative(world.acme)
    line_item_with_creative(world.globex, category="travel")
    first, second = world.decide().pod
    shared = os.path.commonprefix([first.token, second.token])
    assert len(shared) < 4  # deterministic encryption, but of plaintexts that differ


def test_every_changed_character_of_a_token_is_a_forgery(world):
    line_item_with_creative(world.acme)
    (slot,) = world.decide().pod
    token = slot.token
    for place, character in enumerate(token):
        for replacement in {"A", "z", "0", "-", "_", ":"} - {character}:
            changed = token[:place] + replacement + token[place + 1 :]
            with pytest.raises(tokens.InvalidToken) as error:
                tokens.read_token(changed, at=world.at)
            assert error.value.reason == "forged"
    for changed in ["", ":", token + "=", token[:-1], token[:22], token + "A", "\ud800" + token]:
        with pytest.raises(tokens.InvalidToken):
            tokens.read_token(changed, at=world.at)


def test_a_token_signed_with_a_retired_secret_is_accepted_while_it_is_a_fallback(world, settings):
    line_item_with_creative(world.acme)
    decision = world.decide()
    (slot,) = decision.pod
    new_secret = "a-new-secret-key-" + "n" * 40
    with override_settings(SECRET_KEY=new_secret, SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]):
        assert tokens.read_token(slot.token, at=world.at).decision_id == decision.decision_id
    with override_settings(SECRET_KEY=new_secret), pytest.raises(tokens.InvalidToken):
        tokens.read_token(slot.token, at=world.at)
    assert tokens.read_token(slot.token, at=world.at).decision_id == decision.decision_id


class RecordingLayer:
    def __init__(self):
        self.sent = []

    async def group_send(self, group, message):
        self.sent.append((group, message["type"]))


def test_live_messages_go_once_per_account_and_interval(monkeypatch):
    layer = RecordingLayer()
    monkeypatch.setattr(event_service, "get_channel_layer", lambda: layer)
    # An interval no machine outlasts between the two calls (0.25 s did at load 166).
    monkeypatch.setattr(event_service, "LIVE_INTERVAL", 60)
    services.live_publish(advertiser_ids={3, 1})
    assert sorted(layer.sent) == [
        ("advertiser-1", "delivery.changed"),
        ("advertiser-3", "delivery.changed"),
    ]
    services.live_publish(advertiser_ids={1, 2})  # 1 was told within LIVE_INTERVAL
    assert sorted(layer.sent)[-1] == ("advertiser-3", "delivery.changed")
    assert ("advertiser-2", "delivery.changed") in layer.sent
    assert len(layer.sent) == 3


def test_sqlite_insert_params_are_what_the_fields_would_prepare():
    """The VALUES list passes ints and strings as they are and converts times and decision ids
    once per distinct value: the parameters equal each field's own get_db_prep_save."""
    import uuid
    from datetime import UTC, datetime

    from django.db import connection

    from ads.services import events as events_module

    fields = events_module._insert_fields()
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    decision = uuid.uuid4().hex
    row = [1, 2, 3, 4, 5, None, "impression", "e1", "c1", decision, 0, "tv", "us", when, when]
    row += [when, 7]
    other = [1, 2, 3, 4, 5, 6, "click", "e2", "c2", decision, 1, "tv", "us", when, when, when, 0]
    columns = [list(pair) for pair in zip(row, other, strict=True)]

    _, params = events_module._insert_values(columns)

    expected = [
        field.get_db_prep_save(
            uuid.UUID(value) if field.name == "decision_id" else value, connection
        )
        for values in (row, other)
        for field, value in zip(fields, values, strict=True)
    ]
    assert params == expected
    assert len(params) == 34


def test_integer_arrays_reach_postgresql_as_the_values_they_hold():
    """The insert's and the reference lookup's integer columns go as array literals: PostgreSQL
    reads each back as the list it was (a missing ad break as NULL), whatever the ints' size."""
    if connection.vendor != "postgresql":
        pytest.skip("array literals are PostgreSQL's")
    columns = [[1, None, 2**63 - 1, -(2**63), 0], [7], [], [None]]
    literals = [event_service._int_array(column) for column in columns]
    assert event_service._int_array({3, 1}) in ("{1,3}", "{3,1}")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::smallint[]",
            [*literals, event_service._int_array([0, 32767])],
        )
        assert list(cursor.fetchone()) == [*columns, [0, 32767]]
    fields = event_service._insert_fields()
    integers = [f.name for f, i in zip(fields, event_service._integer_columns(), strict=True) if i]
    assert integers == [
        "advertiser",
        "line_item",
        "creative",
        "viewer",
        "title",
        "ad_break",
        "pod_position",
        "cost_micros",
    ]


def test_a_stored_event_is_found_by_its_id_with_its_own_decision_time_only(world):
    # The lookup of the impressions a batch's later events need takes (id, time) pairs, on
    # either database: an id asked with another time is not found.
    line_item_with_creative(world.acme)
    (slot,) = world.decide().pod
    (outcome,) = services.events_record(
        events=[services.IncomingEvent(slot.token, "impression", "i")],
        user_agent=PLAYER,
        at=world.at,
    )
    impression = outcome.claim.event_id("impression")
    decided = outcome.claim.issued_at
    assert event_service._stored_event_ids({impression: decided}) == {impression}
    other = "another-decision:1:impression"  # asked with the stored event's own time
    assert (
        event_service._stored_event_ids(
            {impression: decided + timedelta(seconds=1), other: decided}
        )
        == set()
    )
