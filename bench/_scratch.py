"""What several benches share: the scratch PostgreSQL database a bench makes, fills and drops
(each function takes the bench's database URL; the database itself is created and dropped
through the server's `postgres` maintenance database), the machine it runs on, and a
throwaway simulated world on SQLite (seeded, simulated, forgotten and simulated again).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

SECRET_KEY = "bench-only-secret-key-7c1e9a3f5b2d8e4a6c0f1b3d5e7a9c2e"


def maintenance_url(database_url: str) -> str:
    return urlunsplit(urlsplit(database_url)._replace(path="/postgres"))


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def postgres_unreachable(database_url: str) -> str | None:
    """Why PostgreSQL cannot be used (None when it answers)."""
    import psycopg

    url = maintenance_url(database_url)
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error as error:
        return f"PostgreSQL does not answer at {url} ({first_line(error)})"
    return None


def database_exists(database_url: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(maintenance_url(database_url), autocommit=True) as connection:
        return bool(
            connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        )


def drop_database(database_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(maintenance_url(database_url), autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def recreate_database(database_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    drop_database(database_url, name)
    with psycopg.connect(maintenance_url(database_url), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def on_scratch_database(
    database_url: str,
    bench: Callable[[bool], int],
    *,
    script: str,
    keep: bool,
    reuse: bool,
    environment: dict[str, str] | None = None,
) -> int:
    """Run `bench(reusing)` in Django on a scratch PostgreSQL database, migrated: made afresh
    (or, with `reuse`, the one a run with `keep` left), dropped afterwards unless `keep`. The
    database's name must say "bench" (it is dropped); a PostgreSQL out of reach skips (0).
    Returns the process's exit code: 1 when `bench` reports failures."""
    database_name = urlsplit(database_url).path.lstrip("/")
    if "bench" not in database_name:
        print(f"refused: {database_name!r} is dropped each run, so its name must say 'bench'")
        return 2
    unreachable = postgres_unreachable(database_url)
    if unreachable:
        print(f"skipped: {unreachable}")
        return 0
    started = time.perf_counter()
    reusing = reuse and database_exists(database_url, database_name)
    if not reusing:
        recreate_database(database_url, database_name)
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_DEBUG="false",
        DJANGO_SECURE_SSL_REDIRECT="false",  # plain HTTP on 127.0.0.1
        DJANGO_SECRET_KEY=SECRET_KEY,
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
        **(environment or {}),
    )
    failures = 0
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        failures = bench(reusing)
    finally:
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        if not keep:
            drop_database(database_url, database_name)
    print(f"\n{script} done in {time.perf_counter() - started:.0f} s")
    return 1 if failures else 0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line)
    except (OSError, StopIteration):
        return "unknown CPU"


def machine_reference() -> str:
    """The one machine reference every bench prints: a fixed pure-Python workload (2·10⁶
    squares mod 7 summed) and a fixed numpy one (ten 400×400 matrix products), each the best
    of three, in ms. Figures from different machines, or one machine under different load,
    compare once divided by it."""
    import time

    import numpy as np

    def best(workload) -> float:
        times = []
        for _ in range(3):
            began = time.perf_counter()
            workload()
            times.append(time.perf_counter() - began)
        return min(times) * 1000

    matrix = np.random.default_rng(0).random((400, 400))
    python_ms = best(lambda: sum(i * i % 7 for i in range(2_000_000)))
    numpy_ms = best(lambda: [matrix @ matrix for _ in range(10)])
    return f"Machine reference: pure Python {python_ms:.0f} ms, numpy {numpy_ms:.0f} ms"


# -- a throwaway simulated world (bench/break_placement.py, bench/ad_load.py) ---------------


def machine_line() -> str:
    """The machine (cores, CPU, Python) and its reference workloads, on one line."""
    import os
    import platform

    return (
        f"{os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}; "
        f"{machine_reference()}"
    )


def load_line() -> str:
    import os

    return "load average: " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def simulated_world_setup(folder: str, name: str, *, audience: int, titles: int):
    """Point Django at a fresh SQLite file in `folder` (or BENCH_DATABASE_URL), with counters
    in process memory and no Redis (the bench owns its world), migrate it and seed the demo
    world (`audience` viewers, `titles` titles). Returns today's midnight (UTC), the end of
    the simulated days: the simulated hours are then the same whenever the bench runs that
    day (ending at the current hour, a seed's world changed from one hour to the next, so two
    runs an hour apart could not be compared)."""
    import os

    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", f"sqlite:///{folder}/{name}.sqlite3"
    )
    os.environ.pop("REDIS_URL", None)
    os.environ["COUNTERS_BACKEND"] = "memory"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    with open(os.devnull, "w") as quiet:
        call_command("migrate", verbosity=0)
        call_command("seed_demo", viewers=audience, titles=titles, no_progress=True, stdout=quiet)
    return timezone.now().replace(microsecond=0, second=0, minute=0, hour=0)


def live_campaigns_cover(start, days: int) -> None:
    """The demo's live campaigns start a few days before now, so a longer simulation would
    have days without ads: start them (and their line items) before `start`, and give each
    line item a lifetime budget for `days` days and two more."""
    from django.db.models import F

    from ads.models import Campaign, LineItem

    live = Campaign.objects.filter(status="active", end_date__gte=start.date())
    live.filter(start_date__gt=start.date()).update(start_date=start.date())
    line_items = LineItem.objects.filter(campaign__in=live)
    line_items.filter(start_at__gt=start).update(start_at=start)
    whole_window = F("daily_budget") * (days + 2)
    line_items.filter(lifetime_budget__lt=whole_window).update(lifetime_budget=whole_window)


def delivery_forget() -> None:
    """Back to the world before any traffic: no sessions, ad events, placements or counters,
    and the engine's index and state rebuilt on the next decision."""
    from django.core.cache import cache

    from ads.decisioning.index import index_holder
    from ads.decisioning.state import state_holder
    from ads.delivery.counters import counters
    from ads.models import AdEvent
    from engagement.models import BreakPlacement, ViewingSession

    AdEvent.objects.all().delete()
    ViewingSession.objects.all().delete()
    BreakPlacement.objects.all().delete()
    cache.clear()
    counters.cache_clear()
    index_holder.reset()
    state_holder.reset()


def history_simulate(*, end, days: int, viewers: int, seed: int, **options):
    """Simulate `days` days of viewing up to `end` with the demo's simulator (the world and
    the traffic from `seed`); returns simulate_history's result."""
    from demo.simulation import HistoryOptions, World, simulate_history

    return simulate_history(
        World.load(seed=seed),
        HistoryOptions(end=end, days=days, viewers=viewers, seed=seed, **options),
    )
