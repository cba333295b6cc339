"""config/wsgi_server.py, the `api` process's HTTP server, in a process of its own around
tests/config/wsgi_apps.py: keep-alive, pipelining in order across the loop and the pool, the
limits' answers, 100-continue, chunked bodies, HEAD, failures, graceful stop and restarts."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from config.wsgi_server import Limits, Loads, Worker

BASE_DIR = Path(__file__).resolve().parents[2]
LIMITS = {
    "max_head_bytes": 4096,
    "max_body_bytes": 1000,
    "request_seconds": 1.0,
    "keepalive_seconds": 1.0,
    "graceful_seconds": 5.0,
    "linger_seconds": 1.0,
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def _running(pid: int) -> bool:
    """Whether the process runs (a zombie has stopped: init reaps orphans when it gets to it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def _kill_and_expect_workers_stopped(master: subprocess.Popen, workers: list[int]) -> None:
    master.kill()
    master.wait()
    try:
        for _ in range(60):
            if not any(_running(pid) for pid in workers):
                break
            time.sleep(0.05)
        assert not any(_running(pid) for pid in workers)
    finally:  # no orphan left holding the port when it fails
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextmanager
def _server(
    tmp_path: Path,
    workers: int = 2,
    loops: int = 1,
    descriptors: int = 0,
    ready: bool = True,
    accept_defer: float | None = None,
    **limits: float,
):
    port = _free_port()
    settings = LIMITS | limits
    code = (
        "import logging, resource; logging.basicConfig(level=logging.INFO)\n"
        + (
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({descriptors}, {descriptors}))\n"
            if descriptors
            else ""
        )
        + "import config.wsgi_server\n"
        + (
            f"config.wsgi_server.ACCEPT_DEFER_SECONDS = {accept_defer!r}\n"
            if accept_defer is not None
            else ""
        )
        + "from config.wsgi_server import Limits, serve\n"
        f"serve('tests.config.wsgi_apps:app', 'tests.config.wsgi_apps:inline', "
        f"host='127.0.0.1', port={port}, workers={workers}, loops={loops}, threads=2, "
        f"limits=Limits(**{settings!r}))"
    )
    log = tmp_path / f"server-{port}.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", code], cwd=BASE_DIR, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        for _ in range(200 if ready else 0):
            assert process.poll() is None, log.read_text()
            try:
                with Client(port) as client:
                    client.send(b"GET /up HTTP/1.1\r\nHost: t\r\n\r\n")
                    assert client.answer()[0] == 200
                break
            except OSError:
                time.sleep(0.05)
        while len(_children(process.pid)) < workers:
            time.sleep(0.05)
        process.log = log  # type: ignore[attr-defined]
        yield port, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


class Client:
    """A raw connection: send bytes, read answers one by one (status, headers, body)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.file.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        status_line = self.file.readline()
        if not status_line:
            raise ConnectionError("closed")
        assert status_line.startswith(b"HTTP/1.1 "), status_line  # nothing left of the last
        status = int(status_line.split()[1])
        headers = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only or status in (100, 204) else int(headers["content-length"])
        return status, headers, self.file.read(length)

    def closed(self) -> bool:
        """Whether the server closed the connection (nothing more to read)."""
        return self.file.read(1) == b""


def _request(path: str, extra: str = "", body: bytes = b"", method: str = "GET") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return f"{method} {path} HTTP/1.1\r\nHost: t\r\n{length}{extra}\r\n".encode() + body


def _echoed(port: int, data: bytes) -> dict:
    """The test application's account of the one request in `data` (wsgi_apps.py echoes it)."""
    with Client(port) as client:
        client.send(data)
        return orjson.loads(client.answer()[2])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with _server(tmp_path_factory.mktemp("wsgi-server")) as (port, process):
        yield port, process


def test_keep_alive_answers_with_length_and_date(server):
    port, _ = server
    with Client(port) as client:
        for number in range(3):
            client.send(_request(f"/inline/{number}?a=b%20c"))
            status, headers, body = client.answer()
            answer = orjson.loads(body)
            assert status == 200
            assert int(headers["content-length"]) == len(body)  # counted by the server
            assert headers["date"].endswith(" GMT")
            assert "connection" not in headers
            assert (answer["path"], answer["query"]) == (f"/inline/{number}", "a=b%20c")
            assert answer["protocol"] == "HTTP/1.1"
            assert answer["remote"] == "127.0.0.1"


def test_inline_paths_run_on_the_loop_others_on_the_pool(server):
    port, _ = server
    with Client(port) as client:
        client.send(_request("/inline/x") + _request("/api/x"))
        threads = [orjson.loads(client.answer()[2])["thread"] for _ in range(2)]
    assert threads[0] in ("MainThread", "loop-1")  # the loop that read it
    assert threads[1].startswith("api")  # the pool's


def test_pipelined_answers_keep_their_order_across_the_pool(server):
    port, _ = server
    with Client(port) as client:
        # The first waits 0.3 s on the pool; the inline one after it must not overtake it.
        client.send(_request("/slow?0.3") + _request("/inline/after") + _request("/last"))
        paths = [orjson.loads(client.answer()[2])["path"] for _ in range(3)]
    assert paths == ["/slow", "/inline/after", "/last"]


def test_a_slow_pooled_request_does_not_hold_up_other_connections(server):
    port, _ = server
    with Client(port) as slow, Client(port) as quick:
        slow.send(_request("/slow?0.8"))
        time.sleep(0.1)
        started = time.monotonic()
        quick.send(_request("/inline/quick"))
        assert quick.answer()[0] == 200
        waited = time.monotonic() - started
        assert slow.answer()[0] == 200
    assert waited < 0.4  # answered while the other waited on the pool


def test_while_one_loop_waits_inline_the_other_takes_new_connections(tmp_path):
    # One worker, two loops: a decision waiting on Redis holds its loop, not the worker.
    with _server(tmp_path, workers=1, loops=2) as (port, _), Client(port) as waiting:
        waiting.send(_request("/inline/slow?0.8"))
        time.sleep(0.2)  # its loop is inside the application now
        started = time.monotonic()
        with Client(port) as quick:  # accepted by the loop that is free
            quick.send(_request("/inline/quick"))
            assert quick.answer()[0] == 200
        waited = time.monotonic() - started
        assert waiting.answer()[0] == 200
    assert waited < 0.4


def _pid(client: Client) -> int:
    """The worker that serves the client's connection."""
    client.send(_request("/inline/which"))
    return _pid_of(client.answer())


def _pid_of(answer: tuple[int, dict[str, str], bytes]) -> int:
    """The worker that answered (tests/config/wsgi_apps.py says)."""
    return orjson.loads(answer[2])["pid"]


def _both_workers_listening(port: int) -> None:
    """Connections opened and closed until both workers have answered (a server's fixture
    waits for one), then a moment for their closes to be handled: both idle, holding none."""
    with contextlib.ExitStack() as warm_up:
        seen = set()
        for _ in range(20):
            seen.add(_pid(warm_up.enter_context(Client(port))))
            if len(seen) == 2:
                break
    time.sleep(0.2)


def test_connections_opened_one_after_another_go_round_the_workers(server):
    # A client's pool opening its connections one after another while both workers idle: in
    # turn, not nearly all on the worker that happened to register first (before session 15:
    # 11 or 10 of 12 in ten tries).
    port, _ = server
    _both_workers_listening(port)
    # A worker busy at that instant (its sweep, the machine's other work) is passed by: room
    # for strays, and three tries (under two busy cores one try in ten fell short).
    tries = []
    for _ in range(3):
        with contextlib.ExitStack() as pool:
            tries.append(Counter(_pid(pool.enter_context(Client(port))) for _ in range(12)))
        if len(tries[-1]) == 2 and min(tries[-1].values()) >= 4:
            break
        time.sleep(0.2)  # the closes handled: both idle again
    else:
        raise AssertionError(f"connections by worker, in each try: {tries}")


def test_connections_opened_at_once_are_shared_between_the_workers(tmp_path):
    # A client's pool of four opened at once while both workers idle (as a load balancer or
    # an SSAI server opens one): the loop woken first took all four in 14 of 30 tries before
    # session 16, the other worker having had no time to wake, and the pool's requests ran on
    # one core. Now a loop takes a connection only while no other holds fewer: never four.
    # A loop that holds more takes what is left after ACCEPT_DEFER_SECONDS (1 ms: the other
    # may be busy), and a loaded machine can leave the other unscheduled that long (once in
    # about 75 tries under soak.py, all four on one worker): here it waits 50 ms, so the test
    # holds the balance by the counts apart from the fallback's timing.
    with _server(tmp_path, accept_defer=0.05) as (port, _):
        _both_workers_listening(port)
        splits = []
        for _ in range(5):
            with contextlib.ExitStack() as pool:
                clients = [pool.enter_context(Client(port)) for _ in range(4)]
                splits.append(Counter(_pid(client) for client in clients))
            time.sleep(0.2)
    assert all(len(split) == 2 for split in splits), splits


def test_connections_the_busy_loop_holding_fewer_leaves_are_all_taken_at_once(tmp_path):
    # The worker holding fewer waits inline (a decision waiting on PostgreSQL): the other steps
    # aside for ACCEPT_DEFER_SECONDS, then takes what is left, all of it. Before review16 it
    # took one a millisecond (one, then stepped aside again): 150 opened at once waited 150 ms
    # and more, the last of a burst of 40 55 ms (12 ms before session 16).
    with _server(tmp_path) as (port, _), contextlib.ExitStack() as stack:
        _both_workers_listening(port)
        held: dict[int, list[Client]] = {}
        for _ in range(40):
            client = stack.enter_context(Client(port))
            held.setdefault(_pid(client), []).append(client)
            if len(held) == 2 and max(len(each) for each in held.values()) >= 3:
                break
        (busy, fewer), (other, _) = sorted(held.items(), key=lambda item: len(item[1]))
        for extra in fewer[1:]:
            extra.sock.close()
        time.sleep(0.1)  # the closes handled: the busy worker holds one, the other three or more
        fewer[0].send(_request("/inline/slow?1.5"))
        time.sleep(0.1)  # its loop is inside the application now
        clients = [stack.enter_context(Client(port)) for _ in range(150)]
        started = time.monotonic()
        for client in clients:
            client.send(_request("/inline/x"))
        pids = Counter(_pid_of(client.answer()) for client in clients)
        waited = time.monotonic() - started
        assert pids == {other: 150}
    assert waited < 0.1, waited


def test_path_is_decoded_headers_joined_and_underscored_names_dropped(server):
    port, _ = server
    answer = _echoed(
        port,
        _request(
            "/inline/a%20b%2Fc",
            "X-Tag: one\r\nX-Tag: two\r\nX_Forwarded_For: 6.6.6.6\r\n"
            "Content-Type: application/json\r\n",
            b"{}",
            method="POST",
        ),
    )
    assert answer["path"] == "/inline/a b/c"
    assert answer["headers"]["HTTP_X_TAG"] == "one,two"
    assert "HTTP_X_FORWARDED_FOR" not in answer["headers"]
    assert (answer["content_type"], answer["content_length"], answer["body"]) == (
        "application/json",
        "2",
        "{}",
    )


def test_a_chunked_body_arrives_whole_with_its_length(server):
    port, _ = server
    answer = _echoed(
        port,
        b"POST /api/chunks HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    assert (answer["body"], answer["content_length"]) == ("hello world", "11")


def test_expect_100_continue_is_answered_before_the_body(server):
    port, _ = server
    with Client(port) as client:
        client.send(_request("/inline/upload", "Expect: 100-continue\r\nContent-Length: 5\r\n"))
        assert client.answer()[0] == 100  # before any byte of the body was sent
        client.send(b"hello")
        status, _, body = client.answer()
    assert (status, orjson.loads(body)["body"]) == (200, "hello")


def test_head_answers_the_length_without_the_body(server):
    port, _ = server
    with Client(port) as client:
        client.send(_request("/inline/x", method="HEAD") + _request("/inline/y"))
        status, headers, body = client.answer(head_only=True)
        assert (status, body) == (200, b"")
        assert int(headers["content-length"]) > 0
        assert orjson.loads(client.answer()[2])["path"] == "/inline/y"  # nothing left between


def test_no_content_has_no_body(server):
    port, _ = server
    with Client(port) as client:
        client.send(_request("/empty") + _request("/inline/next"))
        status, headers, body = client.answer()
        assert (status, body) == (204, b"")
        assert "content-length" not in headers
        assert orjson.loads(client.answer()[2])["path"] == "/inline/next"  # nothing between


@pytest.mark.parametrize(
    ("data", "status", "detail"),
    [
        (_request("/x", body=b"a" * 1001, method="POST"), 413, "over 1000 bytes"),
        (
            b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"200\r\n" + b"a" * 512 + b"\r\n" + b"200\r\n" + b"a" * 512 + b"\r\n0\r\n\r\n",
            413,
            "over 1000 bytes",
        ),
        (_request("/x", "X-Big: " + "b" * 5000 + "\r\n"), 431, "head"),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "Malformed"),
    ],
    ids=["length", "chunked", "head", "garbage"],
)  # fmt: skip
def test_bad_requests_get_a_json_answer_and_the_connection_closes(server, data, status, detail):
    port, _ = server
    with Client(port) as client:
        client.send(data)
        answered, headers, body = client.answer()
        assert answered == status
        assert headers["connection"] == "close"
        assert headers["content-type"] == "application/json"
        assert detail in orjson.loads(body)["detail"]
        assert client.closed()


def test_a_body_still_coming_after_its_refusal_does_not_reset_the_answer(server):
    # The 413 is decided on the head; a client sends its body anyway (it did not ask for 100
    # Continue). Closed at once, the server's socket would reset the connection at the body's
    # first bytes: the client's next send fails, and over a network the reset can overtake
    # the answer. CI's failure at stop 25 (the trailer test below, a broken pipe).
    port, _ = server
    with Client(port) as client:
        client.send(_request("/x", "Content-Length: 5000\r\n"))
        time.sleep(0.2)  # refused and closed by now
        for _ in range(5):
            client.send(b"a" * 1000)
            time.sleep(0.05)
        status, headers, _ = client.answer()
        assert (status, headers["connection"]) == (413, "close")
        assert client.closed()


def test_a_client_that_never_closes_is_let_go_after_linger_seconds(server):
    port, _ = server
    with Client(port) as client:
        client.send(b"BAD\r\n\r\n")
        assert client.answer()[0] == 400
        closed = time.monotonic()
        with pytest.raises(OSError):  # EPIPE or a reset: the server's socket is gone
            for _ in range(50):
                client.send(b"a")
                time.sleep(0.1)
        # linger_seconds 1, swept every second
        assert 0.9 < time.monotonic() - closed < 3.0


def test_requests_before_a_bad_one_are_answered_first(server):
    port, _ = server
    with Client(port) as client:
        client.send(_request("/slow?0.2") + _request("/inline/b") + b"BAD\r\n\r\n")
        assert [client.answer()[0] for _ in range(3)] == [200, 200, 400]
        assert client.closed()


def test_an_expect_over_the_limit_is_refused_without_continue(server):
    port, _ = server
    with Client(port) as client:
        client.send(_request("/x", "Expect: 100-continue\r\nContent-Length: 5000\r\n", b""))
        assert client.answer()[0] == 413


def test_an_incomplete_request_times_out(server):
    port, _ = server
    with Client(port) as client:
        client.send(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        status, _, body = client.answer()  # request_seconds 1, swept every second
        assert status == 408
        assert client.closed()


def test_idle_keep_alive_connections_are_closed(server):
    port, _ = server
    with Client(port) as client:
        client.send(_request("/inline/x"))
        assert client.answer()[0] == 200
        started = time.monotonic()
        assert client.closed()  # keepalive_seconds 1, swept each second
    assert 0.9 < time.monotonic() - started < 3


def test_connection_close_from_either_side(server):
    port, _ = server
    with Client(port) as client:
        client.send(_request("/inline/x", "Connection: close\r\n") + _request("/inline/never"))
        status, headers, _ = client.answer()
        assert (status, headers["connection"]) == (200, "close")
        assert client.closed()  # the request after it is not answered
    with Client(port) as client:
        client.send(_request("/close"))
        status, headers, body = client.answer()
        assert (status, headers["connection"], body) == (200, "close", b"bye")
        assert client.closed()


def test_http_1_0_closes_unless_asked_to_keep_alive(server):
    port, _ = server
    with Client(port) as client:
        client.send(b"GET /inline/x HTTP/1.0\r\n\r\n")
        assert client.answer()[1]["connection"] == "close"
        assert client.closed()
    with Client(port) as client:
        client.send(b"GET /inline/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert client.answer()[1]["connection"] == "keep-alive"
        client.send(b"GET /inline/y HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert orjson.loads(client.answer()[2])["path"] == "/inline/y"


def test_an_application_failure_is_a_500_and_the_connection_goes_on(server):
    port, process = server
    with Client(port) as client:
        client.send(_request("/fail") + _request("/inline/after"))
        status, headers, body = client.answer()
        assert (status, orjson.loads(body)) == (500, {"detail": "Server error."})
        assert orjson.loads(client.answer()[2])["path"] == "/inline/after"
    assert "The application failed: GET /fail" in process.log.read_text()


def test_sigterm_finishes_requests_in_flight_then_stops(tmp_path):
    with _server(tmp_path, linger_seconds=30.0) as (port, process), Client(port) as idle:
        with Client(port) as busy:
            idle.send(_request("/inline/x"))
            assert idle.answer()[0] == 200
            busy.send(_request("/slow?0.5"))
            time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            status, headers, body = busy.answer()
            assert (status, headers["connection"]) == (200, "close")
            assert orjson.loads(body)["path"] == "/slow"
            assert idle.closed()  # the idle keep-alive connection is closed at once
        # ...not left to linger while its client keeps it open (review14's find: a pooled
        # client held the stop for linger_seconds); the busy one lingered until it closed.
        assert process.wait(timeout=3) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_a_connection_waiting_when_its_worker_stops_is_not_taken_only_to_be_closed(tmp_path):
    # review16: a loop busy inline, a request on another connection and a new connection
    # waiting behind it; SIGTERM comes to the worker while it answers the request. It must not
    # then accept the new connection (its request unread, "idle") only to close it unanswered:
    # left in the backlog, it is the next worker's.
    with _server(tmp_path, workers=1) as (port, process), contextlib.ExitStack() as stack:
        worker = _children(process.pid)[0]
        first, second = (stack.enter_context(Client(port)) for _ in range(2))
        first.send(_request("/inline/slow?0.4"))
        time.sleep(0.1)  # the loop is inside the application
        second.send(_request("/inline/slow?0.5"))
        time.sleep(0.05)
        waiting = stack.enter_context(Client(port))  # in the backlog: the loop is held
        waiting.send(_request("/inline/waiting"))
        time.sleep(0.45)  # the loop answered the first and runs the second, in one batch with
        os.kill(worker, signal.SIGTERM)  # the listener's readiness after it
        assert first.answer()[0] == second.answer()[0] == 200
        assert waiting.answer()[0] == 200  # by the worker started in its place


def test_a_request_sent_while_the_loop_was_held_is_answered_at_sigterm(tmp_path):
    # review16: SIGTERM while an inline request holds the loop, and meanwhile a keep-alive
    # connection sends a request. Unread, it looked idle to the stopping loop, which closed it
    # (a reset: the request lost); read, it is answered, with `Connection: close`.
    with _server(tmp_path, workers=1) as (port, process), contextlib.ExitStack() as stack:
        worker = _children(process.pid)[0]
        holder, idle = (stack.enter_context(Client(port)) for _ in range(2))
        idle.send(_request("/inline/x"))
        assert idle.answer()[0] == 200
        holder.send(_request("/inline/slow?0.5"))
        time.sleep(0.1)  # the loop is inside the application
        idle.send(_request("/inline/y"))
        time.sleep(0.1)
        os.kill(worker, signal.SIGTERM)
        assert holder.answer()[0] == 200
        status, headers, body = idle.answer()
        assert (status, headers["connection"]) == (200, "close")
        assert orjson.loads(body)["path"] == "/inline/y"


def test_a_body_still_coming_after_its_refusal_at_sigterm_does_not_reset(tmp_path):
    # review14's find: the stopping loop ended once no connection was left, and the worker's
    # exit closed the lingering socket; the body's next bytes were answered with a reset.
    with _server(tmp_path, workers=1) as (port, process), Client(port) as client:
        client.send(_request("/x", "Content-Length: 5000\r\n"))
        time.sleep(0.2)  # refused: lingering
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        for _ in range(5):
            client.send(b"a" * 1000)
            time.sleep(0.05)
        status, headers, _ = client.answer()
        assert (status, headers["connection"]) == (413, "close")


def test_a_request_sent_within_keepalive_is_not_dropped_while_the_loop_was_held(tmp_path):
    # review14's find: after an inline request held the loop past keepalive_seconds, the sweep
    # judged another connection by its last read and closed it with its next request unread
    # in the socket.
    with (
        _server(tmp_path, workers=1) as (port, _),
        Client(port) as keep,
        Client(port) as holder,
    ):
        keep.send(_request("/inline/first"))
        assert keep.answer()[0] == 200
        holder.send(_request("/inline/slow?1.6"))
        time.sleep(0.3)  # idle 0.3 s of keepalive_seconds 1
        keep.send(_request("/inline/second"))
        status, _, body = keep.answer()
        assert (status, orjson.loads(body)["path"]) == (200, "/inline/second")
        assert holder.answer()[0] == 200


def test_a_request_complete_in_time_is_not_408_while_the_loop_was_held(tmp_path):
    # The same find for request_seconds: complete 0.3 s after it began, answered 408.
    with (
        _server(tmp_path, workers=1) as (port, _),
        Client(port) as upload,
        Client(port) as holder,
    ):
        upload.send(b"POST /inline/up HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(0.1)
        holder.send(_request("/inline/slow?1.6"))
        time.sleep(0.2)
        upload.send(b"world")
        status, _, body = upload.answer()
        assert status == 200, body
        assert orjson.loads(body)["body"] == "helloworld"
        assert holder.answer()[0] == 200


def test_a_worker_that_dies_is_replaced(tmp_path):
    with _server(tmp_path) as (port, process):
        before = _children(process.pid)
        os.kill(before[0], signal.SIGKILL)
        for _ in range(100):
            after = _children(process.pid)
            if len(after) == 2 and before[0] not in after:
                break
            time.sleep(0.05)
        assert len(after) == 2 and before[0] not in after
        pids = set()
        for _ in range(20):  # both workers answer
            with Client(port) as client:
                client.send(_request("/inline/x"))
                pids.add(orjson.loads(client.answer()[2])["pid"])
        assert pids <= set(after)
        assert "stopped (status 9)" in process.log.read_text()


def test_the_api_process_runs_decisions_and_ad_tags_on_the_loop():
    from config.api_wsgi import inline

    assert inline("/api/v1/decisions") and inline("/vast/4.2") and inline("/vmap/1.0")
    # They may wait on PostgreSQL: the pool.
    assert not inline("/api/v1/events") and not inline("/t/abc") and not inline("/api/v1/reports")


def test_header_names_kept_are_bounded():
    from config import wsgi_server

    for number in range(wsgi_server.KNOWN_NAMES + 100):
        assert wsgi_server._environ_key(b"X-Made-Up-%d" % number) == f"HTTP_X_MADE_UP_{number}"
    assert len(wsgi_server.ENVIRON_KEYS) == wsgi_server.KNOWN_NAMES
    assert wsgi_server._environ_key(b"content-type") == "CONTENT_TYPE"
    assert wsgi_server._environ_key(b"X_Forwarded_For") == ""


@pytest.mark.parametrize(
    "data",
    [
        b"CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://a:99999/x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://a@/x HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
    ids=["connect", "port", "userinfo"],
)
def test_a_target_the_server_cannot_read_is_a_400_not_a_dead_worker(server, data):
    # review13's find: httptools.parse_url raised on the loop's thread and took the worker down.
    port, process = server
    workers = _children(process.pid)
    with Client(port) as client:
        client.send(data)
        assert client.answer()[0] == 400
    with Client(port) as client:
        client.send(_request("/inline/after"))
        assert client.answer()[0] == 200
    assert _children(process.pid) == workers


@pytest.mark.parametrize("path", ["/euro", "/inline/euro"])
def test_an_answer_the_server_cannot_write_is_a_500(server, path):
    # review13's find: on the pool the connection stayed busy for ever; inline, the worker died.
    port, process = server
    workers = _children(process.pid)
    with Client(port) as client:
        client.send(_request(path) + _request("/inline/after"))
        assert client.answer()[0] == 500
        assert orjson.loads(client.answer()[2])["path"] == "/inline/after"
    assert _children(process.pid) == workers


def test_pipelined_heads_over_the_limit_together_are_all_answered(server):
    port, _ = server
    with Client(port) as client:
        # 150 small requests (~4.5 kB together, over max_head_bytes 4096) in one write, the
        # last head split across two writes: each head counts alone.
        client.send(_request("/inline/x") * 150 + b"GET /inline/last HTTP/1.1\r\nHo")
        time.sleep(0.2)
        client.send(b"st: t\r\n\r\n")
        assert [client.answer()[0] for _ in range(151)] == [200] * 151


def test_a_head_under_the_limit_sent_in_two_parts_is_not_refused(server):
    port, _ = server
    with Client(port) as client:
        head = _request("/inline/x", extra=f"X-Big: {'a' * 2500}\r\n")  # under 4096
        client.send(head[:-10])
        time.sleep(0.2)
        client.send(head[-10:])
        assert client.answer()[0] == 200


def test_100_continue_comes_after_the_answers_before_it(server):
    port, _ = server
    with Client(port) as client:
        client.send(
            _request("/slow?0.2")
            + b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert client.answer()[0] == 200  # the first request's, not the second's interim one
        assert client.answer()[0] == 100
        client.send(b"hello")
        assert orjson.loads(client.answer()[2])["body"] == "hello"


def test_trailer_fields_do_not_become_request_headers(server):
    port, _ = server
    answer = _echoed(
        port,
        b"POST /inline/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\nHost: evil\r\n\r\n",
    )
    assert answer["body"] == "hello"
    assert answer["headers"] == {"HTTP_HOST": "t", "HTTP_TRANSFER_ENCODING": "chunked"}


def test_sigterm_lets_a_body_being_read_finish(tmp_path):
    with _server(tmp_path, workers=1) as (port, process), Client(port) as client:
        client.send(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        client.send(b"world")
        status, headers, body = client.answer()
        assert (status, headers["connection"]) == (200, "close")
        assert orjson.loads(body)["body"] == "helloworld"


def test_out_of_descriptors_the_worker_does_not_spin_on_accept(tmp_path):
    # 80 clients against a worker allowed 64 descriptors: the rest wait in the backlog, and the
    # worker tries accept() again at its next sweep, not in a busy loop (review13's find).
    with _server(tmp_path, workers=1, descriptors=64) as (port, process):
        clients = [Client(port) for _ in range(80)]
        try:
            time.sleep(1.1)
            assert process.log.read_text().count("accept failed") <= 4
        finally:
            for client in clients:
                client.sock.close()


def test_workers_stop_when_their_master_is_killed(tmp_path):
    with _server(tmp_path) as (port, process):
        workers = _children(process.pid)
        _kill_and_expect_workers_stopped(process, workers)


def test_no_stray_100_continue_after_the_final_answer(server):
    # review13b's find: a Continue owed behind a slow answer went out after the POST's own.
    port, _ = server
    with Client(port) as client:
        client.send(
            _request("/slow?0.2")
            + b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            + b"hello"  # sent without waiting for the 100
        )
        assert [client.answer()[0] for _ in range(2)] == [200, 200]
        client.send(_request("/inline/next"))
        assert orjson.loads(client.answer()[2])["path"] == "/inline/next"


def test_a_head_under_the_limit_sent_in_many_parts_is_not_refused(server):
    port, _ = server
    with Client(port) as client:
        head = _request("/inline/x", extra=f"X-Big: {'a' * 2500}\r\n")  # under 4096
        for start in range(0, len(head), 250):
            client.send(head[start : start + 250])
            time.sleep(0.02)
        assert client.answer()[0] == 200


def test_a_trailer_field_is_bounded_as_a_head_is(server):
    # review13b's find: a trailer field that never ends was read without limit.
    port, _ = server
    with Client(port) as client:
        client.send(
            b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: "
        )
        for _ in range(4):
            client.send(b"a" * 4000)  # 16 kB of one field against max_head_bytes 4096
            time.sleep(0.05)
        status, headers, _ = client.answer()
        assert (status, headers["connection"]) == (431, "close")


def test_an_inline_application_that_exits_is_a_500_not_a_dead_worker(server):
    port, process = server
    workers = _children(process.pid)
    with Client(port) as client:
        client.send(_request("/inline/exit"))
        assert client.answer()[0] == 500
    assert _children(process.pid) == workers


def test_sigterm_while_out_of_descriptors_stops_cleanly(tmp_path):
    with _server(tmp_path, workers=1, descriptors=64, graceful_seconds=2.0) as (port, process):
        clients = [Client(port) for _ in range(80)]
        try:
            time.sleep(0.5)  # accept failed, the listener set aside until the next sweep
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
        finally:
            for client in clients:
                client.sock.close()
        log = process.log.read_text()
        assert "accept failed" in log
        assert "Traceback" not in log


def test_workers_stop_when_their_master_dies_while_they_import(tmp_path, monkeypatch):
    # review13b's find: a worker read its master's pid after the import, by then init's. Now the
    # kernel's parent-death signal stops it, at once.
    monkeypatch.setenv("WSGI_APPS_IMPORT_SECONDS", "1.5")
    with _server(tmp_path, ready=False) as (_, process):
        time.sleep(0.5)
        workers = _children(process.pid)
        assert len(workers) == 2
        _kill_and_expect_workers_stopped(process, workers)


def test_an_absolute_target_names_the_host_and_cookies_join_as_cookies(server):
    port, _ = server
    answer = _echoed(
        port,
        b"GET http://example.com:8080/inline/abs?q=1 HTTP/1.1\r\nHost: other\r\n"
        b"Cookie: a=1\r\nCookie: b=2\r\n\r\n",
    )
    assert (answer["path"], answer["query"]) == ("/inline/abs", "q=1")
    assert answer["headers"]["HTTP_HOST"] == "example.com:8080"  # the target's, not the field's
    assert answer["headers"]["HTTP_COOKIE"] == "a=1; b=2"


def test_http_1_1_without_a_host_is_refused(server):
    port, _ = server
    with Client(port) as client:
        client.send(b"GET /inline/x HTTP/1.1\r\nX-Other: 1\r\n\r\n")
        status, headers, body = client.answer()
        assert (status, orjson.loads(body)["detail"]) == (400, "The request has no Host header.")
        assert client.closed()


@pytest.mark.parametrize("framing", ["Content-Length: 5", "Transfer-Encoding: chunked"])
def test_an_upgrade_with_a_body_is_refused_not_answered_without_it(server, framing):
    # llhttp ends an Upgrade request at its head (what follows would be the new protocol), so
    # the application was called with an empty body: an event batch sent so (curl's h2c
    # upgrade) was answered as if it held nothing. This server switches no protocol.
    port, _ = server
    body = b"hello" if framing.startswith("Content") else b"5\r\nhello\r\n0\r\n\r\n"
    with Client(port) as client:
        client.send(
            b"POST /inline/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
            + framing.encode()
            + b"\r\n\r\n"
            + body
        )
        status, headers, answer = client.answer()
        assert status == 400
        assert orjson.loads(answer)["detail"] == (
            "This server does not switch protocols: send the request without Upgrade."
        )
        assert headers["connection"] == "close"
        assert client.closed()


def test_an_upgrade_without_a_body_is_answered_in_http_1_1_then_closed(server):
    port, _ = server
    with Client(port) as client:
        client.send(
            b"GET /inline/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\n\r\n"
        )
        status, headers, answer = client.answer()
        assert (status, orjson.loads(answer)["path"]) == (200, "/inline/x")
        assert headers["connection"] == "close"
        assert client.closed()


class _FailingListener:
    """A listening socket whose next accept() fails with `code`."""

    def __init__(self, listener: socket.socket, code: int) -> None:
        self.listener, self.code = listener, code

    def fileno(self) -> int:
        return self.listener.fileno()

    def accept(self):
        raise OSError(self.code, os.strerror(self.code))


@pytest.mark.parametrize(("code", "listening"), [(errno.EPROTO, True), (errno.EMFILE, False)])
def test_a_pending_connections_own_error_does_not_stop_the_loop_accepting(code, listening):
    # accept(2) passes a pending connection's network error on (EPROTO, ENETUNREACH, ...): that
    # connection's, to pass by. The loop stopped accepting until its next sweep (up to a
    # second) as if out of descriptors, which only EMFILE and its kind mean (review16).
    with socket.create_server(("127.0.0.1", 0)) as listener:
        worker = Worker(
            listener, lambda *_: [], lambda _: True, loops=1, threads=1, limits=Limits()
        )
        loop = worker.loops[0]
        try:
            loop._listen()
            loop.listener = _FailingListener(listener, code)
            assert loop._accept() is listening  # whether another connection may wait
            assert loop.accepting is listening
            assert loop.loads.counts[loop.slot] == (0 if listening else Loads.NOT_LISTENING)
        finally:
            loop.poll.close()
            worker.pool.shutdown()
