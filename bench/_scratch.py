"""The scratch PostgreSQL database a bench makes, fills and drops, and the machine it runs on.

Each function takes the bench's database URL; the database itself is created and dropped
through the server's `postgres` maintenance database.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


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
