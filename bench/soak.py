"""Soak: SOAK_SECONDS (default 600) of steady traffic against the real server processes, on
PostgreSQL and Redis: decisions and event batches on the Procfile's `api:` process
(config/wsgi_server.py), tracking links on its `web:` process (uvicorn). Prints the requests
answered and failed, the events stored against those accepted, and each server process's memory
(RSS) sampled through the run: after the warm-up (the first fifth of the run, at least 30 s) it
must stay within 10 %.

Traffic, each second: SOAK_DECISIONS_PER_SECOND decisions (default 50) from two player threads;
every slot's impression, quartiles and complete, sent a second later in one batch per second
(POST /api/v1/events) by a third thread, except one slot in ten, whose impression is fired as a
tracking link (GET /t/<token>/impression) on the web process, as a browser player would.

    flock /tmp/bench.lock .venv/bin/python bench/soak.py
    SOAK_SECONDS=60 SOAK_DECISIONS_PER_SECOND=20 ...   (a short run)
    BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/interlude_soak_bench: made
    and dropped each run, so its name must say "bench"), BENCH_REDIS_URL (default db 3, flushed)
"""

from __future__ import annotations

import http.client
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

import _cpu  # noqa: E402  (helpers beside this file)
import _http  # noqa: E402
import _scratch  # noqa: E402

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/interlude_soak_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
DECISIONS_PER_SECOND = int(os.environ.get("SOAK_DECISIONS_PER_SECOND", "50"))
SAMPLE_SECONDS = 10
WARM_UP = max(30, SECONDS // 5)
MEMORY_TOLERANCE = 0.10
LINK_SHARE = 10  # one slot in ten fires its impression as a tracking link
LATER_EVENTS = ("first_quartile", "midpoint", "third_quartile", "complete")
SECRET_KEY = "bench-only-secret-key-5c1e9a7d3b2f8e4a6c0d2b4f6a8c0e2d"


class Tally:
    """What the load threads saw, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()  # "<what>: <status or error>"
        self.events: Counter[str] = Counter()  # accepted / duplicate / rejected:<reason>
        self.slots: list[str] = []  # tokens waiting for their batch
        self.latencies: dict[str, list[float]] = {}  # seconds of each answered request

    def answered(self, what: str, seconds: float) -> None:
        with self.lock:
            self.requests[what] += 1
            self.latencies.setdefault(what, []).append(seconds)

    def error(self, what: str, detail: object) -> None:
        with self.lock:
            self.errors[f"{what}: {detail}"] += 1


def main() -> int:
    database_name = urlsplit(DATABASE_URL).path.lstrip("/")
    if "bench" not in database_name:
        print(f"refused: {database_name!r} is dropped each run, so its name must say 'bench'")
        return 2
    unreachable = _scratch.postgres_unreachable(DATABASE_URL)
    if unreachable:
        print(f"skipped: {unreachable}")
        return 0
    import redis

    _scratch.recreate_database(DATABASE_URL, database_name)
    redis.Redis.from_url(REDIS_URL).flushdb()
    os.environ.update(
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        DJANGO_DEBUG="false",
        DJANGO_SECURE_SSL_REDIRECT="false",  # plain HTTP on 127.0.0.1
        DJANGO_SECRET_KEY=SECRET_KEY,
        DJANGO_ALLOWED_HOSTS=_http.HOST,
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    print(_machine())
    with _cpu.Meter() as idle:
        time.sleep(2)
    print(
        f"Before the run, other processes used {idle.usage.other_cores:.2f} of "
        f"{os.cpu_count()} cores; load average {_load()}"
    )
    try:
        return _soak()
    finally:
        from django.db import connections

        connections.close_all()
        _scratch.drop_database(DATABASE_URL, database_name)


def _machine() -> str:
    """The machine reference every bench prints (bench/_scratch.py)."""
    return _scratch.machine_reference()


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _soak() -> int:
    import _world

    from ads import services
    from ads.models import AdEvent

    world = _world.seed()
    services.index_changed()
    _, key = services.platform_key_create(name="soak")
    env = dict(os.environ)
    tally = Tally()
    rng = random.Random(11)
    bodies = [json.dumps(world.request(rng)).encode() for _ in range(5000)]
    with (
        _http.wsgi_server(base_dir=BASE_DIR, env=env) as (api_port, api_pid),
        _http.asgi_server(base_dir=BASE_DIR, env=env, loop="auto", http="auto") as (
            web_port,
            web_pid,
        ),
    ):
        print(
            f"Soak: {SECONDS} s at {DECISIONS_PER_SECOND} decisions/s (api: "
            f"{_http.api_server_kind()}, pid {api_pid}; web: uvicorn, pid {web_pid}); memory "
            f"sampled every {SAMPLE_SECONDS} s, "
            f"warm-up {WARM_UP} s",
            flush=True,
        )
        stop = threading.Event()
        began = time.monotonic()
        threads = [
            threading.Thread(
                target=_players,
                args=(tally, stop, api_port, web_port, key, bodies, n, began),
                daemon=True,
            )
            for n in range(2)
        ]
        threads.append(
            threading.Thread(target=_batches, args=(tally, stop, api_port, key), daemon=True)
        )
        for thread in threads:
            thread.start()
        samples: dict[str, list[tuple[float, int]]] = {}
        with _cpu.Meter() as meter:
            while (elapsed := time.monotonic() - began) < SECONDS:
                for name, rss in _server_rss({"api": api_pid, "web": web_pid}).items():
                    samples.setdefault(name, []).append((elapsed, rss))
                if int(elapsed) % 60 < SAMPLE_SECONDS:
                    with tally.lock:
                        done = sum(tally.requests.values())
                        errors = sum(tally.errors.values())
                    print(
                        f"  {elapsed:5.0f} s  {done:,} requests, {errors} errors, load {_load()}",
                        flush=True,
                    )
                time.sleep(SAMPLE_SECONDS - (time.monotonic() - began) % SAMPLE_SECONDS)
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        _batches_flush(tally, api_port, key)

    failures = _report(tally, samples, meter)
    achieved = tally.requests["decision"] / SECONDS
    print(
        f"Decisions: {achieved:.1f}/s of the {DECISIONS_PER_SECOND}/s offered"
        + ("" if achieved >= 0.95 * DECISIONS_PER_SECOND else " (the machine kept up no faster)")
    )
    stored = AdEvent.objects.count()
    accepted = tally.events["accepted"]
    print(
        f"Events stored {stored:,}, accepted {accepted:,}"
        + ("" if stored == accepted else "  MISMATCH")
    )
    failures += stored != accepted
    print(f"Load average at the end {_load()}")
    print("PASS" if not failures else f"FAIL ({failures})")
    return 1 if failures else 0


def _connection(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(_http.HOST, port, timeout=30)


def _call(
    connections: dict, port: int, method: str, path: str, body: bytes | None, headers: dict
) -> tuple[int, bytes]:
    """One request on a kept-alive connection, made again after a socket error."""
    if port not in connections:
        connections[port] = _connection(port)
    connection = connections[port]
    try:
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.read()
    except (OSError, http.client.HTTPException):
        connection.close()
        del connections[port]
        raise


def _players(tally, stop, api_port, web_port, key, bodies, number, began) -> None:
    """Half the decisions, paced to the second; one slot in ten fires its impression link."""
    rng = random.Random(number)
    connections: dict = {}
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "User-Agent": _http.PLAYER_AGENT,
    }
    per_thread = DECISIONS_PER_SECOND / 2
    sent = 0
    while not stop.is_set():
        due = (time.monotonic() - began) * per_thread
        if sent >= due:
            time.sleep(min(0.05, (sent + 1 - due) / per_thread))
            continue
        sent += 1
        asked = time.perf_counter()
        try:
            status, body = _call(
                connections, api_port, "POST", "/api/v1/decisions", rng.choice(bodies), headers
            )
        except (OSError, http.client.HTTPException) as error:
            tally.error("decision", type(error).__name__)
            continue
        tally.answered("decision", time.perf_counter() - asked)
        if status != 200:
            tally.error("decision", status)
            continue
        for slot in json.loads(body)["pod"]:
            token = urlsplit(slot["tracking"]["impression"]).path.split("/")[2]
            if rng.randrange(LINK_SHARE) == 0:
                _link(tally, connections, web_port, token)
                with tally.lock:
                    tally.slots.append(f"later:{token}")
            else:
                with tally.lock:
                    tally.slots.append(f"all:{token}")


def _link(tally, connections, web_port, token) -> None:
    asked = time.perf_counter()
    try:
        status, _ = _call(
            connections,
            web_port,
            "GET",
            f"/t/{token}/impression",
            None,
            {"User-Agent": _http.PLAYER_AGENT},
        )
    except (OSError, http.client.HTTPException) as error:
        tally.error("tracking link", type(error).__name__)
        return
    tally.answered("tracking link", time.perf_counter() - asked)
    with tally.lock:
        if status == 204:
            tally.events["accepted"] += 1
        else:
            tally.errors[f"tracking link: {status}"] += 1


def _batches(tally, stop, api_port, key) -> None:
    """Once a second, the events of the slots decided since the last batch."""
    connections: dict = {}
    while not stop.wait(1.0):
        _send_batch(tally, connections, api_port, key)


def _batches_flush(tally, api_port, key) -> None:
    _send_batch(tally, {}, api_port, key)


def _send_batch(tally, connections, api_port, key) -> None:
    with tally.lock:
        slots, tally.slots = tally.slots, []
    events = []
    for number, entry in enumerate(slots):
        kind, token = entry.split(":", 1)
        types = LATER_EVENTS if kind == "later" else ("impression", *LATER_EVENTS)
        events += [
            {"event_id": f"{token[:12]}-{number}-{event_type}", "token": token, "type": event_type}
            for event_type in types
        ]
    for start in range(0, len(events), 1000):
        body = json.dumps({"events": events[start : start + 1000]}).encode()
        asked = time.perf_counter()
        try:
            status, answer = _call(
                connections,
                api_port,
                "POST",
                "/api/v1/events",
                body,
                {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
        except (OSError, http.client.HTTPException) as error:
            tally.error("event batch", type(error).__name__)
            continue
        tally.answered("event batch", time.perf_counter() - asked)
        if status != 200:
            tally.error("event batch", status)
            continue
        for outcome in json.loads(answer)["results"]:
            status_ = outcome["status"]
            reason = outcome.get("reason")
            with tally.lock:
                tally.events[status_ if status_ == "accepted" else f"{status_}:{reason}"] += 1


def _server_rss(roots: dict[str, int]) -> dict[str, int]:
    """RSS in bytes of each process of each server's tree: "api master", "api worker 1", ..."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found = {}
    for server, root in roots.items():
        found[f"{server} master"] = _rss(root)
        for number, pid in enumerate(sorted(children.get(root, [])), start=1):
            found[f"{server} worker {number}"] = _rss(pid)
    return {name: rss for name, rss in found.items() if rss}


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _report(tally, samples, meter) -> int:
    failures = 0
    print("\nRequests: " + ", ".join(f"{n:,} {what}" for what, n in sorted(tally.requests.items())))
    for what, seconds in sorted(tally.latencies.items()):
        ordered = sorted(seconds)
        p50, p99 = (ordered[int(share * (len(ordered) - 1))] * 1000 for share in (0.5, 0.99))
        print(f"  {what}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ordered[-1] * 1000:.0f} ms")
    errors = sum(tally.errors.values())
    print(
        f"Errors: {errors}"
        + ("" if not errors else "  " + ", ".join(f"{w} ×{n}" for w, n in tally.errors.items()))
    )
    failures += errors
    print("Events: " + ", ".join(f"{n:,} {what}" for what, n in sorted(tally.events.items())))
    refused = sum(n for what, n in tally.events.items() if what != "accepted")
    failures += refused
    print(f"Client and server CPU: {meter.usage.describe()}")
    print(
        f"\nMemory (RSS, MB), after the {WARM_UP} s warm-up: first sample, max, last; "
        f"goal: max within {MEMORY_TOLERANCE:.0%} of the first"
    )
    for name, series in sorted(samples.items()):
        warm = [rss for at, rss in series if at >= WARM_UP]
        if not warm:
            continue
        first, highest, last = warm[0], max(warm), warm[-1]
        growth = highest / first - 1
        flat = growth <= MEMORY_TOLERANCE
        failures += not flat
        print(
            f"  {name:14s} {first / 2**20:7.1f} {highest / 2**20:7.1f} {last / 2**20:7.1f}"
            f"  {growth:+6.1%}  {'flat' if flat else 'GROWS'}"
        )
    return failures


if __name__ == "__main__":
    sys.exit(main())
