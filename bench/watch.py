"""The viewer app over HTTP, on PostgreSQL and Redis, against `web:` (uvicorn, ASGI, 2 workers).

On the demo world (`manage.py setup_demo`: the synthetic catalog, three simulated days, the
first training; BENCH_WATCH_VIEWERS viewers a day), prints:

1. the home page (`GET /watch/home`) of the five profiles, each browser bound to its profile
   by choosing it as a person does (CSRF token, then the profile's form): the first request of
   each profile (the engagement champion scores every title it may watch, one batched call)
   and then p50/p99 at 1 and 4 connections, the target being p99 <= 150 ms with the model;
2. playback events stored per second: players (4 connections, one viewing session each, as
   many profiles) POST batches of 10 events, as the player does every 2 s, to
   `/watch/api/sessions/<id>/events`; the events counted in the database must equal those the
   answers said were stored;

with the CPU each request cost the server, and a machine reference (a fixed pure-Python and
a fixed numpy workload). When the first training promotes no engagement model (its candidate
must beat the base rate), the bench promotes the candidate: the figure is the cost of serving
a model, whatever its quality. Every run drops and creates the scratch database and flushes
the Redis db; it skips, exiting 0, when PostgreSQL or Redis does not answer.

    python bench/watch.py
    BENCH_DATABASE_URL   postgres://postgres@127.0.0.1:5432/interlude_watch_bench (says bench)
    BENCH_REDIS_URL      redis://127.0.0.1:6379/3
    BENCH_WATCH_VIEWERS=900 BENCH_HTTP_SECONDS=10   (smaller for a quick run)
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import platform
import re
import sys
import time
import urllib.parse
import urllib.request
from contextlib import redirect_stdout
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

import _cpu  # noqa: E402  (helpers beside this file)
import _http  # noqa: E402
import _scratch  # noqa: E402
from _report import Report, percentile  # noqa: E402

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/interlude_watch_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
VIEWERS = int(os.environ.get("BENCH_WATCH_VIEWERS", "900"))
HTTP_SECONDS = int(os.environ.get("BENCH_HTTP_SECONDS", "10"))
SECRET_KEY = "bench-only-secret-key-7c1d9e3f5a2b4c6d8e0f1a3b5c7d9e1f"
EVENTS_PER_BATCH = 10
PLAYERS = 4

TARGET_HOME_P99_MS = 150.0


def main() -> int:
    database_name = urlsplit(DATABASE_URL).path.lstrip("/")
    if "bench" not in database_name:
        print(f"refused: {database_name!r} is dropped each run, so its name must say 'bench'")
        return 2
    unreachable = _unreachable()
    if unreachable:
        print(f"skipped: {unreachable}")
        return 0
    started = time.perf_counter()
    import redis

    _scratch.recreate_database(DATABASE_URL, database_name)
    redis.Redis.from_url(REDIS_URL).flushdb()
    env = {
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": _http.HOST,
        "DJANGO_SECURE_COOKIES": "false",  # plain HTTP on 127.0.0.1: cookies must travel
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    report = Report()
    report.line(_machine())
    report.line(_scratch.machine_reference())
    seeding = time.perf_counter()
    with redirect_stdout(io.StringIO()):
        call_command("setup_demo", days=3, viewers=VIEWERS)
        # As in production (DEBUG off): pages name their static files from the manifest.
        call_command("collectstatic", interactive=False, verbosity=0)
    report.line(
        f"Demo world ({VIEWERS} viewers a day) set up in {time.perf_counter() - seeding:.0f} s"
    )
    report.line(_champion())

    failures = 0
    server_env = os.environ | env
    with _http.asgi_server(base_dir=BASE_DIR, env=server_env, loop="uvloop", http="httptools") as (
        port,
        pid,
    ):
        profiles = _profiles()
        failures += home_page(report, port, pid, profiles)
        failures += playback_events(report, port, pid, profiles)
    report.verdicts()
    print(f"\nbench/watch.py done in {time.perf_counter() - started:.0f} s")
    return 1 if failures else 0


def _unreachable() -> str | None:
    import redis

    unreachable = _scratch.postgres_unreachable(DATABASE_URL)
    if unreachable:
        return unreachable
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as error:
        return f"Redis does not answer at {REDIS_URL} ({_scratch.first_line(error)})"
    return None


def _machine() -> str:
    import redis
    from django.db import connection

    postgres = connection.cursor().connection.info.server_version
    redis_version = redis.Redis.from_url(REDIS_URL).info("server")["redis_version"]
    return (
        f"Machine: {os.cpu_count()} cores ({_scratch.cpu_model()}), Python "
        f"{platform.python_version()}, PostgreSQL {postgres // 10000}.{postgres % 10000}, "
        f"Redis {redis_version}"
    )


def _champion() -> str:
    from ml import selectors as ml_selectors
    from ml import services as ml_services
    from ml.models import ModelKind, ModelVersion

    versions = ml_selectors.model_versions(kind=ModelKind.ENGAGEMENT)
    if not versions:
        raise SystemExit("The first training made no engagement model: nothing to measure.")
    latest = ModelVersion.objects.get(pk=versions[-1].pk)
    if latest.status != ModelVersion.Status.CHAMPION:
        ml_services.model_version_promote(model_version=latest, reason="bench/watch.py")
        return f"Engagement model v{latest.version} promoted by the bench (the training kept it)"
    return f"Engagement model v{latest.version} is the champion (promoted by the training)"


def _profiles() -> list[int]:
    from engagement import selectors

    return [profile.viewer.pk for profile in selectors.watch_profiles()]


class Browser:
    """A browser bound to one profile: its cookies and its CSRF token."""

    def __init__(self, port: int, viewer_id: int) -> None:
        self.base = f"http://{_http.HOST}:{port}"
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"{self.base}/watch/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"csrfmiddlewaretoken": token}).encode()
        opener.open(f"{self.base}/watch/profiles/{viewer_id}", data=form).read()
        cookies = {cookie.name: cookie.value for cookie in jar}
        self.csrf = cookies["csrftoken"]
        self.cookie = f"csrftoken={cookies['csrftoken']}; sessionid={cookies['sessionid']}"
        self.opener = opener

    def open_session(self, title_id: int) -> int:
        request = urllib.request.Request(
            f"{self.base}/watch/api/sessions",
            data=json.dumps({"title_id": title_id, "device": "desktop"}).encode(),
            headers={"Content-Type": "application/json", "X-CSRFToken": self.csrf},
        )
        return json.loads(self.opener.open(request).read())["session_id"]


def home_page(report: Report, port: int, pid: int, profiles: list[int]) -> int:
    browsers = [Browser(port, viewer_id) for viewer_id in profiles]
    _forget_homes()  # choosing a profile opened its home: the first requests below are cold
    report.line(f"\nGET /watch/home, {len(browsers)} profiles (uvicorn, 2 workers)")
    first = []
    for browser in browsers:
        began = time.perf_counter()
        asyncio.run(_requests(port, [("GET", "/watch/home", browser, b"")], 1, None))
        first.append((time.perf_counter() - began) * 1000)
    report.line(
        "  first request of each profile (nothing cached: scores every title, renders): "
        + ", ".join(f"{value:.0f}" for value in first)
        + " ms"
    )
    failures = 0
    for connections in (1, 4):
        requests = [("GET", "/watch/home", browser, b"") for browser in browsers]
        result, server_ms = _measured(pid, port, requests, connections)
        report.line(
            f"  {connections} connection(s): {result['count'] / result['seconds']:.0f} pages/s, "
            f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, max {result['max']:.1f} ms; "
            f"server CPU {server_ms:.1f} ms a page; non-200: {result['errors']}"
        )
        failures += result["errors"]
        if connections == 1:
            report.target(
                "home p99 with the model, 1 connection",
                f"{result['p99']:.1f} ms",
                result["p99"] <= TARGET_HOME_P99_MS,
            )
    return failures


def _forget_homes() -> None:
    """Drop the viewer app's cached rankings, pages and catalog cards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter("*watch:*"):
        client.delete(key)


def playback_events(report: Report, port: int, pid: int, profiles: list[int]) -> int:
    from catalog.models import Title
    from engagement.models import PlaybackEvent

    adults = profiles[:PLAYERS]
    title_id = Title.objects.exclude(maturity_rating__in=["G", "PG"]).order_by("pk").first().pk
    players = []
    for viewer_id in adults:
        browser = Browser(port, viewer_id)
        players.append((browser, browser.open_session(title_id)))
    counter = iter(range(10**9))

    def batch(browser: Browser, session_id: int) -> tuple[str, str, Browser, bytes]:
        events = [
            {
                "event_id": f"b{next(counter)}",
                "kind": kind,
                "position_seconds": 60,
                "offset_ms": 1000,
                "detail": {"from": 60, "to": 70} if kind == "seek" else {},
            }
            for kind in ("pause", "resume", "seek", "play", "pause") * (EVENTS_PER_BATCH // 5)
        ]
        body = json.dumps({"events": events, "watched_seconds": 60}).encode()
        return ("POST", f"/watch/api/sessions/{session_id}/events", browser, body)

    report.line(
        f"\nPOST /watch/api/sessions/<id>/events: {PLAYERS} players, {EVENTS_PER_BATCH} events a "
        f"batch, {HTTP_SECONDS} s"
    )
    requests = _BatchMaker(players, batch)
    asyncio.run(_requests(port, requests, PLAYERS, 1.0))  # warm up both workers
    before = PlaybackEvent.objects.count()
    result, server_ms = _measured(pid, port, requests, PLAYERS, warm_up=False)
    stored = PlaybackEvent.objects.count() - before
    per_second = result["stored"] / result["seconds"]
    report.line(
        f"  {result['count'] / result['seconds']:.0f} batches/s = {per_second:.0f} events/s "
        f"stored; p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms a batch; server CPU "
        f"{server_ms / EVENTS_PER_BATCH:.2f} ms an event; non-200: {result['errors']}"
    )
    report.line(f"  in the database: {stored:,} events; the answers said {result['stored']:,}")
    report.target("playback events stored over HTTP", f"{per_second:.0f}/s", per_second > 0)
    return result["errors"] + (stored != result["stored"])


class _BatchMaker:
    """Endless fresh batches (new event ids), player after player."""

    def __init__(self, players, make) -> None:
        self.players, self.make = players, make

    def __getitem__(self, index: int):
        browser, session_id = self.players[index % len(self.players)]
        return self.make(browser, session_id)

    def __len__(self) -> int:
        return len(self.players)


def _measured(
    pid: int, port: int, requests, connections: int, warm_up: bool = True
) -> tuple[dict, float]:
    if warm_up:
        asyncio.run(_requests(port, requests, connections, 1.0))  # both workers, connections
    server_before = _cpu.tree_seconds(pid)
    with _cpu.Meter():
        result = asyncio.run(_requests(port, requests, connections, HTTP_SECONDS))
    server_ms = (_cpu.tree_seconds(pid) - server_before) / max(result["count"], 1) * 1000
    return result, server_ms


async def _requests(port: int, requests, connections: int, seconds: float | None) -> dict:
    """Keep-alive HTTP/1.1 connections sending `requests` in turn until `seconds` pass (None:
    each request once)."""
    latencies: list[float] = []
    errors = 0
    stored = 0
    began = time.perf_counter()
    deadline = began + seconds if seconds is not None else None
    turns = iter(range(10**9)) if seconds is not None else iter(range(len(requests)))

    async def client() -> None:
        nonlocal errors, stored
        reader, writer = await asyncio.open_connection(_http.HOST, port)
        try:
            for turn in turns:
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                method, path, browser, body = requests[turn % len(requests)]
                head = (
                    f"{method} {path} HTTP/1.1\r\nHost: {_http.HOST}:{port}\r\n"
                    f"Cookie: {browser.cookie}\r\nX-CSRFToken: {browser.csrf}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                sent = time.perf_counter()
                writer.write(head.encode() + body)
                status, payload = await _http._read_response(reader)
                latencies.append(time.perf_counter() - sent)
                if status != 200:
                    errors += 1
                elif method == "POST":
                    stored += json.loads(payload)["stored"]
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "count": len(latencies),
        "seconds": elapsed,
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "max": latencies[-1] * 1000,
        "errors": errors,
        "stored": stored,
    }


if __name__ == "__main__":
    sys.exit(main())
