"""Faults under traffic: Redis killed and restarted empty, PostgreSQL backends terminated, while
players ask for decisions and report events to the `api` process (config/wsgi_server.py, as the
Procfile runs it). Prints decisions served / degraded / failed, events accepted / lost / double,
and the counters against the event table after recovery. The goal is 0 failed, 0 lost, 0 double,
0 mismatched, 0 server errors.

It starts its own Redis and its own PostgreSQL cluster (initdb in a temporary directory, as the
postgres user when run as root) on free ports of 127.0.0.1, and stops both by their process
or data directory: the machine's shared servers are never touched.

    flock /tmp/bench.lock python bench/faults.py
    BENCH_FAULTS_SECONDS=30 (traffic), BENCH_FAULTS_PLAYERS=3 (decision clients)

The timeline (fractions of the run): Redis is killed (SIGKILL) at 0.2 and started again, empty,
at 0.45; every server backend of the database is terminated (pg_terminate_backend) three
times, a second apart, from 0.65; traffic stops at 1.0. A player that gets an error sends the
same batch again, as a real one does; an event is *lost* when it was answered `accepted` (or
`duplicate` after an error) and is not in the table, *double* when a counter holds more than the
table.
"""

from __future__ import annotations

import glob
import http.client
import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

import _http  # noqa: E402  (helpers beside this file)
import _scratch  # noqa: E402

SECONDS = float(os.environ.get("BENCH_FAULTS_SECONDS", "30"))
PLAYERS = int(os.environ.get("BENCH_FAULTS_PLAYERS", "3"))
CLICK_SHARE = 0.1
DATABASE = "interlude_faults_bench"
SECRET_KEY = "bench-only-secret-key-0f9c2e7d4b1a8e6c3f5d7b9a1c3e5f7a"
PLAYER_AGENT = "Mozilla/5.0 (SMART-TV; Linux) InterludeFaultsBench/1.0"


class OwnRedis:
    """redis-server without persistence: started again, it is empty, as after a crash."""

    def __init__(self) -> None:
        self.port = _http.free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        import redis

        for _ in range(250):
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None


class OwnPostgres:
    """A PostgreSQL cluster in a temporary directory, on a port of its own."""

    def __init__(self) -> None:
        self.port = _http.free_port()
        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.directory = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        self.data = self.directory / "data"
        self.as_postgres = os.geteuid() == 0  # initdb refuses root

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        subprocess.run([*prefix, *command], check=True, capture_output=True)

    def start(self) -> None:
        if self.as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.directory, user.pw_uid, user.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        # The server's output goes to a log file: a pipe it inherited would keep run() waiting.
        log = str(self.directory / "server.log")
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start"
        )
        _scratch.recreate_database(self.url, DATABASE)

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def terminate_backends(self) -> int:
        import psycopg

        with psycopg.connect(_scratch.maintenance_url(self.url), autocommit=True) as connection:
            rows = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [DATABASE],
            ).fetchall()
        return len(rows)


class Tally:
    """What the players saw, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.decisions: Counter[str] = Counter()
        self.batches: Counter[str] = Counter()
        self.acknowledged: dict[str, str] = {}  # event id → accepted or duplicate
        self.after_error: set[str] = set()  # event ids of a batch that was answered an error

    def decision(self, outcome: str) -> None:
        with self.lock:
            self.decisions[outcome] += 1


def player(port: int, key: str, world, seed: int, stop: threading.Event, tally: Tally) -> None:
    """Decisions one after another; each pod's impressions go into the next batch, its
    completes (and a click for CLICK_SHARE of the slots: a CPC line item's spend) into the
    batch after it, sent every ~0.2 s, in POSTs of at most the API's MAX_BATCH events; a batch
    answered with an error is sent again, unchanged, with those after it."""
    from ads.services.events import MAX_BATCH

    rng = random.Random(seed)
    client = http.client.HTTPConnection(_http.HOST, port, timeout=10)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    impressions: list[dict] = []  # for the next batch
    completes: list[dict] = []  # for the batch after it (they need their impression stored)
    ready: list[dict] = []  # completes for the next batch
    unsent: list[list[dict]] = []  # this tick's POSTs, or a failed one and those after it
    last_batch = time.monotonic()
    number = 0

    def post(path: str, body: dict) -> tuple[int, dict | None]:
        nonlocal client
        try:
            client.request("POST", path, json.dumps(body), headers | {"User-Agent": PLAYER_AGENT})
            reply = client.getresponse()
            data = reply.read()
            return reply.status, json.loads(data) if reply.status == 200 else None
        except (OSError, http.client.HTTPException):
            client.close()
            client = http.client.HTTPConnection(_http.HOST, port, timeout=10)
            return 0, None

    while not stop.is_set():
        status, answer = post("/api/v1/decisions", world.request(rng))
        if status != 200 or answer is None:
            tally.decision(f"failed ({status or 'no answer'})")
        elif answer["reason"] == "degraded":
            tally.decision("degraded")
        elif not answer["pod"]:
            tally.decision("empty (no fill)")
        else:
            tally.decision("served")
            for slot in answer["pod"]:
                token = slot["tracking"]["impression"].split("/t/")[1].split("/")[0]
                number += 1
                event_id = f"p{seed}-{number}"
                impressions.append(
                    {"event_id": f"{event_id}-i", "token": token, "type": "impression"}
                )
                completes.append({"event_id": f"{event_id}-c", "token": token, "type": "complete"})
                if rng.random() < CLICK_SHARE:
                    completes.append({"event_id": f"{event_id}-k", "token": token, "type": "click"})
        if time.monotonic() - last_batch < 0.2:
            continue
        last_batch = time.monotonic()
        if not unsent:
            events, ready, impressions, completes = impressions + ready, completes, [], []
            unsent = [events[at : at + MAX_BATCH] for at in range(0, len(events), MAX_BATCH)]
        while unsent:
            batch = unsent[0]
            status, answer = post("/api/v1/events", {"events": batch})
            with tally.lock:
                if status != 200 or answer is None:
                    tally.batches[f"failed ({status or 'no answer'})"] += 1
                    tally.after_error.update(event["event_id"] for event in batch)
                    break  # again at the next tick
                tally.batches["answered"] += 1
                unsent.pop(0)
                for result in answer["results"]:
                    if result["status"] in ("accepted", "duplicate"):
                        tally.acknowledged.setdefault(result["event_id"], result["status"])
                        if result["status"] == "accepted":
                            tally.acknowledged[result["event_id"]] = "accepted"


def faults(redis_server: OwnRedis, postgres: OwnPostgres, log: list[str]) -> None:
    began = time.monotonic()

    def at(share: float) -> None:
        time.sleep(max(0.0, began + share * SECONDS - time.monotonic()))

    def note(text: str) -> None:
        log.append(f"  {time.monotonic() - began:5.1f} s  {text}")

    at(0.2)
    redis_server.kill()
    note("Redis killed (SIGKILL)")
    at(0.45)
    redis_server.start()
    note("Redis started again, empty")
    for attempt in range(3):
        at(0.65 + attempt * (1 / SECONDS))
        note(f"PostgreSQL: {postgres.terminate_backends()} backends terminated")


def counters_against_table() -> dict[str, int]:
    """Mismatches between the counters and the event table, by kind (after recovery)."""
    from django.db.models import Count, Q, Sum

    from ads.delivery import keys
    from ads.delivery.counters import counters
    from ads.learning.features import fatigue_bucket
    from ads.models import AdEvent, Advertiser, LineItem

    store = counters()
    checks: dict[str, tuple[list[str], list[int]]] = {}
    spend = dict(
        AdEvent.objects.values("line_item")
        .annotate(total=Sum("cost_micros"))
        .values_list("line_item", "total")
    )
    line_items = list(LineItem.objects.values_list("pk", flat=True))
    checks["line items' lifetime spend"] = (
        [keys.spent_lifetime(pk) for pk in line_items],
        [spend.get(pk) or 0 for pk in line_items],
    )
    per_creative = list(
        AdEvent.objects.values("creative")
        .annotate(
            shown=Count("id", filter=Q(event_type="impression")),
            clicked=Count("id", filter=Q(event_type="click")),
        )
        .values_list("creative", "shown", "clicked")
    )
    checks["creatives' impressions"] = (
        [keys.creative_impressions(pk) for pk, _, _ in per_creative],
        [shown for _, shown, _ in per_creative],
    )
    checks["creatives' clicks"] = (
        [keys.creative_clicks(pk) for pk, _, _ in per_creative],
        [clicked for _, _, clicked in per_creative],
    )
    # The run is shorter than the buckets live: every impression is in its viewer's bucket.
    fatigue: Counter[str] = Counter(
        keys.viewer_ads(viewer_id, fatigue_bucket(occurred_at))
        for viewer_id, occurred_at in AdEvent.objects.filter(event_type="impression").values_list(
            "viewer", "occurred_at"
        )
    )
    checks["viewers' fatigue buckets"] = (list(fatigue), list(fatigue.values()))
    live: Counter[str] = Counter()
    zones = dict(Advertiser.objects.values_list("pk", "timezone"))
    from zoneinfo import ZoneInfo

    for advertiser_id, occurred_at in AdEvent.objects.filter(event_type="impression").values_list(
        "advertiser", "occurred_at"
    ):
        day = occurred_at.astimezone(ZoneInfo(zones[advertiser_id])).date()
        live[keys.live(advertiser_id, day, "impressions")] += 1
    checks["accounts' live impressions"] = (list(live), list(live.values()))
    result = {}
    for name, (names, expected) in checks.items():
        values = store.get_many(names)
        result[name] = sum(1 for got, want in zip(values, expected, strict=True) if got != want)
        result[name + " (above the table)"] = sum(
            1 for got, want in zip(values, expected, strict=True) if got > want
        )
    return result


def main() -> int:
    for tool in ("redis-server",):
        if shutil.which(tool) is None:
            print(f"skipped: {tool} is not installed")
            return 0
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        print("skipped: no PostgreSQL binaries under /usr/lib/postgresql")
        return 0
    started = time.perf_counter()
    redis_server, postgres = OwnRedis(), OwnPostgres()
    redis_server.start()
    try:
        postgres.start()
        return run(redis_server, postgres, started)
    finally:
        redis_server.kill()
        postgres.stop()


def run(redis_server: OwnRedis, postgres: OwnPostgres, started: float) -> int:
    os.environ.update(
        DATABASE_URL=postgres.url,
        REDIS_URL=redis_server.url,
        DJANGO_DEBUG="false",
        DJANGO_SECURE_SSL_REDIRECT="false",  # plain HTTP on 127.0.0.1
        DJANGO_SECRET_KEY=SECRET_KEY,
        DJANGO_ALLOWED_HOSTS=_http.HOST,
        LOG_LEVEL="ERROR",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    load = os.getloadavg()
    print(
        f"Machine: {os.cpu_count()} cores ({_scratch.cpu_model()}); "
        f"{_scratch.machine_reference()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )
    import _world

    from ads import services

    world = _world.seed()
    _, key = services.platform_key_create(name="faults bench")
    services.index_changed()
    print(f"Own Redis on port {redis_server.port}, own PostgreSQL on port {postgres.port}; ")
    print(f"{PLAYERS} players for {SECONDS:.0f} s against the api ({_http.api_server_kind()})")

    tally, log = Tally(), []
    stop = threading.Event()
    with _http.wsgi_server(base_dir=BASE_DIR, env=dict(os.environ)) as (port, _pid):
        players = [
            threading.Thread(target=player, args=(port, key, world, seed, stop, tally))
            for seed in range(PLAYERS)
        ]
        for thread in players:
            thread.start()
        traffic_began = time.monotonic()
        faults(redis_server, postgres, log)
        time.sleep(max(0.0, traffic_began + SECONDS - time.monotonic()))
        stop.set()
        for thread in players:
            thread.join()
        recovered_in = wait_for_recovery()
    print("\nFaults")
    print("\n".join(log))
    return report(tally, recovered_in)


def wait_for_recovery(limit: float = 30.0) -> float | None:
    """Seconds until the counters are known and the backlog empty (None: not within limit). This
    process's own database connection was terminated with the server's other backends: it is
    made again."""
    from django.db import OperationalError, connection

    from ads.delivery.counters import DeliveryStateUnavailable, counters
    from ads.models import CounterBacklog

    connection.close()
    began = time.monotonic()
    while time.monotonic() - began < limit:
        try:
            if counters().state_known() and not CounterBacklog.objects.exists():
                return time.monotonic() - began
        except DeliveryStateUnavailable:
            pass
        except OperationalError:
            connection.close()
        time.sleep(0.2)
    return None


def report(tally: Tally, recovered_in: float | None) -> int:
    from ads.models import AdEvent

    stored = set(AdEvent.objects.values_list("client_event_id", flat=True))
    acknowledged = set(tally.acknowledged)
    lost = len(acknowledged - stored)
    # Stored but never acknowledged: every answer for its batch was an error.
    unacknowledged = len(stored - acknowledged)
    # A retried batch whose events came back `duplicate`: stored by a try answered with an
    # error (their counting is then the backlog's to do; the counter check says if it did).
    duplicate_after_error = sum(
        1
        for event_id, status in tally.acknowledged.items()
        if status == "duplicate" and event_id in tally.after_error
    )
    print("\nDecisions")
    for outcome, count in sorted(tally.decisions.items()):
        print(f"  {outcome:24s} {count:8,}")
    print("\nEvent batches")
    for outcome, count in sorted(tally.batches.items()):
        print(f"  {outcome:24s} {count:8,}")
    print("\nEvents")
    accepted = sum(1 for status in tally.acknowledged.values() if status == "accepted")
    print(f"  {'accepted':24s} {accepted:8,}")
    print(f"  {'stored':24s} {len(stored):8,}")
    print(f"  {'lost':24s} {lost:8,}")
    print(f"  {'never acknowledged':24s} {unacknowledged:8,}")
    print(f"  {'duplicate after an error':24s} {duplicate_after_error:8,}")
    print("\nCounters against the table after recovery")
    if recovered_in is None:
        print("  not recovered within 30 s (counters unknown or backlog not empty)")
    else:
        print(f"  recovered {recovered_in:.1f} s after traffic stopped")
    mismatches = counters_against_table()
    for name, count in mismatches.items():
        print(f"  {name + ' mismatched':52s} {count:6,}")
    failed = sum(count for outcome, count in tally.decisions.items() if "failed" in outcome)
    failed_batches = sum(count for outcome, count in tally.batches.items() if "failed" in outcome)
    double = sum(count for name, count in mismatches.items() if "above" in name)
    goals = {
        "decisions failed": failed,
        "event batches failed": failed_batches,
        "events lost": lost,
        "events counted twice (counters above the table)": double,
        "counters mismatched": sum(
            count for name, count in mismatches.items() if "above" not in name
        ),
    }
    print("\nGoals (0 each)")
    for name, count in goals.items():
        print(f"  {name:52s} {count:6,}   {'PASS' if count == 0 else 'MISS'}")
    return 0 if not any(goals.values()) and recovered_in is not None else 1


if __name__ == "__main__":
    sys.exit(main())
