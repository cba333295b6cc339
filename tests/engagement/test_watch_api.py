"""The playback API of /watch/: opening a session, batches of events stored once per event id,
refusals (no profile, another viewer's session, a forged id, bad input: 400 naming the field,
an ended session) that store nothing, and CSRF for the player's fetch and its closing beacon."""

import json

import pytest
from django.test import Client

from catalog.models import AgeBand
from engagement.models import PlaybackEvent, ViewingSession
from tests.factories import TitleFactory, ViewerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def profiles():
    """Two adult profiles and a kids one (all offered on /watch/)."""
    return (
        ViewerFactory(),
        ViewerFactory(),
        ViewerFactory(is_kids=True, age_band=AgeBand.UNDER_18),
    )


@pytest.fixture
def title():
    return TitleFactory(duration_seconds=3600, maturity_rating="R")


def as_profile(viewer, client=None):
    client = client or Client()
    assert client.post(f"/watch/profiles/{viewer.pk}").status_code == 302
    return client


def post(client, path, body, **headers):
    return client.post(path, json.dumps(body), content_type="application/json", **headers)


def open_session(client, title) -> int:
    response = post(client, "/watch/api/sessions", {"title_id": title.pk, "device": "desktop"})
    assert response.status_code == 201, response.content
    return response.json()["session_id"]


def event(number, kind="play", position=10, **extra):
    return {"event_id": f"e{number}", "kind": kind, "position_seconds": position,
            "offset_ms": 0} | extra  # fmt: skip


def send(client, session_id, events, **body):
    return post(client, f"/watch/api/sessions/{session_id}/events", {"events": events} | body)


def assert_error(response, status, field):
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert set(body) == {"code", "message", "fields"}
    if field:
        assert list(body["fields"]) == [field], body


def test_a_profile_opens_a_session_of_its_own(profiles, title):
    client = as_profile(profiles[0])
    session_id = open_session(client, title)

    session = ViewingSession.objects.get(pk=session_id)
    assert (session.viewer, session.title, session.device) == (profiles[0], title, "desktop")
    assert session.ended_at is None and session.watched_seconds == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"device": "desktop"}, "title_id"),
        ({"title_id": "7", "device": "desktop"}, "title_id"),
        ({"title_id": 0, "device": "desktop"}, "title_id"),
        ({"title_id": 1, "device": "toaster"}, "device"),
        ([1, 2], "batch"),
    ],
)
def test_opening_refuses_bad_input_naming_the_field(profiles, title, body, field):
    client = as_profile(profiles[0])
    assert_error(post(client, "/watch/api/sessions", body), 400, field)
    assert ViewingSession.objects.count() == 0


def test_opening_needs_a_profile_and_a_title_it_may_watch(profiles, title):
    body = {"title_id": title.pk, "device": "desktop"}
    assert_error(post(Client(), "/watch/api/sessions", body), 403, None)
    kids = as_profile(profiles[2])
    assert_error(post(kids, "/watch/api/sessions", body), 404, "title_id")  # rated R
    assert ViewingSession.objects.count() == 0


def test_a_batch_is_stored_once_per_event_id(profiles, title):
    client = as_profile(profiles[0])
    session_id = open_session(client, title)
    batch = [
        event(1, "play", 0),
        event(2, "seek", 40, detail={"from": 40, "to": 900}),
        event(3, "speed", 900, detail={"rate": 1.5, "from": 1}),
        event(4, "ad_break", 900, detail={"break": 900, "ads": 2, "pod_seconds": 45}),
        event(5, "ad_start", 900, detail={"break": 900, "ad": 1, "ads": 2, "creative": "Fizz"}),
        event(6, "ad_end", 900, detail={"break": 900, "ad": 1, "ads": 2}),
        event(7, "pause", 950),
    ]
    first = send(client, session_id, batch, watched_seconds=90)
    assert first.status_code == 200, first.content
    assert first.json() == {"stored": 7, "duplicates": 0, "ended": False}

    # The same batch again (a retry), then one overlapping it: only what is new is stored.
    assert send(client, session_id, batch).json() == {"stored": 0, "duplicates": 7, "ended": False}
    again = send(client, session_id, [batch[6], event(8, "resume", 950), event(8, "resume", 950)])
    assert again.json() == {"stored": 1, "duplicates": 2, "ended": False}

    stored = PlaybackEvent.objects.filter(session_id=session_id).order_by("id")
    assert [e.client_event_id for e in stored] == [f"e{n}" for n in range(1, 9)]
    assert [e.kind for e in stored] == [
        "play", "seek", "speed", "ad_break", "ad_start", "ad_end", "pause", "resume",
    ]  # fmt: skip
    assert stored[1].detail == {"from": 40, "to": 900}
    assert ViewingSession.objects.get(pk=session_id).watched_seconds == 90


def test_complete_ends_the_session_and_later_events_are_refused(profiles, title):
    client = as_profile(profiles[0])
    session_id = open_session(client, title)
    ended = send(client, session_id, [event(1, "play", 0), event(2, "complete", 3600)],
                 watched_seconds=3650)  # fmt: skip
    assert ended.json() == {"stored": 2, "duplicates": 0, "ended": True}
    session = ViewingSession.objects.get(pk=session_id)
    assert (session.completed, session.abandoned, session.watched_seconds) == (True, False, 3600)
    assert session.ended_at is not None

    assert_error(send(client, session_id, [event(3, "abandon", 3600)]), 400, "session")
    # A retry of the batch that ended it is still just duplicates.
    replay = send(client, session_id, [event(2, "complete", 3600)])
    assert replay.json() == {"stored": 0, "duplicates": 1, "ended": True}
    assert PlaybackEvent.objects.filter(session_id=session_id).count() == 2


def test_abandon_ends_the_session_abandoned(profiles, title):
    client = as_profile(profiles[0])
    session_id = open_session(client, title)
    send(client, session_id, [event(1, "play", 0), event(2, "abandon", 300)], watched_seconds=300)
    session = ViewingSession.objects.get(pk=session_id)
    assert (session.completed, session.abandoned, session.watched_seconds) == (False, True, 300)


def test_another_viewers_or_a_forged_session_is_a_404_and_stores_nothing(profiles, title):
    owner = as_profile(profiles[0])
    session_id = open_session(owner, title)
    send(owner, session_id, [event(1, "play", 0)])
    outsider = as_profile(profiles[1])

    for target in (session_id, session_id + 1000):
        response = send(outsider, target, [event(2, "abandon", 100), event(3, "pause", 100)])
        assert_error(response, 404, None)
    assert_error(send(Client(), session_id, [event(4, "pause", 100)]), 403, None)

    session = ViewingSession.objects.get(pk=session_id)
    assert session.ended_at is None and not session.abandoned
    assert list(PlaybackEvent.objects.values_list("client_event_id", flat=True)) == ["e1"]


@pytest.mark.parametrize(
    ("events", "body", "field"),
    [
        ([], {}, "events"),
        ("play", {}, "events"),
        ([event(1)] * 201, {}, "events"),
        ([event(1), "pause"], {}, "events[1]"),
        ([event(1), event(2, "rewind")], {}, "events[1].kind"),
        ([{"kind": "play", "position_seconds": 0, "offset_ms": 0}], {}, "events[0].event_id"),
        ([event("x" * 70)], {}, "events[0].event_id"),
        ([event(1, position=-1)], {}, "events[0].position_seconds"),
        ([event(1, position=3601)], {}, "events[0].position_seconds"),
        ([event(1, position=1.5)], {}, "events[0].position_seconds"),
        ([event(1, offset_ms=10**9)], {}, "events[0].offset_ms"),
        ([event(1, "seek", 10, detail={"from": 10})], {}, "events[0].detail.to"),
        ([event(1, "skip", 10, detail={"from": 10, "to": "90"})], {}, "events[0].detail.to"),
        ([event(1, "speed", 10, detail={"rate": 16})], {}, "events[0].detail.rate"),
        ([event(1, "ad_start", 10, detail={"break": 0, "ad": 1})], {}, "events[0].detail.ads"),
        (
            [event(1, "ad_break", 10, detail={"break": 0, "ads": 2})],
            {},
            "events[0].detail.pod_seconds",
        ),
        ([event(1, detail=[1])], {}, "events[0].detail"),
        ([event(1, detail={"x": "y" * 1200})], {}, "events[0].detail"),
        ([event(1)], {"watched_seconds": -5}, "watched_seconds"),
    ],
)
def test_bad_events_are_a_400_naming_the_field_and_nothing_is_stored(
    profiles, title, events, body, field
):
    client = as_profile(profiles[0])
    session_id = open_session(client, title)
    assert_error(send(client, session_id, events, **body), 400, field)
    assert PlaybackEvent.objects.count() == 0
    assert ViewingSession.objects.get(pk=session_id).watched_seconds == 0


def test_unparsable_bodies_are_a_400(profiles, title):
    client = as_profile(profiles[0])
    session_id = open_session(client, title)
    path = f"/watch/api/sessions/{session_id}/events"
    assert_error(client.post(path, "{", content_type="application/json"), 400, "batch")
    assert_error(client.post(path, {"other": "x"}), 400, "batch")
    assert_error(client.post(path, {"batch": "[1"}), 400, "batch")
    assert client.get(path).status_code == 405


def test_csrf_is_required_of_the_fetch_and_of_the_beacon(profiles, title):
    client = Client(enforce_csrf_checks=True)
    page = client.get("/watch/")
    token = page.context["csrf_token"]
    assert client.post(f"/watch/profiles/{profiles[0].pk}").status_code == 403
    response = client.post(f"/watch/profiles/{profiles[0].pk}", {"csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302
    token = client.cookies["csrftoken"].value  # the page's token is valid for the cookie's secret
    body = {"title_id": title.pk, "device": "desktop"}
    assert post(client, "/watch/api/sessions", body).status_code == 403  # no token
    opened = post(client, "/watch/api/sessions", body, HTTP_X_CSRFTOKEN=token)
    assert opened.status_code == 201
    path = f"/watch/api/sessions/{opened.json()['session_id']}/events"

    batch = json.dumps({"events": [event(1, "abandon", 100)], "watched_seconds": 100})
    assert client.post(path, {"batch": batch}).status_code == 403  # a beacon without the token
    assert PlaybackEvent.objects.count() == 0
    beacon = client.post(path, {"batch": batch, "csrfmiddlewaretoken": token})
    assert beacon.status_code == 200, beacon.content
    assert beacon.json() == {"stored": 1, "duplicates": 0, "ended": True}
    assert ViewingSession.objects.get().abandoned


def test_a_batch_costs_a_fixed_number_of_queries(profiles, title, django_assert_max_num_queries):
    client = as_profile(profiles[0])
    session_id = open_session(client, title)
    batch = [event(number, "pause" if number % 2 else "resume", 60) for number in range(50)]
    # The browser's session, the viewing session, the known ids, the watched seconds, the
    # insert; and the savepoint's two statements (the test runs inside a transaction).
    with django_assert_max_num_queries(7):
        response = send(client, session_id, batch, watched_seconds=60)
    assert response.json()["stored"] == 50
