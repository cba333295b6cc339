"""Which server should run the `api` process: the same decision requests against several, on one
bench world, in turns.

Each server is started once with 2 workers (`loop`: config/wsgi_server.py as
config/api_server.py runs it; granian, its fallback, as it runs it with API_SERVER=granian;
bjoern, when installed, and a plain epoll + httptools loop, both pre-forked with one request
thread a worker: bench/_prefork.py), then rounds of wrk at each level of BENCH_CONNECTIONS go to
each in turn.
Prints, for each server and level, the medians over the rounds of: the server's CPU per
decision (every process and thread of it, from /proc), the same less its fixed cost (the CPU it
spends a second while idle, mostly the decision refreshers', times the round's length: at 300
decisions/s two refreshers weigh 4 times what they weigh at 1,200/s), context switches per
decision, decisions/s and p99. First the same servers around a WSGI application that answers
at once (`hello` below), which is each server's own cost per request.

    python bench/servers.py
    BENCH_DATABASE_URL   postgres://postgres@127.0.0.1:5432/interlude_bench_servers (name must
                         say bench: dropped and made again)
    BENCH_REDIS_URL      redis://127.0.0.1:6379/3 (flushed)
    BENCH_SERVERS=loop,granian,bjoern,plain  BENCH_ROUNDS=4  BENCH_ROUND_SECONDS=2
    BENCH_CONNECTIONS=1,4,32

Needs wrk (apt); skips, exiting 0, without it or without PostgreSQL and Redis."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

import _cpu  # noqa: E402  (helpers beside this file)
import _http  # noqa: E402
import _scratch  # noqa: E402

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/interlude_bench_servers"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
SERVERS = os.environ.get("BENCH_SERVERS", "loop,granian,bjoern,plain").split(",")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "4"))
ROUND_SECONDS = int(os.environ.get("BENCH_ROUND_SECONDS", "2"))
CONNECTIONS = tuple(int(n) for n in os.environ.get("BENCH_CONNECTIONS", "1,4").split(","))
IDLE_SECONDS = 3
SECRET_KEY = "bench-only-secret-key-0f9c2e7d4b1a8e6c3f5d7b9a1c3e5f7a"
HELLO = b'{"decision_id": "hello", "pod": []}'


def hello(environ: dict, start_response) -> list[bytes]:
    """A WSGI application that reads the body and answers at once: the server's own cost."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(HELLO)))]
    )
    return [HELLO]


def everything(path: str) -> bool:
    """hello's requests all run on the loop's thread (config/wsgi_server.py's `inline`)."""
    return True


def _command(server: str, port: int, application: str) -> list[str]:
    if application == "django" and server in ("granian", "loop"):
        return [sys.executable, "-m", "config.api_server", "--port", str(port)]
    if server == "loop":
        serve = (
            "from config.wsgi_server import serve; "
            f"serve('servers:hello', 'servers:everything', host='{_http.HOST}', port={port}, "
            "workers=2, threads=2)"
        )
        return [sys.executable, "-c", serve]
    if server == "granian":
        return [
            sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", "2",
            "--blocking-threads", "2", "--host", _http.HOST, "--port", str(port), "--no-ws",
            "--no-access-log", "--working-dir", str(BASE_DIR / "bench"), "servers:hello",
        ]  # fmt: skip
    spec = "config.wsgi:application" if application == "django" else "servers:hello"
    return [sys.executable, str(BASE_DIR / "bench" / "_prefork.py"), server, str(port), "2", spec]


@contextmanager
def _started(server: str, application: str, env: dict[str, str]) -> Iterator[tuple[int, int]]:
    port = _http.free_port()
    paths = [str(BASE_DIR), str(BASE_DIR / "bench"), env.get("PYTHONPATH", "")]
    env = env | {"PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    if server == "granian":
        env["API_SERVER"] = "granian"  # config.api_server's fallback
    with tempfile.NamedTemporaryFile("w+", prefix=f"bench-{server}-", suffix=".log") as log:
        process = subprocess.Popen(
            _command(server, port, application), cwd=BASE_DIR, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            _http._wait_until_healthy(process, port, log.name, server)
            yield port, process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _switches(pid: int) -> int:
    """Context switches of every thread of a process and its descendants."""
    children: dict[int, list[int]] = {}
    for child, parent, _ in _cpu._processes():
        children.setdefault(parent, []).append(child)
    total, pending = 0, [pid]
    while pending:
        process = pending.pop()
        pending += children.get(process, [])
        try:
            for thread in os.listdir(f"/proc/{process}/task"):
                with open(f"/proc/{process}/task/{thread}/status") as status:
                    total += sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
        except OSError:
            continue
    return total


def _compare(application: str, key: str, bodies_file: str, env: dict[str, str]) -> None:
    available = [
        server
        for server in SERVERS
        if server != "bjoern" or importlib.util.find_spec("bjoern") is not None
    ]
    skipped = sorted(set(SERVERS) - set(available))
    print(
        f"\n{'The Django application' if application == 'django' else 'hello (no work)'}: "
        f"{ROUNDS} rounds of {ROUND_SECONDS} s a level, servers in turns"
        + (f" ({', '.join(skipped)} not installed)" if skipped else "")
    )
    rows: dict[tuple[str, int], list[tuple[float, float, float, float, float]]] = {}
    started: dict[str, tuple[int, int]] = {}
    idle_per_second: dict[str, float] = {}
    with ExitStack() as stack:
        for server in available:
            port, pid = started[server] = stack.enter_context(_started(server, application, env))
            # Warm both workers up: index, state, connections.
            _http.wrk_run(
                port=port, path="/api/v1/decisions", key=key, bodies_file=bodies_file,
                connections=8, seconds=2,
            )  # fmt: skip
        for server, (_, pid) in started.items():
            before = _cpu.tree_seconds(pid)
            time.sleep(IDLE_SECONDS)
            idle_per_second[server] = (_cpu.tree_seconds(pid) - before) / IDLE_SECONDS
        for number in range(ROUNDS):
            for server in available if number % 2 == 0 else available[::-1]:
                port, pid = started[server]
                for connections in CONNECTIONS:
                    cpu, switches = _cpu.tree_seconds(pid), _switches(pid)
                    run = _http.wrk_run(
                        port=port, path="/api/v1/decisions", key=key, bodies_file=bodies_file,
                        connections=connections, seconds=ROUND_SECONDS,
                    )  # fmt: skip
                    if run.non_2xx or run.socket_errors:
                        raise RuntimeError(f"{server}: {run.non_2xx} non-2xx answers")
                    count = max(run.requests, 1)
                    spent = _cpu.tree_seconds(pid) - cpu
                    rows.setdefault((server, connections), []).append(
                        (
                            spent / count * 1000,
                            (spent - idle_per_second[server] * run.seconds) / count * 1000,
                            (_switches(pid) - switches) / count,
                            run.per_second,
                            run.p99_ms,
                        )
                    )
    print(
        "  server    connections   CPU/decision  less idle   switches   decisions/s   p99 ms"
        "   (idle: CPU ms a second)"
    )
    for (server, connections), values in rows.items():
        median = [statistics.median(value[i] for value in values) for i in range(5)]
        print(
            f"  {server:9s} {connections:11d} {median[0]:11.3f} ms {median[1]:7.3f} ms "
            f"{median[2]:9.1f} {median[3]:13,.0f} {median[4]:8.1f}"
            f"   ({idle_per_second[server] * 1000:.1f})"
        )


def main() -> int:
    database_name = urlsplit(DATABASE_URL).path.lstrip("/")
    if "bench" not in database_name:
        print(f"refused: {database_name!r} is dropped each run, so its name must say 'bench'")
        return 2
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (apt-get install wrk)")
        return 0
    unreachable = _scratch.postgres_unreachable(DATABASE_URL)
    if unreachable:
        print(f"skipped: {unreachable}")
        return 0
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        print(f"skipped: Redis does not answer at {REDIS_URL} ({_scratch.first_line(error)})")
        return 0
    _scratch.recreate_database(DATABASE_URL, database_name)
    redis.Redis.from_url(REDIS_URL).flushdb()
    os.environ.update(
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        DJANGO_DEBUG="false",
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_SECRET_KEY=SECRET_KEY,
        DJANGO_ALLOWED_HOSTS=_http.HOST,
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    print(_scratch.machine_reference() + f"; load average {os.getloadavg()[0]:.2f}")
    import _world
    from django.db import connections

    from ads import services

    world = _world.seed()
    services.index_changed()
    _, key = services.platform_key_create(name="bench")
    services.counters_heal()  # the flushed counters are known again before any server reads
    connections.close_all()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="bench-servers-") as scratch:
        bodies_file = Path(scratch) / "bodies.jsonl"
        bodies_file.write_text(
            "\n".join(json.dumps(world.request(rng)) for _ in range(5000)) + "\n"
        )
        env = dict(os.environ)
        _compare("hello", key, str(bodies_file), env)
        _compare("django", key, str(bodies_file), env)
    print(f"\nLoad at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
