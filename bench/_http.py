"""HTTP helpers of bench/decisions.py: the real servers as subprocesses (config.api_server for the
integration API, uvicorn for pages), and the load generators (wrk when installed, else a small
asyncio HTTP/1.1 client). Traffic goes to 127.0.0.1 only, and every run is bounded in time or
in count."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "decisions.lua"


PLAYER_AGENT = "InterludeBenchPlayer/1.0"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextmanager
def asgi_server(*, base_dir: Path, env: dict[str, str], loop: str, http: str, workers: int = 2):
    """`uvicorn config.asgi:application` as the Procfile's `web:` runs it, with the given event
    loop and HTTP parser; yields (port, pid) once /healthz answers, and stops it on the way
    out."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "config.asgi:application",
        "--host", HOST, "--port", str(port), "--workers", str(workers), "--no-access-log",
        "--loop", loop, "--http", http,
    ]  # fmt: skip
    with _server(command, base_dir=base_dir, env=env, port=port, name="uvicorn") as pid:
        yield port, pid


def api_server_kind() -> str:
    """What `python -m config.api_server` runs, as config/api_server.py reads its settings."""
    workers = os.environ.get("WEB_CONCURRENCY", "2")
    threads = os.environ.get("API_THREADS", "2")
    if os.environ.get("API_SERVER") == "granian":
        return f"granian, WSGI, {workers} workers × {threads} threads"
    loops = os.environ.get("API_LOOPS", "1")
    return f"config/wsgi_server.py, WSGI, {workers} workers × {loops} loops + a pool of {threads}"


@contextmanager
def wsgi_server(*, base_dir: Path, env: dict[str, str], workers: int = 2):
    """`python -m config.api_server` as the Procfile's `api:` runs it (WSGI); yields
    (port, pid) once /healthz answers."""
    port = free_port()
    command = [sys.executable, "-m", "config.api_server"]
    env = env | {"PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    with _server(command, base_dir=base_dir, env=env, port=port, name="api") as pid:
        yield port, pid


@contextmanager
def _server(command: list[str], *, base_dir: Path, env: dict[str, str], port: int, name: str):
    with tempfile.NamedTemporaryFile("w+", prefix=f"bench-{name}-", suffix=".log") as log:
        server = subprocess.Popen(
            command, cwd=base_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            _wait_until_healthy(server, port, log.name, name)
            yield server.pid
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            kept = os.environ.get("BENCH_SERVER_LOG")  # a copy of the server's log, to read
            if kept:
                shutil.copyfile(log.name, f"{kept}.{name}")


def _wait_until_healthy(server: subprocess.Popen, port: int, log_path: str, name: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"{name} exited with {server.returncode}:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer /healthz in 60 s:\n{_tail(log_path)}")
        time.sleep(0.2)


def _tail(path: str, lines: int = 30) -> str:
    with open(path) as log:
        return "".join(log.readlines()[-lines:])


@dataclass
class LoadResult:
    connections: int
    seconds: float
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    bodies: list[bytes] = field(default_factory=list)
    server_cpu_ms: float = 0.0  # CPU of the server's processes per request
    services_cpu_ms: float = 0.0  # CPU of PostgreSQL and Redis per request
    other_cores: float = 0.0  # cores other processes used meanwhile

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk_run(*, port: int, path: str, key: str, bodies_file: str, connections: int, seconds: int):
    """wrk with the Lua script that POSTs the bodies of `bodies_file` in turn."""
    command = [
        "wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency",
        "--timeout", "5s", "-s", str(WRK_SCRIPT), f"http://{HOST}:{port}{path}", "--",
        bodies_file, key,
    ]  # fmt: skip
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    match = re.search(r"^WRK_RESULT (\{.*\})$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    result = json.loads(match.group(1))
    return LoadResult(
        connections=connections,
        seconds=result["duration_us"] / 1e6,
        requests=result["requests"],
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        max_ms=result["max_us"] / 1000,
        non_2xx=result["status_errors"],
        socket_errors=result["socket_errors"],
    )


def python_run(
    *,
    port: int,
    path: str,
    key: str,
    bodies: list[bytes],
    connections: int,
    seconds: float | None = None,
    keep_bodies: bool = False,
    get_paths: list[str] | None = None,
) -> LoadResult:
    """A keep-alive HTTP/1.1 client on asyncio: `connections` connections POST `bodies`,
    round-robin until `seconds` pass, or (seconds=None) each body once. With `get_paths`, they
    GET those paths instead (ad tags: the query is the request)."""
    return asyncio.run(
        _python_run(port, path, key, bodies, connections, seconds, keep_bodies, get_paths)
    )


async def _python_run(
    port, path, key, bodies, connections, seconds, keep_bodies, get_paths=None
) -> LoadResult:
    latencies: list[float] = []
    statuses: list[int] = []
    kept: list[bytes] = []
    started = time.perf_counter()
    deadline = started + seconds if seconds is not None else None
    # Shared by the connections: each takes the next body (one thread, so no lock).
    positions = itertools.count() if seconds is not None else iter(range(len(bodies)))

    async def client() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for position in positions:
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                if get_paths:
                    body = b""
                    target = get_paths[position % len(get_paths)]
                    head = (
                        f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                        f"User-Agent: {PLAYER_AGENT}\r\n\r\n"  # a tag without one is a bot's
                    )
                else:
                    body = bodies[position % len(bodies)]
                    head = (
                        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n"
                    )
                sent = time.perf_counter()
                writer.write(head.encode() + body)
                status, payload = await _read_response(reader)
                latencies.append(time.perf_counter() - sent)
                statuses.append(status)
                if keep_bodies:
                    kept.append(payload)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile(share: float) -> float:
        return latencies[min(len(latencies) - 1, int(share * len(latencies)))] * 1000

    return LoadResult(
        connections=connections,
        seconds=elapsed,
        requests=len(latencies),
        p50_ms=percentile(0.50),
        p99_ms=percentile(0.99),
        max_ms=latencies[-1] * 1000,
        non_2xx=sum(1 for status in statuses if not 200 <= status < 300),
        socket_errors=0,
        bodies=kept,
    )


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    chunks = []
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
    await reader.readexactly(2)
    return status, b"".join(chunks)
