"""config/api_wsgi.HotPath: the api process's lean path for decisions and event batches answers
exactly as Django's stack does (status, headers, body), and hands Django every request it is
not sure of."""

import io
import json
import re
import time

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connections

from ads import api, services
from config.api_wsgi import APIHandler, HotPath
from tests.ads.conftest import line_item_with_creative

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_exploration")]


class Counted:
    """Django's API stack, counting the requests the lean path handed over."""

    def __init__(self) -> None:
        self.django = APIHandler()
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.django(environ, start_response)


@pytest.fixture
def apps():
    # As Django's test client does: a request's end must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    django = Counted()
    yield APIHandler(), HotPath(django, api), django
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def call(application, path, body, *, key=None, content_type="application/json", **extra):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
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
        "CONTENT_TYPE": content_type,
        "HTTP_USER_AGENT": "InterludePlayer/1.0",
    } | extra
    if key:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    started = []
    chunks = application(environ, lambda status, headers, exc_info=None: started.append(headers))
    try:
        content = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    status = started and started[0]
    return sorted(status), content


def same_answer(apps, path, body, **options):
    """Django's answer and the lean path's; returns whether the lean path answered itself."""
    django, hot, counted = apps
    before = counted.calls
    expected_headers, expected = call(django, path, body, **options)
    headers, content = call(hot, path, body, **options)
    # A decision's id and tokens are new each time.
    assert _stable(content) == _stable(expected)
    assert headers == expected_headers
    return counted.calls == before


def _stable(content: bytes) -> bytes:
    content = re.sub(rb'"decision_id":"\w+"', b'"decision_id":"-"', content)
    return re.sub(rb"/t/[\w-]+/", b"/t/-/", content)


@pytest.fixture
def key(world):
    line_item_with_creative(world.acme)
    return services.platform_key_create(name="SSAI")[1]


def test_plain_decisions_are_answered_by_the_lean_path_as_django_answers(apps, world, key):
    assert same_answer(apps, "/api/v1/decisions", world.body(), key=key)
    assert same_answer(apps, "/api/v1/decisions", world.body(explain=True), key=key)
    # The engine's own refusals (a break of another title) are the lean path's too.
    assert same_answer(apps, "/api/v1/decisions", world.body(ad_break_id=10**6), key=key)
    assert same_answer(
        apps, "/api/v1/decisions", world.body(), key=key, content_type="application/JSON"
    )


@pytest.mark.parametrize(
    ("body", "options"),
    [
        ({"pod_size": 0}, {}),  # out of range: the serializer words it
        ({"title_id": "7"}, {}),  # a string for a number: the serializer converts it
        ({"device": "toaster"}, {}),
        (b"{not json", {}),
        (b'{"viewer_id": NaN}', {}),  # json reads NaN, orjson does not
        ({}, {"key": "il_not-a-key"}),
        ({}, {"key": None}),
        ({}, {"content_type": "text/plain"}),
        ({}, {"HTTP_HOST": "evil.example"}),  # not an allowed host
        ({}, {"REQUEST_METHOD": "PUT"}),
    ],
)
def test_anything_else_is_handed_to_django(apps, world, key, body, options):
    options = {"key": key} | options
    if isinstance(body, dict):
        body = world.body(**body)
    assert not same_answer(apps, "/api/v1/decisions", body, **options)


def test_event_batches_are_answered_by_the_lean_path_as_django_answers(apps, world, key):
    django, hot, _ = apps
    tokens = []
    for _ in range(2):
        _, content = call(django, "/api/v1/decisions", world.body(), key=key)
        tokens.append(json.loads(content)["pod"][0]["tracking"]["impression"].split("/")[-2])
    answers = []
    for application, token in zip((django, hot), tokens, strict=True):
        batch = {
            "events": [
                {"event_id": "e1", "token": token, "type": "impression"},
                {"event_id": "e1", "token": token, "type": "impression"},
                {"event_id": "e2\u2028", "token": token + "x", "type": "click"},
            ]
        }
        answers.append(call(application, "/api/v1/events", batch, key=key))
    assert answers[0] == answers[1]
    assert b'"e2\\u2028"' in answers[1][1]
    assert json.loads(answers[1][1])["accepted"] == 1


def test_a_malformed_batch_is_handed_to_django(apps, world, key):
    batch = {"events": [{"event_id": "e1", "type": "impression"}]}
    assert not same_answer(apps, "/api/v1/events", batch, key=key)


@pytest.mark.django_db(transaction=True)
def test_the_lean_path_closes_connections_as_the_request_signals_would(world, key):
    """With only Django's own receivers on the request signals, the lean path does their work
    itself: a connection past its age is closed when the decision ends, and a receiver of
    anyone else's makes it send the signals again."""
    from config import api_wsgi

    assert api_wsgi._lean_signals()
    hot = HotPath(Counted(), api)
    connection = connections["default"]
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1  # outlived DATABASE_CONN_MAX_AGE
    status, content = call(hot, "/api/v1/decisions", world.body(), key=key)
    assert json.loads(content)["pod"]
    # SQLite's in-memory test database is never closed (Django keeps it: closing loses it).
    if not (connection.vendor == "sqlite" and connection.is_in_memory_db()):
        assert connection.connection is None

    heard = []

    def listener(**kwargs):
        heard.append(kwargs.get("signal"))

    request_finished.connect(listener)
    try:
        assert not api_wsgi._lean_signals()
        call(HotPath(Counted(), api), "/api/v1/decisions", world.body(), key=key)
        assert heard == [request_finished]
    finally:
        request_finished.disconnect(listener)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("left", ["healthy", "autocommit_off", "broken"])
def test_the_lean_path_closes_a_connection_left_unusable(world, key, left, monkeypatch):
    """As close_old_connections would: a connection left out of autocommit, or one whose
    errors left it unusable, is closed around the decision; a healthy one is kept, to be
    checked at its next query (CONN_HEALTH_CHECKS)."""
    hot = HotPath(Counted(), api)
    call(hot, "/api/v1/decisions", world.body(), key=key)  # the key known: no query next
    connection = connections["default"]
    connection.ensure_connection()
    close_at = connection.close_at
    connection.close_at = time.monotonic() + 60  # young enough (DATABASE_CONN_MAX_AGE)
    connection.health_check_done = True  # as after a query: the request must ask again
    closed = []
    close = connection.close
    # A spy, so that the close is seen on SQLite's in-memory database too, whose close() Django
    # turns into nothing (closing would lose it).
    monkeypatch.setattr(connection, "close", lambda: closed.append(True) or close())
    if left == "autocommit_off":
        connection.set_autocommit(False)
    elif left == "broken":
        connection.errors_occurred = True
        monkeypatch.setattr(connection, "is_usable", lambda: False)
    try:
        _, content = call(hot, "/api/v1/decisions", world.body(), key=key)
        assert json.loads(content)["pod"]
        if left == "healthy":
            assert closed == []
            assert connection.connection is not None
            assert connection.health_check_done is False
        else:
            assert closed  # when the request starts (and on SQLite, still so, when it ends)
            if not (connection.vendor == "sqlite" and connection.is_in_memory_db()):
                assert connection.connection is None
    finally:
        if connection.connection is not None and not connection.get_autocommit():
            connection.rollback()  # a broken path may have left it in a transaction
            connection.set_autocommit(True)
        connection.close_at = close_at


def test_a_server_process_collects_young_objects_less_often(monkeypatch):
    """server_start raises the collector's first threshold (a batch of events keeps ~10,000
    container objects alive while it is processed) and keeps the older generations' ones."""
    import gc

    from ads.decisioning import refresher

    monkeypatch.setattr(refresher, "warm_up", lambda: None)
    monkeypatch.setattr(refresher, "start_refresher", lambda: None)
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        refresher.server_start()
        assert gc.get_threshold() == (refresher.SERVER_GC_THRESHOLD, 10, 10)
    finally:
        gc.set_threshold(*before)
    assert refresher.SERVER_GC_THRESHOLD >= 20_000  # above two batches in flight
