"""Event → staff screen: how long a playback event takes to reach an open /staff/sessions/
socket, with 200 sessions watching at once.

    [BENCH_DATABASE_URL=postgres://…/NAME BENCH_REDIS_URL=redis://…/N] \\
        python bench/live_sessions.py [--sessions 200] [--seconds 60] [--every 5] [--screens 2]

The database NAME (default interlude_bench_live) is dropped and made again, and the Redis
database (default 4) emptied: give the bench its own ("skipped" without PostgreSQL or Redis).
The bench seeds a small world, simulates two days of history and trains the models
(`train_models`: the live score serves as it would), then starts the real ASGI server
(uvicorn, one process) and opens `--screens` staff sockets to it, as open /staff/sessions/
pages do. Meanwhile `--sessions` sessions watch at once (sent by `--workers` threads): each
started through `viewing_session_start`, sending a batch of playback events every `--every`
seconds on average (stored, then `engagement.services.sessions_touched`, as the viewer app's
playback endpoint does after each batch), and ended through `viewing_session_finish` after a
few batches, when a new one takes its place. The latency of a batch is from just before it
is stored to the moment each screen has the session's new row; the goal is ≤ 1 s at p99
(issue 11). The viewing figures (the executive dashboard's) arrive at most every half second
per screen: their lag is measured from the oldest change they are the first to include.

Until the viewer app's playback endpoint is on main, batches go through the services in this
process (the endpoint calls the same), and the socket over HTTP from the server.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import random
import sys
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))
SECRET_KEY = "bench-only-secret-key-5b1e9d3f7a2c4e6b8d0f1a3c5e7b9d2f"
# Dropped and made again each run; Redis database emptied.
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/interlude_bench_live"
REDIS_URL = "redis://127.0.0.1:6379/4"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=5.0, help="mean seconds between batches")
    parser.add_argument("--screens", type=int, default=2, help="staff sockets open")
    parser.add_argument("--workers", type=int, default=4, help="threads sending the batches")
    options = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL", DATABASE_URL)
    redis_url = os.environ.get("BENCH_REDIS_URL", REDIS_URL)
    name = database_url.rsplit("/", 1)[1]
    if "bench" not in name and os.environ.get("BENCH_DATABASE_IS_SCRATCH") != "1":
        print(
            f"refused: {name!r} is dropped each run, so its name must say 'bench' (or set "
            "BENCH_DATABASE_IS_SCRATCH=1 for a database of your own)"
        )
        return 2
    import _scratch
    import redis

    problem = _scratch.postgres_unreachable(database_url)
    try:
        redis.Redis.from_url(redis_url).ping()
    except redis.RedisError as error:
        problem = problem or f"Redis does not answer at {redis_url} ({error})"
    if problem:
        print(f"skipped: {problem}")
        return 0
    _scratch.recreate_database(database_url, name)
    redis.Redis.from_url(redis_url).flushdb()
    os.environ |= {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CHANNEL_LAYER_PREFIX": "bench-live",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECURE_SSL_REDIRECT": "false",  # plain HTTP on 127.0.0.1
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    import django

    django.setup()
    from django.core.management import call_command
    from live_score import machine_reference

    quiet = open(os.devnull, "w")  # noqa: SIM115 - for the bench's life
    began = time.perf_counter()
    call_command("migrate", verbosity=0)
    call_command("seed_demo", viewers=1000, titles=120, no_progress=True, stdout=quiet)
    call_command("simulate_traffic", days=2, viewers=400, seed=3, no_progress=True, stdout=quiet)
    call_command("train_models", stdout=quiet)
    print(f"world: seeded, 2 days simulated, models trained in {time.perf_counter() - began:.0f} s")
    print(f"machine: {machine_reference()}")
    from ml.models import ModelKind, ModelVersion

    champion = ModelVersion.objects.filter(
        kind=ModelKind.LIVE_ENGAGEMENT, status=ModelVersion.Status.CHAMPION
    ).first()
    print(
        "live score: "
        + (f"champion v{champion.version}" if champion else "no champion: the prior alone")
    )
    cookie = _staff_cookie()
    from _http import asgi_server

    with asgi_server(
        base_dir=BASE_DIR, env=dict(os.environ), loop="uvloop", http="httptools", workers=1
    ) as (
        port,
        server_pid,
    ):
        return _run(options, port=port, server_pid=server_pid, cookie=cookie)


def _staff_cookie() -> str:
    """A signed-in staff user's session cookie, made as the login view makes it."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User

    staff = User.objects.create_user("bench-staff", password="x", is_staff=True)
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(staff.pk)
    store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    store[HASH_SESSION_KEY] = staff.get_session_auth_hash()
    store.save()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


class Screens:
    """The staff sockets, each in this process's second thread: when each screen got each
    session's rows, and the viewing figures."""

    def __init__(self, port: int, cookie: str, count: int) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws/staff/sessions/"
        self.headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
        self.count = count
        self.rows: list[dict[int, list[float]]] = [{} for _ in range(count)]
        self.viewing: list[list[tuple[float, int]]] = [[] for _ in range(count)]
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: Exception | None = None
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as error:  # reported by the main thread
            self.error = error
            self.ready.set()

    async def _main(self) -> None:
        import websockets

        sockets = [
            await websockets.connect(self.url, additional_headers=self.headers)
            for _ in range(self.count)
        ]
        for socket in sockets:
            first = json.loads(await socket.recv())
            assert first["type"] == "viewing", first
        self.ready.set()
        await asyncio.gather(*(self._listen(number, s) for number, s in enumerate(sockets)))

    async def _listen(self, number: int, socket) -> None:
        while not self.stop.is_set():
            try:
                raw = await asyncio.wait_for(socket.recv(), timeout=0.5)
            except TimeoutError:
                continue
            now = time.time()
            message = json.loads(raw)
            with self._lock:
                if message["type"] == "sessions":
                    for row in message["sessions"]:
                        self.rows[number].setdefault(row["id"], []).append(now)
                elif message["type"] == "viewing":
                    self.viewing[number].append((now, message["active_sessions"]))
        await socket.close()


def _run(options, *, port: int, server_pid: int, cookie: str) -> int:
    import _cpu
    from _report import percentile

    from catalog.models import Title, Viewer

    screens = Screens(port, cookie, options.screens)
    listener = threading.Thread(target=screens.run, daemon=True)
    listener.start()
    screens.ready.wait(30)
    if screens.error:
        print(f"the staff sockets failed: {screens.error!r}")
        return 1
    viewers = list(Viewer.objects.filter(is_kids=False).values_list("pk", flat=True)[:1000])
    titles = list(Title.objects.values_list("pk", flat=True))
    sent: dict[int, list[float]] = {}  # session id → when each of its changes was sent
    ends = time.time() + options.seconds
    workers = [
        Audience(
            number=number,
            sessions=options.sessions // options.workers
            + (number < options.sessions % options.workers),
            every=options.every,
            viewers=viewers,
            titles=titles,
            sent=sent,
            ends=ends,
        )
        for number in range(options.workers)
    ]
    meter = _cpu.Meter().__enter__()
    server_began = _cpu.tree_seconds(server_pid)
    threads = [threading.Thread(target=worker.run) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    changes = sum(worker.changes for worker in workers)
    time.sleep(2)  # the last rows arrive
    screens.stop.set()
    listener.join(5)
    server_seconds = _cpu.tree_seconds(server_pid) - server_began
    meter.__exit__(None, None, None)
    usage = meter.usage

    latencies: list[float] = []
    missing = 0
    for number in range(options.screens):
        received = screens.rows[number]
        for session_id, sends in sent.items():
            arrivals = received.get(session_id, [])
            for index, sent_at in enumerate(sends):
                if index < len(arrivals):
                    latencies.append(arrivals[index] - sent_at)
                else:
                    missing += 1
    latencies.sort()
    lags = _viewing_lags(screens, sent)
    print(
        f"\n{options.sessions} sessions at once for {options.seconds:.0f} s, a batch every "
        f"{options.every:g} s each on average: {changes:,} changes "
        f"({changes / options.seconds:.0f}/s), {options.screens} staff screens"
    )
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(
        f"event → screen: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max "
        f"{latencies[-1] * 1000:.0f} ms over {len(latencies):,} rows; {missing} never arrived"
    )
    if lags:
        print(
            f"viewing figures (executive dashboard): p50 lag {percentile(lags, 0.5) * 1000:.0f} "
            f"ms, p99 {percentile(lags, 0.99) * 1000:.0f} ms, over {len(lags):,} messages"
        )
    print(
        f"  ({usage.describe()}; the server's CPU: {server_seconds * 1000 / changes:.2f} ms per "
        f"change, {options.screens} screens)"
    )
    verdict = p99 <= 1.0 and missing == 0
    outcome = "PASS" if verdict else "MISS"
    print(f"\nTarget: event → staff screen p99 ≤ 1 s: {p99 * 1000:.0f} ms  {outcome}")
    return 0


class Audience:
    """Sessions watching at once, in one thread: each sends its batches when they fall due
    (exponential gaps of `every` seconds on average), ends after 3 to 12 of them and is
    replaced by a new one."""

    def __init__(self, *, number, sessions, every, viewers, titles, sent, ends) -> None:
        self.rng = random.Random(number)
        self.sessions, self.every = sessions, every
        self.viewers, self.titles = viewers, titles
        self.sent, self.ends = sent, ends
        self.due: list[tuple[float, int, int]] = []  # (when, session id, batches left)
        self.playing: dict[int, tuple[object, int]] = {}  # session id → (session, position)
        self.changes = 0

    def run(self) -> None:
        from django.db import connection

        try:
            for _ in range(self.sessions):
                self.start()
            while time.time() < self.ends:
                when, session_id, left = heapq.heappop(self.due)
                wait = when - time.time()
                if wait > 0:
                    time.sleep(wait)
                self.batch(session_id, left)
        finally:
            connection.close()

    def start(self) -> None:
        from django.utils import timezone

        from engagement import services

        at = time.time()
        session = services.viewing_session_start(
            viewer_id=self.rng.choice(self.viewers),
            title_id=self.rng.choice(self.titles),
            device="ctv",
            started_at=timezone.now(),
        )  # published once committed (autocommit: at once)
        self.sent[session.pk] = [at]
        self.playing[session.pk] = (session, 0)
        self.changes += 1
        next_at = at + self.rng.expovariate(1 / self.every)
        heapq.heappush(self.due, (next_at, session.pk, self.rng.randint(3, 12)))

    def batch(self, session_id: int, left: int) -> None:
        """What the viewer app's playback endpoint does with a batch: store it, then
        `sessions_touched`; the last one ends the session."""
        from django.db import transaction
        from django.utils import timezone

        from engagement import services
        from engagement.models import PlaybackEvent

        session, position = self.playing[session_id]
        at, now = time.time(), timezone.now()
        self.sent[session_id].append(at)
        self.changes += 1
        if left == 0:
            services.viewing_session_finish(
                session=session,
                ended_at=now,
                watched_seconds=position,
                completed=False,
                abandoned=True,
            )
            del self.playing[session_id]
            self.start()
            return
        kinds = self.rng.choice([["play"], ["pause", "resume"], ["seek"], ["skip"], ["play"]])
        with transaction.atomic():
            PlaybackEvent.objects.bulk_create(
                [
                    PlaybackEvent(
                        session_id=session_id,
                        kind=kind,
                        position_seconds=position,
                        at=now,
                        detail={"from": position, "to": position + 10}
                        if kind in ("seek", "skip")
                        else {},
                    )
                    for kind in kinds
                ]
            )
        services.sessions_touched(session_ids=[session_id], at=now)
        self.playing[session_id] = (session, position + int(self.every))
        next_at = at + self.rng.expovariate(1 / self.every)
        heapq.heappush(self.due, (next_at, session_id, left - 1))


def _viewing_lags(screens: Screens, sent: dict[int, list[float]]) -> list[float]:
    """For each viewing message after the first: the time since the oldest change sent after
    the message before it (the change it is the first to include)."""
    changes = sorted(at for sends in sent.values() for at in sends)
    import bisect

    lags = []
    for messages in screens.viewing:
        for (before, _), (arrived, _) in zip(messages, messages[1:], strict=False):
            first = bisect.bisect_right(changes, before)
            if first < len(changes) and changes[first] < arrived:
                lags.append(arrived - changes[first])
    return sorted(lags)


if __name__ == "__main__":
    sys.exit(main())
