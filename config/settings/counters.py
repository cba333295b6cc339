"""Where the delivery counters live (budgets, caps, pacing, live totals): `ads.delivery.counters`.

`redis` with REDIS_URL; otherwise `sqlite`, a file beside the SQLite database that every local
process shares and that survives a restart; `memory` keeps them inside each process (the test
suite's choice: quick, and nothing outlives a test).
"""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.settings.django import DATABASES
from config.settings.env import BASE_DIR, REDIS_URL, env

COUNTERS_BACKENDS = ("redis", "sqlite", "memory")
COUNTERS_BACKEND = env.str("COUNTERS_BACKEND", default="redis" if REDIS_URL else "sqlite")
if COUNTERS_BACKEND not in COUNTERS_BACKENDS:
    raise ImproperlyConfigured(f"COUNTERS_BACKEND must be one of {', '.join(COUNTERS_BACKENDS)}.")
if COUNTERS_BACKEND == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("COUNTERS_BACKEND=redis needs REDIS_URL.")


def _beside_the_database() -> Path:
    database = DATABASES["default"]
    name = str(database.get("NAME") or "")
    if database["ENGINE"] == "django.db.backends.sqlite3" and name and ":memory:" not in name:
        path = Path(name)
        return path.with_name(f"{path.stem}.counters.sqlite3")  # db.sqlite3: db.counters.sqlite3
    return BASE_DIR / "counters.sqlite3"


COUNTERS_SQLITE_PATH = Path(env.str("COUNTERS_SQLITE_PATH", default="") or _beside_the_database())
