"""Static files under ASGI (uvicorn) and WSGI (the api process): WhiteNoise through
config.static.StaticFilesMiddleware, with no "must consume synchronous iterators" warning."""

import asyncio
import warnings
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

# The ASGI handler's request signals may touch the connection (the file is still asserted).
pytestmark = pytest.mark.django_db

APP_CSS = Path(settings.BASE_DIR) / "static" / "css" / "app.css"


async def _asgi_get(path: str, headers: list[tuple[bytes, bytes]] = ()) -> tuple[int, dict, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    requested = False
    sent = []

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(60)  # the client stays connected

    async def send(message):
        sent.append(message)

    await ASGIHandler()(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


def asgi_get(path: str, headers=()) -> tuple[int, dict, bytes]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning fails the test
        return async_to_sync(_asgi_get)(path, list(headers))


def test_asgi_serves_a_static_file_whole_without_a_warning():
    status, headers, body = asgi_get("/static/css/app.css")

    assert status == 200
    assert body == APP_CSS.read_bytes()
    assert headers["content-type"].startswith("text/css")
    assert int(headers["content-length"]) == len(body)


def test_asgi_answers_304_to_a_matching_etag():
    _, headers, _ = asgi_get("/static/css/app.css")

    status, _, body = asgi_get(
        "/static/css/app.css", [(b"if-none-match", headers["etag"].encode())]
    )

    assert status == 304
    assert body == b""


def test_wsgi_still_serves_it(client):
    response = client.get("/static/css/app.css")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == APP_CSS.read_bytes()


def test_a_test_with_its_own_static_folder_sees_the_files_it_adds(settings, tmp_path):
    """tests/conftest.py keeps WhiteNoise's listing of the project's static files for the run;
    a test that overrides the static settings gets its own, made afresh for each client."""
    from django.test import Client

    settings.STATICFILES_DIRS = [tmp_path]
    (tmp_path / "first.css").write_text("a {}")
    assert Client().get("/static/first.css").status_code == 200
    (tmp_path / "second.css").write_text("b {}")
    response = Client().get("/static/second.css")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"b {}"
