"""Holes found by probing the integration API: odd but well-formed input is refused with a
reason, never a 500, and never costs the rest of a batch."""

import json

import pytest
from django.utils import timezone

from ads import services
from ads.models import AdEvent
from tests.ads.conftest import line_item_with_creative

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_exploration")]


@pytest.fixture
def api(client):
    _, raw_key = services.platform_key_create(name="Living-room player")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw_key}"
    return client


def post_raw(client, path, text):
    return client.post(path, text, content_type="application/json")


def a_token(api, world):
    line_item_with_creative(world.acme)
    body = {
        "viewer_id": world.viewer.external_id,
        "title_id": world.title.pk,
        "ad_break_id": world.ad_break.pk,
        "device": "ctv",
    }
    slot = post_raw(api, "/api/v1/decisions", json.dumps(body)).json()["pod"][0]
    return slot["tracking"]["impression"].split("/t/")[1].split("/")[0]


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-02-30T10:00:00+00:00",  # no such day
        "2026-02-10T25:00:00+00:00",  # no such hour
        "2026-02-10T10:00:00+99:00",  # no such offset
        "FULL-WIDTH NOW",  # the present in full-width digits: not ISO 8601
    ],
)
def test_an_impossible_time_rejects_that_event_alone(api, world, occurred_at):
    token = a_token(api, world)
    if occurred_at == "FULL-WIDTH NOW":
        full_width = str.maketrans("0123456789", "０１２３４５６７８９")
        occurred_at = timezone.now().isoformat().translate(full_width)
    batch = {
        "events": [
            {"event_id": "good", "token": token, "type": "impression"},
            {"event_id": "bad", "token": token, "type": "complete", "occurred_at": occurred_at},
        ]
    }
    response = post_raw(api, "/api/v1/events", json.dumps(batch))
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"event_id": "good", "status": "accepted", "reason": None},
        {"event_id": "bad", "status": "rejected", "reason": "bad_timestamp"},
    ]
    assert list(AdEvent.objects.values_list("client_event_id", flat=True)) == ["good"]


@pytest.mark.parametrize(
    ("event_id", "echoed"),
    [("nul\x00byte", "nul\x00byte"), ("lone\ud800surrogate", "lone\ufffdsurrogate")],
)
def test_an_event_id_a_database_cannot_store_rejects_that_event_alone(api, world, event_id, echoed):
    token = a_token(api, world)
    batch = {
        "events": [
            {"event_id": event_id, "token": token, "type": "impression"},
            {"event_id": "good", "token": token, "type": "impression"},
        ]
    }
    # json.dumps escapes the surrogate as \ud800, as a client's JSON would carry it.
    response = post_raw(api, "/api/v1/events", json.dumps(batch))
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"event_id": echoed, "status": "rejected", "reason": "invalid_event_id"},
        {"event_id": "good", "status": "accepted", "reason": None},
    ]
    assert list(AdEvent.objects.values_list("client_event_id", flat=True)) == ["good"]


@pytest.mark.parametrize("path", ["/api/v1/decisions", "/api/v1/events"])
def test_json_nested_too_deeply_is_a_400_not_a_500(api, path):
    depth = 100_000
    response = post_raw(api, path, "[" * depth + "]" * depth)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "parse_error",
        "message": "JSON parse error - nested too deeply.",
        "fields": {},
    }
    nested = '{"events": ' + "[" * depth + "]" * depth + "}"
    assert post_raw(api, path, nested).status_code == 400
