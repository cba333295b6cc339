"""The web process (config.asgi, uvicorn) answers the integration API's paths as the api process
(config.wsgi) does: the same requests give the same status, headers and body, through
the api process's WSGI application run in one thread hop (config/api_asgi.APIPaths), not
through Django's ASGI handler and its full middleware stack; everything else still goes to
Django."""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import re
from urllib.parse import urlencode

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connections

import ads.services
from ads import api, services
from ads.models import AdEvent, Membership
from ads.services.players import players_forget
from ads.vast import answers
from ads.vast.limits import limiter
from config.api_asgi import APIPaths
from config.api_wsgi import APIHandler, HotPath
from config.wsgi_server import called
from tests.ads.conftest import line_item_with_creative, tag
from tests.factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_exploration")]

AGENT = "SmartTV VASTPlayer/2.0"


@pytest.fixture(scope="module")
def entry_points():
    """config.asgi and config.wsgi as the servers import them, without the index's refresher
    thread that server_start() would start in the test process."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ads.services, "server_start", lambda: None)
        return importlib.import_module("config.asgi"), importlib.import_module("config.wsgi")


class Counted:
    """A WSGI application, counting its calls."""

    def __init__(self, application) -> None:
        self.application = application
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.application(environ, start_response)


@pytest.fixture
def servers(entry_points, monkeypatch):
    """(the web process's ASGI application, the api process's WSGI one, the WSGI application
    the web process runs for the API's paths, counted)."""
    asgi, wsgi = entry_points
    paths = asgi.api_paths
    counted = Counted(paths.api)
    monkeypatch.setattr(paths, "api", counted)

    # In the test's thread, whose transaction holds the world, rather than the pool's.
    async def in_the_tests_thread(function, environ):
        return await sync_to_async(function, thread_sensitive=True)(environ)

    monkeypatch.setattr(paths, "run", in_the_tests_thread)
    # As Django's test client does: a request's end must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield asgi.application, wsgi.application, counted
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def asgi_call(application, method, path, *, query="", body=b"", headers=(), receive_log=None):
    """(status, sorted headers, body) of `application`'s answer over ASGI, as uvicorn calls it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")]
        + ([(b"content-length", str(len(body)).encode())] if body else [])
        + [(name.lower().encode(), value.encode()) for name, value in headers],
        "client": ("198.51.100.7", 50000),
        "server": ("testserver", 80),
    }
    messages = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.request", "body": body[10:], "more_body": False},
    ]
    sent = []

    async def receive():
        if receive_log is not None:
            receive_log.append(True)
        if messages:
            return messages.pop(0)
        await asyncio.sleep(60)  # the client stays connected

    async def send(message):
        sent.append(message)

    async_to_sync(application)(scope, receive, send)
    start = sent[0]
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return (
        start["status"],
        sorted(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in start["headers"]
        ),
        content,
    )


def wsgi_call(application, method, path, *, query="", body=b"", headers=()):
    """The same, over WSGI, as the api's server calls it."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "198.51.100.7",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers:
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    status, headers, content = called(application, environ)
    return int(status[:3]), sorted(headers), content


def _stable(content: bytes) -> bytes:
    """A decision's id and tokens, and a page's CSRF token, are new each time."""
    content = re.sub(rb'"X-CSRFToken": "\w+"', b'"X-CSRFToken": "-"', content)
    content = re.sub(rb'"decision_id":"\w+"', b'"decision_id":"-"', content)
    content = re.sub(rb"<AdServingId>\w+</AdServingId>", b"<AdServingId>-</AdServingId>", content)
    return re.sub(rb"/t/[\w-]+/", b"/t/-/", content)


def same_answer(servers, method, path, **request):
    """The api process's answer and the web process's to the same request (the ad tags'
    limiter and player cache fresh for each); asserts they are the same and that the web
    process answered through the api process's application. Returns the answer."""
    asgi, wsgi, counted = servers
    limiter.reset()
    players_forget()
    expected = wsgi_call(wsgi, method, path, **request)
    limiter.reset()
    players_forget()
    before = counted.calls
    answer = asgi_call(asgi, method, path, **request)
    assert counted.calls == before + 1
    assert answer[:2] == expected[:2]
    assert _stable(answer[2]) == _stable(expected[2])
    return answer


def posted(body, key=None, content_type="application/json") -> dict:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = [("Content-Type", content_type), ("User-Agent", "InterludePlayer/1.0")]
    if key:
        headers.append(("Authorization", f"Bearer {key}"))
    return {"body": payload, "headers": headers}


@pytest.fixture
def key(world):
    line_item_with_creative(world.acme)
    return services.platform_key_create(name="SSAI")[1]


def tokens(servers, world, key, count):
    """Impression tokens of `count` decisions (asked of the api process)."""
    found = []
    for _ in range(count):
        _, _, content = wsgi_call(
            servers[1], "POST", "/api/v1/decisions", **posted(world.body(), key)
        )
        found.append(json.loads(content)["pod"][0]["tracking"]["impression"].split("/")[-2])
    return found


def test_a_decision_is_answered_as_the_api_process_answers_it(servers, world, key):
    status, headers, content = same_answer(
        servers, "POST", "/api/v1/decisions", **posted(world.body(), key)
    )
    assert status == 200
    assert len(json.loads(content)["pod"]) == 1
    names = dict(headers)
    assert names["Content-Type"] == "application/json"
    assert names["Content-Length"] == str(len(content))
    assert names["X-Frame-Options"] == "DENY"  # the API stack's middleware, as on the api
    status, _, content = same_answer(
        servers, "POST", "/api/v1/decisions", **posted(world.body(explain=True), key)
    )
    assert status == 200
    assert json.loads(content)["explain"]


@pytest.mark.parametrize(
    ("request_of", "status", "code"),
    [
        (lambda world, key: posted(world.body(pod_size=0), key), 400, "invalid"),
        (lambda world, key: posted(world.body(ad_break_id=10**6), key), 400, "invalid"),
        (lambda world, key: posted(b"{not json", key), 400, "parse_error"),
        (lambda world, key: posted(world.body(), key, "text/plain"), 415, None),
        (lambda world, key: posted(world.body()), 401, "not_authenticated"),
        (lambda world, key: posted(world.body(), "il_not-a-key"), 401, None),
    ],
    ids=["out-of-range", "another-titles-break", "not-json", "not-json-type", "no-key", "bad-key"],
)
def test_a_refused_decision_is_refused_as_the_api_process_refuses_it(
    servers, world, key, request_of, status, code
):
    answer = same_answer(servers, "POST", "/api/v1/decisions", **request_of(world, key))
    assert answer[0] == status
    assert dict(answer[1])["Content-Type"] == "application/json"
    error = json.loads(answer[2])["error"]
    assert error["message"]
    if code:
        assert error["code"] == code


def test_a_body_over_the_limit_is_refused_unread_as_the_api_process_refuses_it(
    servers, world, key, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000
    batch = {"events": [{"event_id": f"e{n}", "token": "t" * 100} for n in range(40)]}
    request = posted(batch, key)
    assert len(request["body"]) > 2_000
    for path in ("/api/v1/events", "/api/v1/decisions"):
        status, _, content = same_answer(servers, "POST", path, **request)
        assert status == 413
        assert json.loads(content)["error"]["code"] == "too_large"
        received = []
        asgi_call(servers[0], "POST", path, **request, receive_log=received)
        assert received == []  # the body never read, as the api process never reads it
    assert AdEvent.objects.count() == 0


def test_an_event_batch_is_answered_as_the_api_process_answers_it(servers, world, key):
    asgi, wsgi, _ = servers
    batches = [
        {
            "events": [
                {"event_id": "e1", "token": token, "type": "impression"},
                {"event_id": "e1", "token": token, "type": "impression"},
                {"event_id": "e2", "token": token + "x", "type": "click"},
            ]
        }
        for token in tokens(servers, world, key, 2)
    ]
    expected = wsgi_call(wsgi, "POST", "/api/v1/events", **posted(batches[0], key))
    answer = asgi_call(asgi, "POST", "/api/v1/events", **posted(batches[1], key))
    assert answer == expected
    assert answer[0] == 200
    assert json.loads(answer[2])["accepted"] == 1
    assert AdEvent.objects.count() == 2
    # A malformed batch: the view's own words, on both.
    status, _, content = same_answer(
        servers, "POST", "/api/v1/events", **posted({"events": [{"event_id": "e1"}]}, key)
    )
    assert status == 400
    assert json.loads(content)["error"]["code"] == "invalid"


def test_a_tracking_link_is_answered_as_the_api_process_answers_it(servers, world, key):
    asgi, wsgi, _ = servers
    first, second = tokens(servers, world, key, 2)
    headers = [("User-Agent", "InterludePlayer/1.0")]
    counted = wsgi_call(wsgi, "GET", f"/t/{first}/impression", headers=headers)
    answered = asgi_call(asgi, "GET", f"/t/{second}/impression", headers=headers)
    assert answered == counted
    assert answered[0] == 204
    assert AdEvent.objects.count() == 2
    status, _, content = same_answer(
        servers, "GET", f"/t/{first}x/impression", headers=headers
    )  # forged
    assert status == 400
    assert json.loads(content)["error"]["code"] == "forged"


def test_the_ad_tags_are_answered_as_the_api_process_answers_them(
    servers, world, player, pod_of_two
):
    headers = [("User-Agent", AGENT)]
    status, names, content = same_answer(
        servers, "GET", "/vast/4.2", query=urlencode(tag(world)), headers=headers
    )
    assert status == 200
    assert content.count(b"<Ad ") == 2
    assert dict(names)["Content-Type"] == "application/xml; charset=utf-8"
    status, _, content = same_answer(
        servers,
        "GET",
        "/vmap/1.0",
        query=urlencode(tag(world)),
        headers=headers,
    )
    assert status == 200
    # An unknown player: the tag's own refusal, on both.
    status, _, content = same_answer(
        servers, "GET", "/vast/4.2", query=urlencode(tag(world, player="nobody")), headers=headers
    )
    assert b"<Error>" in content


def test_a_refused_agent_is_refused_as_the_api_process_refuses_it(
    servers, entry_points, world, player, pod_of_two, settings, monkeypatch
):
    asgi, wsgi, counted = servers
    settings.DISALLOWED_USER_AGENTS = [re.compile("BadAgent")]
    # The lean path works a host's origin out once; with refused agents, Django answers every
    # tag. Settings do not change in a server: here, forget what earlier tests saw.
    for hot in (counted.application, entry_points[1].api_application):
        monkeypatch.setattr(hot, "_origins", {})
    status, _, _ = same_answer(
        servers,
        "GET",
        "/vast/4.2",
        query=urlencode(tag(world)),
        headers=[("User-Agent", "BadAgent/1")],
    )
    assert status == 403


def test_an_outsiders_key_and_other_paths_still_go_through_django(servers, world, key):
    """An account key reads its own account only (another's campaign is a 404), through
    Django's ASGI handler and full stack, as before; on the decisions path it is refused as the
    api process refuses it. Pages and the schema go through Django too."""
    asgi, wsgi, counted = servers
    owner = UserFactory()
    MembershipFactory(advertiser=world.acme, user=owner, role=Membership.Role.OWNER)
    _, account_key = services.account_key_create(
        advertiser=world.acme, created_by=owner, name="Warehouse", scope="read"
    )
    rival = line_item_with_creative(world.globex).campaign
    mine = line_item_with_creative(world.acme).campaign
    bearer = [("Authorization", f"Bearer {account_key}")]
    before = counted.calls
    status, names, content = asgi_call(asgi, "GET", f"/api/v1/campaigns/{rival.pk}", headers=bearer)
    assert status == 404
    assert json.loads(content)["error"]["message"] == "No such campaign in this account."
    status, _, content = asgi_call(asgi, "GET", f"/api/v1/campaigns/{mine.pk}", headers=bearer)
    assert (status, json.loads(content)["id"]) == (200, mine.pk)
    status, names, content = asgi_call(asgi, "GET", "/login/")
    assert status == 200
    assert b"<form" in content
    assert "Content-Security-Policy" in dict(names)  # the full stack's
    status, _, content = asgi_call(asgi, "GET", "/api/schema/")
    assert status == 200
    assert b"/api/v1/decisions" in content
    assert counted.calls == before
    status, _, content = same_answer(
        servers, "POST", "/api/v1/decisions", **posted(world.body(), account_key)
    )
    assert status == 401


def test_a_client_gone_before_its_body_is_not_answered(servers, world, key):
    asgi, _, counted = servers
    scope = {
        "type": "http", "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/v1/decisions", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                    (b"content-length", b"100")],
        "client": ("198.51.100.7", 50000), "server": ("testserver", 80),
    }  # fmt: skip
    sent = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async_to_sync(asgi)(scope, receive, send)
    assert sent == []
    assert counted.calls == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("max_age", [0, 60])
def test_the_pools_threads_keep_and_close_connections_as_the_api_processs_threads(
    world, key, max_age, monkeypatch
):
    """The API's requests run in the pool's threads, which live as long as the worker; their
    database connections are kept for API_PATHS_CONN_MAX_AGE, whatever the web process's
    DATABASE_CONN_MAX_AGE (0), and closed after it by the request signals' work, as in the api
    process's threads."""
    monkeypatch.setitem(connections["default"].settings_dict, "CONN_MAX_AGE", 0)  # the web's
    paths = APIPaths(None, HotPath(APIHandler(), api, answers), threads=1, conn_max_age=max_age)
    closed = []

    def spied():
        connection = connections["default"]
        close = connection.close
        # Seen on SQLite's in-memory database too, whose close() Django turns into nothing.
        connection.close = lambda: closed.append(True) or close()
        return connection

    pool_connection = paths.executor.submit(spied).result()
    try:
        kept = []
        for token in tokens_through(paths, world, key, 2):
            batch = {"events": [{"event_id": token[:20], "token": token, "type": "impression"}]}
            status, _, content = asgi_call(paths, "POST", "/api/v1/events", **posted(batch, key))
            assert (status, json.loads(content)["accepted"]) == (200, 1)
            kept.append(pool_connection.connection)
        if max_age == 0:
            assert len(closed) >= 2  # at each request's end
        else:
            assert closed == []
            assert kept[0] is not None and kept[1] is kept[0]  # the same connection, reused
    finally:
        paths.executor.submit(connections.close_all).result()
        paths.executor.shutdown()


def tokens_through(application, world, key, count):
    found = []
    for _ in range(count):
        _, _, content = asgi_call(
            application, "POST", "/api/v1/decisions", **posted(world.body(), key)
        )
        found.append(json.loads(content)["pod"][0]["tracking"]["impression"].split("/")[-2])
    return found
