"""The integration API: platform keys, decisions, event batches, the schema."""

import gc
import io
import json

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from ads import services
from ads.api import DecisionInput, parse_decision_request
from ads.delivery import latency
from ads.models import AdEvent, PlatformKey
from ads.services.keys import platform_keys_forget
from config.api_wsgi import APIHandler, routed
from tests.ads.conftest import line_item_with_creative

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_exploration")]


@pytest.fixture
def api(client):
    _, raw_key = services.platform_key_create(name="Living-room player")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw_key}"
    return client


def post(client, path, body):
    return client.post(path, body, content_type="application/json")


def test_decisions_need_a_platform_key(client, world):
    response = post(client, "/api/v1/decisions", world.body())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    client.defaults["HTTP_AUTHORIZATION"] = "Bearer il_not-a-key"
    response = post(client, "/api/v1/decisions", world.body())
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "authentication_failed",
        "message": "Unknown or revoked platform key.",
        "fields": {},
    }


def test_a_revoked_key_stops_working(api, world):
    assert post(api, "/api/v1/decisions", world.body()).status_code == 200
    PlatformKey.objects.update(is_active=False)
    platform_keys_forget()  # other processes notice within the cache's 30 s
    assert post(api, "/api/v1/decisions", world.body()).status_code == 401


def test_keys_guessed_by_the_thousand_do_not_grow_the_process_cache(world, monkeypatch):
    from ads.services import keys

    monkeypatch.setattr(keys, "KNOWN_KEPT", 50)
    platform_keys_forget()
    for number in range(120):
        assert services.platform_key_authenticate(raw_key=f"il_guess{number}") is None
    assert 0 < len(keys._known) <= 50
    _, raw_key = services.platform_key_create(name="real")
    assert services.platform_key_authenticate(raw_key=raw_key) is not None  # still answered


def test_a_key_longer_than_any_platform_key_is_refused_and_not_kept(api, world):
    # The cache holds keys as sent: junk the size of a header must not pin memory.
    from ads.services import keys

    platform_keys_forget()
    junk = "il_" + "x" * 60_000
    response = api.post(
        "/api/v1/decisions",
        data=world.body(),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {junk}",
    )
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Unknown or revoked platform key."
    assert junk not in keys._known
    assert all(len(cached) <= keys.MAX_KEY_LENGTH for cached in keys._known)


def test_a_decision_answers_the_pod_with_tracking_links(api, world):
    line_item = line_item_with_creative(world.acme)
    response = post(api, "/api/v1/decisions", world.body())
    assert response.status_code == 200
    body = response.json()
    assert body["reason"] is None
    assert (body["ad_break_id"], body["max_duration_seconds"], body["duration_seconds"]) == (
        world.ad_break.pk,
        90,
        30,
    )
    (slot,) = body["pod"]
    creative = line_item.creatives.get()
    assert (slot["creative_id"], slot["line_item_id"], slot["advertiser_id"]) == (
        creative.pk,
        line_item.pk,
        world.acme.pk,
    )
    assert slot["media_url"] == creative.media_url
    assert set(slot["tracking"]) == set(AdEvent.Type.values)
    impression_url = slot["tracking"]["impression"]
    assert impression_url.startswith("http://testserver/t/")
    fired = api.get(impression_url.removeprefix("http://testserver"), HTTP_USER_AGENT="Player/1")
    assert fired.status_code == 204
    assert AdEvent.objects.get().decision_id.hex == body["decision_id"]


def test_an_empty_pod_says_why(api, world):
    response = post(api, "/api/v1/decisions", world.body(viewer_id=world.kid.external_id))
    assert response.json()["pod"] == []
    assert response.json()["reason"] == "kids_profile"


def test_explain_tells_a_player_stages_and_rules_but_no_accounts_line_items(api, world):
    """Any player may ask for `explain`: it says how many line items each rule removed, never
    which ones, whose, what they are called or how they scored."""
    mobile_only = line_item_with_creative(world.acme, target_devices=["mobile"])
    rival_mobile_only = line_item_with_creative(world.globex, target_devices=["mobile"])
    chosen = line_item_with_creative(world.initech)
    response = post(api, "/api/v1/decisions", world.body(explain=True))
    body = response.json()
    assert [slot["line_item_id"] for slot in body["pod"]] == [chosen.pk]
    assert body["explain"] == [
        {"stage": "targeting", "rule": "device", "line_items": 2},
        {"stage": "pod", "rule": "chosen", "line_items": 1},
    ]
    text = response.content.decode()
    for line_item in (mobile_only, rival_mobile_only, chosen):
        assert line_item.name not in text
    assert "score" not in text


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"device": "toaster"}, "device", '"toaster" is not a valid choice.'),
        ({"title_id": "seven"}, "title_id", "A valid integer is required."),
        ({"title_id": 999_999}, "title_id", "No title with id 999999."),
        ({"ad_break_id": None}, "ad_break_id", "This field may not be null."),
        ({"pod_size": 0}, "pod_size", "Ensure this value is greater than or equal to 1."),
        ({"region": "mars"}, "region", '"mars" is not a valid choice.'),
        (
            {"engagement_score": 1.5},
            "engagement_score",
            "Ensure this value is less than or equal to 1.0.",
        ),
        ({"engagement_score": "high"}, "engagement_score", "A valid number is required."),
    ],
)
def test_bad_decision_input_is_a_400_naming_the_field(api, world, overrides, field, message):
    response = post(api, "/api/v1/decisions", world.body(**overrides))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"][field] == [message]


def test_a_break_is_required_and_malformed_json_is_named(api, world):
    body = world.body()
    del body["ad_break_id"]
    response = post(api, "/api/v1/decisions", body)
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "ad_break_id": ["Give ad_break_id or offset_seconds."]
    }
    response = api.post("/api/v1/decisions", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_an_event_batch_reports_each_event(api, world):
    line_item_with_creative(world.acme)
    token = (
        post(api, "/api/v1/decisions", world.body())
        .json()["pod"][0]["tracking"]["impression"]
        .split("/t/")[1]
        .split("/")[0]
    )
    batch = {
        "events": [
            {"event_id": "e1", "token": token, "type": "impression"},
            {"event_id": "e2", "token": token, "type": "complete"},
            {"event_id": "e3", "token": token + "x", "type": "click"},
        ]
    }
    response = post(api, "/api/v1/events", batch)
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 2,
        "duplicates": 0,
        "rejected": 1,
        "results": [
            {"event_id": "e1", "status": "accepted", "reason": None},
            {"event_id": "e2", "status": "accepted", "reason": None},
            {"event_id": "e3", "status": "rejected", "reason": "forged"},
        ],
    }
    again = post(api, "/api/v1/events", batch).json()
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 2, 1)
    assert AdEvent.objects.count() == 2


PLAIN_EVENT = {"event_id": "e1", "token": "t", "type": "click"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "events"),
        ({"events": []}, "events"),
        ({"events": [{"event_id": "x", "token": "t"}] * 1001}, "events"),
        ({"events": ["nope"]}, "events[0]"),
        ({"events": [{"event_id": "x", "token": "t"}]}, "events[0].type"),
        ({"events": [{"event_id": "", "token": "t", "type": "click"}]}, "events[0].event_id"),
        (
            {"events": [{"event_id": "x", "token": "t", "type": "click", "occurred_at": "noon"}]},
            "events[0].occurred_at",
        ),
        # After a plain event (the parser's one-test path), each limit of that test.
        ({"events": [PLAIN_EVENT, {**PLAIN_EVENT, "event_id": "x" * 81}]}, "events[1].event_id"),
        ({"events": [PLAIN_EVENT, {**PLAIN_EVENT, "token": "t" * 2001}]}, "events[1].token"),
        ({"events": [PLAIN_EVENT, {**PLAIN_EVENT, "token": ""}]}, "events[1].token"),
        ({"events": [PLAIN_EVENT, {**PLAIN_EVENT, "type": 7}]}, "events[1].type"),
        ({"events": [PLAIN_EVENT, {**PLAIN_EVENT, "event_id": None}]}, "events[1].event_id"),
        (
            {"events": [PLAIN_EVENT, {**PLAIN_EVENT, "occurred_at": "2024-06-01"}]},
            "events[1].occurred_at",
        ),
    ],
)
def test_a_malformed_batch_is_a_400_naming_the_field(api, body, field):
    response = post(api, "/api/v1/events", body)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]
    assert not AdEvent.objects.exists()


def test_events_need_a_platform_key(client):
    assert post(client, "/api/v1/events", {"events": []}).status_code == 401


def test_the_schema_documents_both_endpoints_with_examples(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    decide = schema["paths"]["/api/v1/decisions"]["post"]
    report = schema["paths"]["/api/v1/events"]["post"]
    assert decide["requestBody"]["content"]["application/json"]["examples"]
    assert report["requestBody"]["content"]["application/json"]["examples"]
    assert schema["components"]["securitySchemes"]["platformKey"]["scheme"] == "bearer"


def test_staff_create_a_key_in_admin_and_see_it_once(client):
    staff = User.objects.create_superuser("staff", "staff@example.com", "pw")
    client.force_login(staff)
    response = client.post("/admin/ads/platformkey/add/", {"name": "SSAI"}, follow=True)
    (message,) = [str(m) for m in response.context["messages"] if "il_" in str(m)]
    raw_key = message.split(" is ")[1].split(" ")[0]
    key = PlatformKey.objects.get(name="SSAI")
    assert raw_key.startswith("il_") and key.prefix == raw_key[3:11]
    assert services.platform_key_authenticate(raw_key=raw_key) == key.pk
    assert raw_key not in client.get(f"/admin/ads/platformkey/{key.pk}/change/").content.decode()


def test_decisions_through_the_api_are_timed(api, world):
    line_item_with_creative(world.acme)
    for _ in range(3):
        post(api, "/api/v1/decisions", world.body())
    latency.recorder.flush_now()
    figures = latency.latency_percentiles(minutes=1)
    assert figures["decisions"] == 3
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"region": "intl", "pod_size": 2, "max_duration_seconds": 60, "explain": True},
        {"offset_seconds": 600, "ad_break_id": 5},
    ],
)
def test_the_plain_form_is_read_as_the_serializer_reads_it(world, overrides):
    body = world.body(**overrides)
    form = DecisionInput(data=body)
    assert form.is_valid(), form.errors
    assert parse_decision_request(body) == services.DecisionRequest(**form.validated_data)


@pytest.mark.parametrize(
    "overrides",
    [
        {"title_id": "7"},
        {"viewer_id": " padded "},
        {"ad_break_id": None},
        {"pod_size": 11},
        {"explain": "true"},
        {"device": "toaster"},
        {"title_id": True},
        {"device": ["ctv"]},
        {"region": {"us": "west"}},
        {"viewer_id": "nul\x00"},
    ],
)
def test_anything_but_the_plain_form_is_left_to_the_serializer(world, overrides):
    assert parse_decision_request(world.body(**overrides)) is None
    assert parse_decision_request(["not", "an", "object"]) is None


def test_numbers_sent_as_strings_still_get_a_decision(api, world):
    line_item_with_creative(world.acme)
    body = world.body(title_id=str(world.title.pk), ad_break_id=str(world.ad_break.pk))
    response = post(api, "/api/v1/decisions", body)
    assert response.status_code == 200
    assert len(response.json()["pod"]) == 1


def _wsgi_post(application, path, body, key):
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
        "HTTP_AUTHORIZATION": f"Bearer {key}",
    }
    started = []
    # As Django's test client does: a request's end must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        chunks = application(environ, lambda status, headers, exc_info=None: started.append(status))
        try:
            return started[0], json.loads(b"".join(chunks))
        finally:
            chunks.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_the_api_process_serves_decisions_through_its_lean_stack(world):
    """config/api_wsgi.py: the integration API's paths skip the session, auth, messages and
    htmx middleware, whose per-request objects were cyclic garbage for the collector."""
    line_item_with_creative(world.acme)
    _, key = services.platform_key_create(name="SSAI")
    application = routed(WSGIHandler(), APIHandler())
    status, body = _wsgi_post(application, "/api/v1/decisions", world.body(), key)
    assert status.startswith("200")
    assert len(body["pod"]) == 1
    status, body = _wsgi_post(application, "/api/v1/decisions", world.body(pod_size=0), key)
    assert status.startswith("400")
    assert list(body["error"]["fields"]) == ["pod_size"]
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            _wsgi_post(application, "/api/v1/decisions", world.body(), key)
        assert gc.collect() == 0
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"device": ["ctv"]}, "device"), ({"region": {"us": "west"}}, "region")],
)
def test_odd_json_types_are_a_400_not_a_500(api, world, overrides, field):
    response = post(api, "/api/v1/decisions", world.body(**overrides))
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


@pytest.mark.parametrize("path", ["/api/v1/decisions", "/api/v1/events"])
def test_a_body_over_the_limit_is_a_413_in_the_envelope(api, path):
    body = json.dumps({"events": [{"event_id": "e" * 40, "token": "t" * 200}] * 12_000})
    assert len(body) > 2.5 * 2**20  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE
    response = post(api, path, body)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "too_large"
    assert AdEvent.objects.count() == 0
