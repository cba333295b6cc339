"""The `api` process's HTTP server (config/api_server.py): pre-forked workers, each with an
epoll loop thread that parses requests with httptools (llhttp, C) and runs the decisions and
ad tags itself, the rest of the application on a small thread pool.

Why not a thread-pool server (granian, which served the `api` process until session 13):
every request there crosses from the server's I/O thread to a request thread and back, and a
request thread wakes to a CPU whose caches the other threads have filled; that costs about as
much as the server's own work (bench/servers.py, bench/decisions.py: README, #14). A decision
waits on Redis for one round trip (~0.1 ms), short enough to wait for on the loop, and on
PostgreSQL only now and then (a platform key not yet cached, a key's last use recorded every
ten minutes); meanwhile the other workers' loops take the new connections. A second loop a
worker (`loops`) would take them too, but the two would contend for the GIL at each Redis
round trip: 5-13 % more CPU a decision (session 14, in turns, README). Event
batches (a PostgreSQL transaction each), tracking links (an insert each) and everything else
(reports, campaign management, the schema) may wait on the database for milliseconds, so they
go to the pool: `inline(path)` says which stay on the loop.

Per connection: keep-alive and pipelining (answers in order; the next request of a connection
waits while its previous one is in the pool), `Expect: 100-continue` (after the answers before
it), chunked request bodies (trailer fields dropped). Limits, each answered with a JSON body
and the connection closed: a head over `max_head_bytes` (431), a body over `max_body_bytes`
(413), a request not complete within `request_seconds` (408), bytes that are not HTTP or a
target that cannot be read, an HTTP/1.1 request without a Host, an Upgrade with a body (400: no
protocol is switched here; an Upgrade without one is answered, then the connection closed).
Idle keep-alive connections close after `keepalive_seconds`; an answer the client does not read
within `request_seconds` is dropped. A connection the server ends is closed for writing first,
and what its client still sends is read and dropped until the client closes too
(`linger_seconds` at most), so no reset overtakes the last answer. An application that fails,
or whose answer cannot be written, is answered 500. A new connection goes to the loop that
holds the fewest (`Loads`: counts the workers share), so a client's pool opened at once is
spread over the workers' cores instead of landing on whichever loop woke first. Out of
descriptors, a loop stops accepting until its next sweep.

The master process forks the workers (each imports the application itself, so its threads run
where it serves), restarts a worker that dies (after a second's pause when it died within a
second of starting: an import error does not spin), and at SIGTERM or SIGINT asks each to stop:
a worker stops accepting, closes idle connections, finishes the requests it has, those still
being read included (answering them with `Connection: close`), lets the connections it ended
linger, and exits; one still busy after `graceful_seconds` is killed. Timeouts are judged as of
the loop's last poll: bytes that came while an inline request held the loop are not a client's
silence. A worker whose master dies gets SIGTERM (Linux's parent-death signal) and stops as
at a deploy: none outlives it holding the port."""

from __future__ import annotations

import contextlib
import ctypes
import email.utils
import errno
import importlib
import io
import logging
import mmap
import os
import select
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools
import orjson

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Inline = Callable[[str], bool]  # a path: run on the loop's thread?


@dataclass(frozen=True)
class Limits:
    max_head_bytes: int = 64 * 1024
    max_body_bytes: int = 16 * 1024 * 1024
    request_seconds: float = 30.0
    keepalive_seconds: float = 75.0  # longer than players' and load balancers' idle timeouts
    graceful_seconds: float = 30.0
    linger_seconds: float = 5.0  # after the server's close, the client's bytes read at most so long


READ_SIZE = 256 * 1024
SWEEP_SECONDS = 1.0
# How long a loop holding more connections than another leaves new connections to the others
# before it takes what they left, all of it (they may be busy: a decision on their thread).
ACCEPT_DEFER_SECONDS = 0.001
NO_BODY_STATUSES = frozenset({204, 304})
# What accept() reports of a pending connection's own network error, which Linux passes on from
# it (accept(2): "treat them like EAGAIN by retrying"); any other error is the loop's.
PENDING_CONNECTION_ERRORS = frozenset(
    {
        errno.ENETDOWN,
        errno.EPROTO,
        errno.ENOPROTOOPT,
        errno.EHOSTDOWN,
        errno.ENONET,
        errno.EHOSTUNREACH,
        errno.EOPNOTSUPP,
        errno.ENETUNREACH,
    }
)
UPGRADE_REFUSED = "This server does not switch protocols: send the request without Upgrade."
STATUS_TEXT = {
    400: "400 Bad Request",
    408: "408 Request Timeout",
    413: "413 Content Too Large",
    431: "431 Request Header Fields Too Large",
    500: "500 Internal Server Error",
}


class Refused(Exception):
    """A request the server answers itself (status, detail) before closing the connection."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Request:
    __slots__ = ("method", "url", "headers", "body", "version", "keep_alive")

    def __init__(self, method: str, url: bytes, headers: list, body: bytes, version: str, keep):
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.version = version
        self.keep_alive = keep


class Connection:
    """One client's socket, its parser (httptools calls the on_* methods) and its queue."""

    __slots__ = (
        "sock", "fd", "address", "limits", "parser", "url", "headers", "body", "body_bytes",
        "head_bytes", "in_head", "begun", "pending", "busy", "out", "mask", "last", "closing",
        "refusal", "length", "expecting", "raw_head", "continue_owed", "in_trailer", "host",
    )  # fmt: skip

    def __init__(self, sock: socket.socket, address: tuple, limits: Limits) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.limits = limits
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.head_bytes = 0
        self.in_head = False  # a request's head has begun and not ended
        self.begun: float | None = None  # when the request being read began
        self.pending: deque[Request] = deque()  # complete requests not yet answered
        self.busy = False  # one of its requests is in the pool
        self.out: bytes | memoryview = b""  # answer bytes the socket did not take yet
        self.mask = 0
        self.last = time.monotonic()  # the last progress either way
        self.closing = False  # close once what is pending is answered
        self.refusal = b""  # the server's own answer, after those pending, before closing
        self.length = 0  # the request's Content-Length, if it gave one
        self.expecting = False  # whether it asked for 100 Continue
        self.raw_head = -1  # bytes read while its head is incomplete, after the head's first read
        self.continue_owed = False  # 100 Continue, once the answers before it are sent
        self.in_trailer = False  # after the last chunk: its trailer fields are being read
        self.host = False  # whether the request named its host

    # httptools' callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.body, self.body_bytes = b"", [], [], 0
        self.head_bytes, self.in_head, self.begun = 0, True, time.monotonic()
        self.length, self.expecting, self.raw_head, self.host = 0, False, -1, False

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4  # a chunked body's trailer fields too
        if self.head_bytes > self.limits.max_head_bytes:
            self._count_head(0)
        if not self.in_head:  # a trailer field: not a request header (X-Forwarded-For, Host)
            return
        self.headers.append((name, value))
        if len(name) == 14 and name.lower() == b"content-length" and value.isdigit():
            self.length = int(value)
        elif len(name) == 6 and name.lower() == b"expect":
            self.expecting = value.lower() == b"100-continue"
        elif len(name) == 4 and name.lower() == b"host":
            self.host = True

    def _count_head(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > self.limits.max_head_bytes:
            raise Refused(431, f"The request's head is over {self.limits.max_head_bytes} bytes.")

    def on_headers_complete(self) -> None:
        self.in_head = False
        if not self.host and self.parser.get_http_version() == "1.1":  # RFC 9112, 3.2
            raise Refused(400, "The request has no Host header.")
        if self.length > self.limits.max_body_bytes:
            raise Refused(413, f"The request body is over {self.limits.max_body_bytes} bytes.")
        if self.expecting and self.parser.get_http_version() == "1.1":  # (RFC 9110: not 1.0)
            # The client waits for this before it sends the body; after the answers before it.
            if self.pending or self.busy or self.out:
                self.continue_owed = True
            else:
                self._send_now(CONTINUE)

    def on_chunk_header(self) -> None:  # perhaps the last (size 0): trailer fields follow
        self.in_trailer, self.raw_head = True, -1

    def on_body(self, body: bytes) -> None:
        self.in_trailer = False
        self.body_bytes += len(body)
        if self.body_bytes > self.limits.max_body_bytes:
            raise Refused(413, f"The request body is over {self.limits.max_body_bytes} bytes.")
        self.body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        if self.url[:1] != b"/":  # absolute form (or CONNECT's authority): one the server reads
            try:
                httptools.parse_url(self.url)
            except httptools.HttpParserInvalidURLError:
                raise Refused(400, "Malformed request target.") from None
        self.pending.append(
            Request(
                parser.get_method().decode("ascii", "replace"),
                self.url,
                self.headers,
                b"".join(self.body),
                parser.get_http_version(),
                parser.should_keep_alive(),
            )
        )
        self.begun, self.in_trailer = None, False
        self.continue_owed = False  # its body came: no 100 after its answer

    def _send_now(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(data)


# A header's name as sent: its environ key ("" for one the application must not see), for the
# names seen most (players send the same few), bounded against clients inventing names.
ENVIRON_KEYS: dict[bytes, str] = {}
KNOWN_NAMES = 512


def _environ_key(name: bytes) -> str:
    key = name.decode("latin-1").upper()
    if "_" in key:
        key = ""  # as nginx and gunicorn: X_Forwarded_For must not pass as X-Forwarded-For
    else:
        key = key.replace("-", "_")
        if key != "CONTENT_TYPE" and key != "CONTENT_LENGTH":
            key = "HTTP_" + key
    if len(ENVIRON_KEYS) < KNOWN_NAMES:
        ENVIRON_KEYS[name] = key
    return key


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
SERVER_ERROR = (
    STATUS_TEXT[500],
    [("Content-Type", "application/json")],
    orjson.dumps({"detail": "Server error."}),
)


def _status_line(status: str) -> bytes:
    return b"HTTP/1.1 " + status.encode("latin-1") + b"\r\n"


class DateHeader:
    """The Date header, formatted once a second."""

    def __init__(self) -> None:
        self.second = -1
        self()

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self.second:  # the line first: another thread may read both meanwhile
            self.line = b"Date: " + email.utils.formatdate(now, usegmt=True).encode() + b"\r\n"
            self.second = now
        return self.line


class Loads:
    """How many connections each loop of every worker holds, in memory the master maps before
    it forks the workers (so they share it): a loop takes a new connection only while none
    holds fewer. Every loop listening is woken by each new connection (with two to a few loops
    the spurious wake-ups cost little); the one holding the fewest takes it. A slot reads
    NOT_LISTENING until its loop listens, and again once it stops or its worker dies."""

    NOT_LISTENING = 2**31 - 1

    def __init__(self, slots: int) -> None:
        self.memory = mmap.mmap(-1, 4 * slots)  # anonymous and shared: kept across fork()
        self.counts = memoryview(self.memory).cast("i")
        for slot in range(slots):
            self.counts[slot] = self.NOT_LISTENING

    def least(self, held: int) -> bool:
        """Whether a loop holding `held` connections holds no more than any other (its own
        slot holds `held`)."""
        return held <= min(self.counts)


class Worker:
    """One worker process: `loops` threads, each an epoll loop with connections of its own
    (each new connection to the loop of any worker that holds the fewest), sharing the pool."""

    def __init__(
        self,
        listener: socket.socket,
        application: WSGIApp,
        inline: Inline,
        *,
        loops: int,
        threads: int,
        limits: Limits,
        loads: Loads | None = None,
        slots: range | None = None,
    ) -> None:
        """`loads` and `slots`: the shared counts and this worker's loops' places in them (by
        default a count of its own)."""
        self.listener = listener
        self.application = application
        self.inline = inline
        self.limits = limits
        self.pool = ThreadPoolExecutor(max_workers=max(threads, 1), thread_name_prefix="api")
        self.stopping = False
        loops = max(loops, 1)
        self.loads = loads or Loads(loops)
        self.loops = [Loop(self, slot) for slot in slots or range(loops)]

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then until every loop has drained."""
        signals_r, signals_w = socket.socketpair()
        signals_r.setblocking(False)
        signals_w.setblocking(False)
        signal.set_wakeup_fd(signals_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        others = [
            threading.Thread(target=self._run_or_exit, args=(loop,), name=f"loop-{number}")
            for number, loop in enumerate(self.loops[1:], start=1)
        ]
        for thread in others:
            thread.start()
        self.loops[0].run(signals_r)
        for thread in others:
            thread.join()
        self.listener.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _run_or_exit(loop: Loop) -> None:
        try:
            loop.run()
        except BaseException:  # its connections would hang: the master starts another worker
            logger.exception("A loop failed.")
            os._exit(1)

    def _stop(self, *_: object) -> None:
        self.stopping = True
        for loop in self.loops:  # each notices at once
            os.eventfd_write(loop.wakeup, 1)


class Loop:
    """One thread's epoll loop (see the module's docstring)."""

    def __init__(self, worker: Worker, slot: int) -> None:
        self.worker = worker
        self.loads = worker.loads
        self.slot = slot  # this loop's count in worker.loads
        self.listener = worker.listener
        self.application = worker.application
        self.inline = worker.inline
        self.limits = worker.limits
        self.pool = worker.pool
        self.poll = select.epoll()
        self.connections: dict[int, Connection] = {}
        self.finished: deque[tuple[Connection, bytes, bool]] = deque()  # from the pool
        self.wakeup = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.date = DateHeader()
        self.accepting = False  # listening: not while out of descriptors (until the next
        # sweep), nor while leaving a new connection to a loop that holds fewer (until `resume`)
        self.resume: float | None = None
        self.lingering: dict[int, tuple[socket.socket, float]] = {}  # closed, until: see _linger
        host, port = self.listener.getsockname()[:2]
        self.base: dict[str, Any] = {
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }

    @property
    def stopping(self) -> bool:
        return self.worker.stopping

    # the loop
    def run(self, signals: socket.socket | None = None) -> None:
        """Serve until the worker stops and this loop's connections are answered (or the
        graceful time is up). `signals`: the main thread's wake-up socket for signals."""
        poll = self.poll
        listener_fd = self.listener.fileno()
        self._listen()
        poll.register(self.wakeup, select.EPOLLIN)
        if signals is not None:
            poll.register(signals.fileno(), select.EPOLLIN)
        connections = self.connections
        deadline = None
        next_sweep = time.monotonic() + SWEEP_SECONDS
        while True:
            if self.stopping:
                if deadline is None:
                    deadline = time.monotonic() + self.limits.graceful_seconds
                    self.resume = None
                    if self.accepting:
                        self._unlisten()
                    self.loads.counts[self.slot] = Loads.NOT_LISTENING
                    for each in list(connections.values()):
                        each.closing = True
                        if self._idle(each):
                            # What came while an inline request held the loop is a request,
                            # not idleness: read, it is answered (unread, a reset lost it).
                            self._read(each)
                            if connections.get(each.fd) is not each:
                                continue  # answered and lingering, or the client left
                        if self._idle(each):
                            self._close(each)  # nothing of its own in flight to drain
                        else:
                            self._settle(each)
                if (not connections and not self.lingering) or time.monotonic() > deadline:
                    break
            resume = self.resume
            ready = poll.poll(
                SWEEP_SECONDS if resume is None else max(resume - time.monotonic(), 0.0)
            )
            polled = time.monotonic()  # what the sweep judges by: see below
            for fd, events in ready:
                connection = connections.get(fd)
                if connection is not None:
                    if events & select.EPOLLOUT:
                        self._flush(connection)
                    if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR) and (
                        connections.get(fd) is connection  # not closed or lingering by now
                    ):
                        self._read(connection)
                elif fd in self.lingering:
                    self._drain(fd)
                elif fd == listener_fd:
                    if self.stopping:  # since the poll: taken, it would be closed unread
                        pass  # (as idle) at the top of the loop; left, it is another's
                    elif self.loads.least(len(connections)):
                        self._accept()
                    else:  # a loop that holds fewer is woken too: this one steps aside
                        self._unlisten()
                        self.resume = time.monotonic() + ACCEPT_DEFER_SECONDS
                elif fd == self.wakeup:
                    self._collect()
                elif signals is not None:  # a signal arrived; its handler has run
                    with contextlib.suppress(BlockingIOError):
                        signals.recv(64)
            now = time.monotonic()
            if self.resume is not None and now >= self.resume and not self.stopping:
                self.resume = None
                # What the others left so long (busy): this loop's, all of it. One at a time
                # (stepping aside again after each) cost a millisecond a connection: in a storm
                # the loops stepped aside for each other, none listening (review16).
                self._listen()
                while not self.stopping and self._accept():
                    pass
            if now >= next_sweep:
                next_sweep = now + SWEEP_SECONDS
                # As of the poll: bytes that came while an inline request held the loop are
                # in the socket, not yet read, and must not count as a client's silence.
                self._sweep(polled)
                if not self.accepting and self.resume is None and not self.stopping:
                    self._listen()

    @staticmethod
    def _idle(connection: Connection) -> bool:
        return connection.begun is None and not (
            connection.pending or connection.busy or connection.out or connection.refusal
        )

    def _listen(self) -> None:
        self.accepting = True
        self.loads.counts[self.slot] = len(self.connections)
        self.poll.register(self.listener.fileno(), select.EPOLLIN)

    def _unlisten(self) -> None:
        self.accepting = False
        self.poll.unregister(self.listener.fileno())

    def _accept(self) -> bool:
        """Take a new connection, if one waits: whether another may wait behind it (False when
        none waits, or out of descriptors)."""
        try:
            sock, address = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return False  # another loop took it
        except ConnectionAbortedError:
            return True  # the client left: another may wait behind it
        except OSError as error:
            if error.errno in PENDING_CONNECTION_ERRORS:  # that connection's, not the loop's
                logger.info("accept: a connection failed before it was taken: %s", error)
                return True
            # Out of descriptors or memory: not again before the next sweep.
            logger.warning("accept failed: %s", error)
            if self.accepting:
                self._unlisten()
            self.loads.counts[self.slot] = Loads.NOT_LISTENING
            return False
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = Connection(sock, address, self.limits)
        self.connections[connection.fd] = connection
        self._held()
        connection.mask = select.EPOLLIN
        self.poll.register(connection.fd, select.EPOLLIN)
        return True

    def _held(self) -> None:
        """This loop's count for the others, after a connection came or went (while it takes
        new ones, or steps aside for a moment)."""
        if self.accepting or self.resume is not None:
            self.loads.counts[self.slot] = len(self.connections)

    def _read(self, connection: Connection) -> None:
        try:
            data = connection.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client closed (or reset) its side
            self._close(connection)
            return
        connection.last = time.monotonic()
        try:
            connection.parser.feed_data(data)
            if connection.in_head or connection.in_trailer:  # what the parser holds of a head
                if connection.raw_head < 0:  # it began in this read: the callbacks counted it
                    connection.raw_head = 0
                else:
                    connection.raw_head += len(data)
                    if connection.raw_head > connection.limits.max_head_bytes:
                        connection._count_head(connection.limits.max_head_bytes + 1)
        except Refused as refused:
            self._refuse(connection, refused.status, refused.detail)
            return
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, Refused):
                self._refuse(connection, cause.status, cause.detail)
            else:
                self._refuse(connection, 400, "Malformed HTTP request.")
            return
        except httptools.HttpParserUpgrade:
            # llhttp ends an Upgrade request (or a CONNECT) at its head: what follows would be
            # the new protocol. This server switches none: a request without a body is answered
            # in HTTP/1.1, then the connection closed; one with a body, unread, is refused.
            upgrade = connection.pending[-1] if connection.pending else None
            if upgrade is not None and (
                connection.length
                or any(name.lower() == b"transfer-encoding" for name, _ in upgrade.headers)
            ):
                connection.pending.pop()
                self._refuse(connection, 400, UPGRADE_REFUSED)
                return
            connection.closing = True
        except httptools.HttpParserError:
            if connection.pending and not connection.pending[-1].keep_alive:
                connection.closing = True  # bytes after `Connection: close` go unanswered
            else:
                self._refuse(connection, 400, "Malformed HTTP request.")
                return
        self._settle(connection)

    def _settle(self, connection: Connection) -> None:
        """Answer what the connection has pending, in order, then set what to wait for."""
        while connection.pending and not connection.busy and not connection.out:
            request = connection.pending.popleft()
            last = not connection.pending and connection.begun is None
            # The last answer before closing says so (a refusal says it itself).
            keep_alive = request.keep_alive and not (
                last and (connection.closing or self.stopping) and not connection.refusal
            )
            environ = self._environ(request, connection)
            if self.inline(environ["PATH_INFO"]):
                self._write(connection, *self._answer(environ, request, keep_alive))
            else:
                connection.busy = True
                self.pool.submit(self._pooled, connection, environ, request, keep_alive)
            if connection.fd not in self.connections:
                return
        idle = not connection.pending and not connection.busy and not connection.out
        if idle and connection.refusal:
            refusal, connection.refusal = connection.refusal, b""
            self._write(connection, refusal, False)
            if connection.fd not in self.connections:
                return
            idle = not connection.out
        if idle and connection.continue_owed:
            connection.continue_owed = False
            connection._send_now(CONTINUE)
        if idle and (connection.closing or self.stopping) and connection.begun is None:
            self._linger(connection)
            return
        wanted = select.EPOLLOUT if connection.out else 0
        if not connection.busy and not connection.out and not connection.closing:
            wanted |= select.EPOLLIN
        if self.stopping and connection.begun is not None:
            wanted |= select.EPOLLIN  # let a begun request finish
        if wanted != connection.mask:
            connection.mask = wanted
            self.poll.modify(connection.fd, wanted)

    def _pooled(self, connection: Connection, environ: dict, request: Request, keep: bool) -> None:
        self.finished.append((connection, *self._answer(environ, request, keep)))
        os.eventfd_write(self.wakeup, 1)

    def _collect(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.wakeup)
        while self.finished:
            connection, answer, keep_alive = self.finished.popleft()
            connection.busy = False
            if connection.fd in self.connections and self.connections[connection.fd] is connection:
                self._write(connection, answer, keep_alive)
                if connection.fd in self.connections:
                    self._settle(connection)

    def _write(self, connection: Connection, answer: bytes, keep_alive: bool) -> None:
        if not keep_alive:  # what the client sent after this request goes unanswered
            connection.closing = True
            connection.pending.clear()
            connection.in_head, connection.begun = False, None
            connection.continue_owed = False
        try:
            sent = connection.sock.send(answer)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(connection)
            return
        connection.last = time.monotonic()
        connection.out = memoryview(answer)[sent:] if sent < len(answer) else b""

    def _flush(self, connection: Connection) -> None:
        try:
            sent = connection.sock.send(connection.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(connection)
            return
        connection.last = time.monotonic()
        connection.out = connection.out[sent:]
        if not connection.out:
            self._settle(connection)

    def _refuse(self, connection: Connection, status: int, detail: str) -> None:
        """Answer the requests complete before the fault, then the server's own refusal, then
        close the connection."""
        connection.in_head, connection.begun, connection.closing = False, None, True
        connection.continue_owed = False
        body = orjson.dumps({"detail": detail})
        connection.refusal = (
            _status_line(STATUS_TEXT[status])
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n"
            + self.date()
            + b"\r\n"
            + body
        )
        self._settle(connection)

    def _sweep(self, now: float) -> None:
        limits = self.limits
        for connection in list(self.connections.values()):
            if connection.busy:
                continue
            if connection.out:
                if now - connection.last > limits.request_seconds:
                    self._close(connection)  # it does not read its answers
            elif connection.begun is not None:
                if now - connection.begun > limits.request_seconds:
                    self._refuse(connection, 408, "The request was not complete in time.")
            elif not connection.pending and now - connection.last > limits.keepalive_seconds:
                self._close(connection)
        for fd, (_, until) in list(self.lingering.items()):
            if now > until:
                self._unlinger(fd)

    def _linger(self, connection: Connection) -> None:
        """Close a connection the server ends while the client may still be sending (a body
        it refused, requests after `Connection: close`): its answers are sent, so the write
        side closes now, and what the client sends is read and dropped until it closes its
        side, or for `linger_seconds` at most. A socket closed with bytes unread would reset
        the connection, and a reset can take the answer with it (RFC 9112, 9.6)."""
        if self.connections.get(connection.fd) is not connection:
            return
        try:
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:  # the client is gone already
            self._close(connection)
            return
        del self.connections[connection.fd]
        self._held()
        self.lingering[connection.fd] = (
            connection.sock,
            time.monotonic() + self.limits.linger_seconds,
        )
        if connection.mask != select.EPOLLIN:
            self.poll.modify(connection.fd, select.EPOLLIN)

    def _drain(self, fd: int) -> None:
        sock = self.lingering[fd][0]
        try:
            if sock.recv(READ_SIZE):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._unlinger(fd)

    def _unlinger(self, fd: int) -> None:
        sock = self.lingering.pop(fd)[0]
        with contextlib.suppress(OSError, ValueError):
            self.poll.unregister(fd)
        sock.close()

    def _close(self, connection: Connection) -> None:
        if self.connections.get(connection.fd) is not connection:
            return
        del self.connections[connection.fd]
        self._held()
        with contextlib.suppress(OSError, ValueError):
            self.poll.unregister(connection.fd)
        connection.sock.close()

    # WSGI
    def _environ(self, request: Request, connection: Connection) -> dict[str, Any]:
        url = request.url
        authority = None
        if url[:1] != b"/":  # absolute form: its authority is the host (RFC 9112, 3.2.2)
            parsed = httptools.parse_url(url)
            path, query = parsed.path or b"/", parsed.query or b""
            if parsed.host:
                authority = parsed.host + (b":%d" % parsed.port if parsed.port else b"")
        else:
            path, _, query = url.partition(b"?")
        if b"%" in path:
            path = unquote_to_bytes(path)
        environ = self.base.copy()
        environ["REQUEST_METHOD"] = request.method
        environ["PATH_INFO"] = path.decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["SERVER_PROTOCOL"] = "HTTP/" + request.version
        environ["REMOTE_ADDR"] = connection.address[0] if connection.address else ""
        environ["wsgi.input"] = io.BytesIO(request.body)
        for name, value in request.headers:
            key = ENVIRON_KEYS.get(name) or _environ_key(name)
            if not key:
                continue
            text = value.decode("latin-1")
            if key in environ:  # a repeated field: one list (cookies have their own separator)
                text = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + text
            environ[key] = text
        if authority is not None:
            environ["HTTP_HOST"] = authority.decode("latin-1")
        if request.body or "CONTENT_LENGTH" in environ:
            environ["CONTENT_LENGTH"] = str(len(request.body))  # chunked bodies too
        return environ

    def _answer(
        self, environ: dict[str, Any], request: Request, keep_alive: bool
    ) -> tuple[bytes, bool]:
        """Run the application: its answer as bytes on the wire, and whether the connection
        stays open after it. An application that fails, or whose answer cannot be written (a
        header that is not Latin-1, a status without its code), is answered 500."""
        try:
            return self._wire(request, *called(self.application, environ), keep_alive)
        except BaseException:  # SystemExit too: the loop and the others' requests go on
            logger.exception("The application failed: %s %s", request.method, environ["PATH_INFO"])
            return self._wire(request, *SERVER_ERROR, keep_alive)

    def _wire(
        self, request: Request, status: str, headers: list, body: bytes, keep_alive: bool
    ) -> tuple[bytes, bool]:
        head = [_status_line(status)]
        length_given = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == "content-length":
                length_given = True
            elif lowered == "connection":
                if value.lower() == "close":
                    keep_alive = False
                continue
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        if self.stopping:  # set while the application ran: the last answer of its connection
            keep_alive = False
        code = int(status[:3])
        if code in NO_BODY_STATUSES or code < 200:
            body = b""
        elif not length_given:
            head.append(b"Content-Length: %d\r\n" % len(body))
        head.append(self.date())
        if not keep_alive:
            head.append(b"Connection: close\r\n")
        elif request.version == "1.0":
            head.append(b"Connection: keep-alive\r\n")
        head.append(b"\r\n")
        if request.method != "HEAD":
            head.append(body)
        return b"".join(head), keep_alive


def called(application: WSGIApp, environ: dict[str, Any]) -> tuple[str, list, bytes]:
    """A WSGI application's answer to `environ` as a server takes it: the status, the headers
    and the body (iterated and closed in this thread: Django sends request_finished on close)."""
    started: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
        if started and exc_info is None:
            raise AssertionError("start_response called twice without exc_info")
        started[:] = [status, headers]
        return written.append

    result = application(environ, start_response)
    try:
        written.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started
    return status, headers, b"".join(written)


def _stop_with(master: int) -> None:
    """SIGTERM to this worker when the master dies (Linux's parent-death signal), so no worker
    outlives it holding the port; if the master is gone already, stop now."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != master:  # it died before the call
        os._exit(0)


PR_SET_PDEATHSIG = 1


def _load(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def serve(
    application: str,
    inline: str,
    *,
    host: str,
    port: int,
    workers: int,
    loops: int = 1,
    threads: int = 2,
    limits: Limits | None = None,
) -> None:
    """Listen on host:port and run `workers` worker processes until SIGTERM or SIGINT, each
    with `loops` loop threads and a pool of `threads`. `application` and `inline` are
    "module:attribute" strings, imported in each worker."""
    limits = limits or Limits()
    listener = socket.create_server((host, port), backlog=2048)
    listener.setblocking(False)
    watched = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)  # taken by sigtimedwait below
    children: dict[int, tuple[float, int]] = {}  # pid: when it started, which worker it is
    master = os.getpid()  # before the fork: a worker that outlives it, even while it imports
    loops = max(loops, 1)
    loads = Loads(workers * loops)

    def spawn(number: int) -> None:
        pid = os.fork()
        if pid:
            children[pid] = (time.monotonic(), number)
            return
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, watched)
            _stop_with(master)
            worker = Worker(
                listener,
                _load(application),
                _load(inline),
                loops=loops,
                threads=threads,
                limits=limits,
                loads=loads,
                slots=range(number * loops, (number + 1) * loops),
            )
            worker.run()
            code = 0
        except BaseException:
            logger.exception("A worker failed.")
        finally:
            os._exit(code)  # never back into the master's code

    logger.info("Serving http://%s:%d: %d workers, master pid %d", host, port, workers, os.getpid())
    for number in range(workers):
        spawn(number)
    deadline = None
    while children:
        received = signal.sigtimedwait(watched, SWEEP_SECONDS)
        now = time.monotonic()
        if received is not None and received.si_signo != signal.SIGCHLD and deadline is None:
            deadline = now + limits.graceful_seconds + 5
            for pid in children:
                os.kill(pid, signal.SIGTERM)
            listener.close()  # the workers' copies close as they exit
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                break
            if pid == 0:
                break
            child = children.pop(pid, None)
            if child is not None and deadline is None:
                started, number = child
                for slot in range(number * loops, (number + 1) * loops):
                    loads.counts[slot] = Loads.NOT_LISTENING  # its loops take none now
                logger.error("Worker %d stopped (status %d); starting another.", pid, status)
                if now - started < 1:
                    time.sleep(1)  # it failed as it started: do not spin
                spawn(number)
        if deadline is not None and now > deadline:
            for pid in children:
                os.kill(pid, signal.SIGKILL)
