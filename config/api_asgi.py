"""The integration API's paths under ASGI (the `web` process): the api process's WSGI
application (config/api_wsgi.py: HotPath in front of the lean API stack) run in one thread hop.

Players are told to call the `api` process, but one configured with the site's address reaches
`web`, where Django's ASGI handler runs each sync middleware and the view through a thread hop
of its own, in a thread made for the request, over the full middleware stack: ~3 ms of CPU a
decision, ten times the api process's. Here the same paths (API_PATHS: decisions, event
batches, tracking links, the ad tags) read the body, build the WSGI environ a WSGI server would,
and call that same application once in a small pool of threads that live as long as the
worker; so the answers (status, headers, body, errors and refusals) are the api process's, byte
for byte, and the database connections of those threads are kept, checked and closed by the
request signals' work as in the api process's threads: each thread its own connection, kept
API_PATHS_CONN_MAX_AGE seconds (60, as the api process keeps its own), not the web process's
DATABASE_CONN_MAX_AGE (0: Django's ASGI handler runs each request's sync code in a thread made
for it, whose connection could never be reused). Everything else, and every WebSocket, goes to
Django and Channels unchanged.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import connections

from config.api_wsgi import API_PATHS, WSGIApp
from config.wsgi_server import called

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class APIPaths:
    """An ASGI application that answers API_PATHS' HTTP requests with the WSGI application
    `api` (config.wsgi's, in `threads` threads of its own) and hands everything else to
    `django`."""

    def __init__(
        self, django: ASGIApp, api: WSGIApp, *, threads: int = 2, conn_max_age: int | None = 60
    ) -> None:
        self.django = django
        self.api = api
        # Threads start at the first requests (after uvicorn's fork or spawn), then live as long
        # as the worker, as the api process's do, and so can keep their connections.
        self.executor = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix="api-paths",
            initializer=_keep_connections,
            initargs=(conn_max_age,),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _path_info(scope).startswith(API_PATHS):
            await self.django(scope, receive, send)
            return
        environ = await _environ(scope, receive)
        if environ is None:  # the client left before its body arrived: no one to answer
            return
        status, headers, content = await self.run(self.answer, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def run(self, function: Callable[[dict[str, Any]], Answer], environ: dict) -> Answer:
        """`function(environ)` in one of the pool's threads (the one thread hop)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, environ)

    def answer(self, environ: dict[str, Any]) -> Answer:
        """The WSGI application's answer to `environ`, as a WSGI server takes it: its body
        iterated and closed in this thread (Django sends request_finished on close, whose
        receivers close this thread's obsolete database connections)."""
        status, headers, content = called(self.api, environ)
        return (
            int(status[:3]),
            [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers],
            content,
        )


def _keep_connections(max_age: int | None) -> None:
    """This thread's database connections kept `max_age` seconds between requests (None:
    without end, 0: closed at each request's end) rather than DATABASE_CONN_MAX_AGE's, 0 in the
    web process because Django's ASGI handler runs each request's sync code in a thread made
    for it, whose connections could never be reused. Django keeps a connection object per
    thread and alias: this thread's get a settings dict of their own."""
    for alias in connections:
        connection = connections[alias]
        connection.settings_dict = {**connection.settings_dict, "CONN_MAX_AGE": max_age}


def _path_info(scope: Scope) -> str:
    """The path below the mount point, as Django's ASGIRequest takes it."""
    path: str = scope["path"]
    root = settings.FORCE_SCRIPT_NAME or scope.get("root_path", "")
    return path.removeprefix(root) if root else path


async def _environ(scope: Scope, receive: Receive) -> dict[str, Any] | None:
    """The WSGI environ of this request (PEP 3333: strings carry the bytes as Latin-1), its
    headers taken as Django's ASGIRequest takes them (a name with an underscore dropped, repeated
    ones joined with commas); None when the client disconnects first.

    The body is read when its Content-Length is within DATA_UPLOAD_MAX_MEMORY_SIZE; over it,
    or without a length, it is not read at all: the WSGI path never reads such a body either
    (Django refuses one over the limit, a 413 in the API's envelope, before reading a byte, and
    reads nothing without a length), so the answers are the same and no more than the limit is
    ever held."""
    root = settings.FORCE_SCRIPT_NAME or scope.get("root_path", "")
    server = scope.get("server") or ("unknown", "0")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"].upper(),
        "SCRIPT_NAME": root.encode().decode("latin-1"),
        "PATH_INFO": _path_info(scope).encode().decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_HOST"] = client[0]
        environ["REMOTE_PORT"] = client[1]
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        if "_" in name:
            continue
        if name == "content-length":
            key = "CONTENT_LENGTH"
        elif name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    length = environ.get("CONTENT_LENGTH", "")
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    wanted = int(length) if length.isdigit() else 0
    body = b""
    if wanted and (limit is None or wanted <= limit):
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
    environ["wsgi.input"] = io.BytesIO(body)
    return environ
