"""Servers without thread hand-offs for bench/servers.py (not for production): N forked worker
processes on one listening socket, each running the WSGI application on its only request
thread, beside the decision refresher that config.wsgi starts.

    python bench/_prefork.py bjoern|plain PORT WORKERS [module:application]

`bjoern`: bjoern's C server (libev; the bjoern-binary wheel bundles libev), when installed.
`plain`: an epoll loop in Python with httptools parsing the requests, keep-alive, the answer
written in one send. Both read a whole body whatever its Content-Length (no limit) and stop at
SIGTERM without finishing the requests in flight: enough for a bench, not for players."""

from __future__ import annotations

import importlib
import io
import os
import select
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

HOST = "127.0.0.1"


def _application(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


class _Connection:
    """httptools' callbacks for one connection: each complete request is queued in `done`."""

    __slots__ = ("sock", "parser", "url", "headers", "body", "done")

    def __init__(self, sock: socket.socket) -> None:
        import httptools

        self.sock = sock
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.done: list[tuple[bytes, list[tuple[bytes, bytes]], bytes, bytes, bool]] = []

    def on_message_begin(self) -> None:
        self.headers, self.body = [], []

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done.append(
            (
                self.url,
                self.headers,
                b"".join(self.body),
                self.parser.get_method(),
                self.parser.should_keep_alive(),
            )
        )


def _environ(base: dict[str, Any], request: tuple) -> dict[str, Any]:
    url, headers, body, method, _ = request
    path, _, query = url.partition(b"?")
    environ = dict(base)
    environ["REQUEST_METHOD"] = method.decode()
    environ["PATH_INFO"] = path.decode("latin-1")
    environ["QUERY_STRING"] = query.decode("latin-1")
    for name, value in headers:
        key = name.decode("latin-1").upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = value.decode("latin-1")
    environ["wsgi.input"] = io.BytesIO(body)
    return environ


def _answer(app: Callable[..., Any], environ: dict[str, Any], keep_alive: bool) -> bytes:
    started: list[Any] = []

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        started[:] = [status, headers]

    result = app(environ, start_response)
    try:
        payload = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    head = [f"HTTP/1.1 {started[0]}"] + [f"{name}: {value}" for name, value in started[1]]
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload


def serve_plain(listener: socket.socket, app: Callable[..., Any], port: int) -> None:
    import httptools

    base = {
        "SERVER_NAME": HOST, "SERVER_PORT": str(port), "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": HOST, "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0), "wsgi.errors": sys.stderr, "wsgi.multithread": False,
        "wsgi.multiprocess": True, "wsgi.run_once": False,
    }  # fmt: skip
    poll = select.epoll()
    poll.register(listener.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
    connections: dict[int, _Connection] = {}

    def drop(fd: int) -> None:
        poll.unregister(fd)
        connections.pop(fd).sock.close()

    while True:
        for fd, _ in poll.poll():
            if fd == listener.fileno():
                try:
                    sock, _ = listener.accept()
                except BlockingIOError:  # another worker took it
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                connections[sock.fileno()] = _Connection(sock)
                poll.register(sock.fileno(), select.EPOLLIN)
                continue
            connection = connections[fd]
            try:
                data = connection.sock.recv(65536)
                if data:
                    connection.parser.feed_data(data)
            except (OSError, httptools.HttpParserError):
                data = b""
            if not data:
                drop(fd)
                continue
            keep_alive = True
            for request in connection.done:
                keep_alive = request[4]
                connection.sock.sendall(_answer(app, _environ(base, request), keep_alive))
            connection.done.clear()
            if not keep_alive:
                drop(fd)


def main(kind: str, port: int, workers: int, spec: str) -> None:
    os.environ.setdefault("DATABASE_CONN_MAX_AGE", "60")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(2048)
    listener.setblocking(False)
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
            app = _application(spec)  # in the worker: its refresher thread runs here
            if kind == "bjoern":
                import bjoern

                bjoern.server_run(listener, app)
            else:
                serve_plain(listener, app, port)
            os._exit(0)
        children.append(pid)

    def stop(*_: object) -> None:
        for child in children:
            os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    for child in children:
        os.waitpid(child, 0)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(
        arguments[0],
        int(arguments[1]),
        int(arguments[2]),
        arguments[3] if len(arguments) > 3 else "config.wsgi:application",
    )
