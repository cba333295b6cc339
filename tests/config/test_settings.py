"""Settings come from the environment. Each case runs in a fresh interpreter, because
settings are read once per process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
PRINT_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({
    "db_engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": settings.DATABASES["default"]["NAME"],
    "db_host": settings.DATABASES["default"].get("HOST", ""),
    "cache": settings.CACHES["default"]["BACKEND"],
    "cache_location": settings.CACHES["default"].get("LOCATION"),
    "broker": settings.CELERY_BROKER_URL,
    "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "channel_layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "channel_hosts": settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts"),
    "db_options": settings.DATABASES["default"].get("OPTIONS", {}),
    "counters": settings.COUNTERS_BACKEND,
    "counters_path": str(settings.COUNTERS_SQLITE_PATH),
}))
"""


def run_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "DJANGO_DEBUG",
            "DJANGO_SECRET_KEY",
            "COUNTERS_BACKEND",
            "COUNTERS_SQLITE_PATH",
        }
    }
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=BASE_DIR,
        env=clean | {"DJANGO_SETTINGS_MODULE": "config.settings"} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_embedded_defaults_need_nothing_installed():
    result = run_settings()
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["db_engine"] == "django.db.backends.sqlite3"
    assert values["db_name"].endswith("db.sqlite3")
    assert values["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert values["broker"] == "memory://"
    assert values["eager"] is True
    assert values["channel_layer"] == "channels.layers.InMemoryChannelLayer"
    # Every local process shares the counters, in a file beside the database.
    assert values["counters"] == "sqlite"
    assert values["counters_path"] == values["db_name"].replace("db.sqlite3", "db.counters.sqlite3")
    # Several processes write the database: they wait for each other instead of failing.
    assert values["db_options"]["timeout"] == 30
    assert values["db_options"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in values["db_options"]["init_command"]


def test_the_counters_backend_is_a_choice():
    memory = run_settings(COUNTERS_BACKEND="memory")
    assert memory.returncode == 0, memory.stderr
    assert json.loads(memory.stdout)["counters"] == "memory"
    elsewhere = run_settings(COUNTERS_SQLITE_PATH="/tmp/elsewhere.sqlite3")
    assert json.loads(elsewhere.stdout)["counters_path"] == "/tmp/elsewhere.sqlite3"
    redis_without_url = run_settings(COUNTERS_BACKEND="redis")
    assert "COUNTERS_BACKEND=redis needs REDIS_URL" in redis_without_url.stderr
    unknown = run_settings(COUNTERS_BACKEND="files")
    assert "COUNTERS_BACKEND must be one of redis, sqlite, memory" in unknown.stderr


def test_database_url_and_redis_url_switch_to_the_real_services():
    result = run_settings(
        DATABASE_URL="postgres://ads:secret@db.internal:5432/interlude",
        REDIS_URL="redis://cache.internal:6379/2",
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["db_engine"] == "django.db.backends.postgresql"
    assert (values["db_name"], values["db_host"]) == ("interlude", "db.internal")
    assert values["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert values["cache_location"] == "redis://cache.internal:6379/2"
    assert values["broker"] == "redis://cache.internal:6379/2"
    assert values["eager"] is False
    assert values["channel_layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert values["channel_hosts"] == ["redis://cache.internal:6379/2"]
    assert values["counters"] == "redis"
    assert values["db_options"].get("transaction_mode") is None


def test_default_secret_key_is_refused_when_debug_is_off():
    result = run_settings(DJANGO_DEBUG="false")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is the embedded default" in result.stderr


def test_own_secret_key_starts_with_debug_off():
    result = run_settings(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="a-real-secret-" + "x" * 40)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("bad_url", ["mysqlx://nowhere", "not a url"])
def test_a_malformed_database_url_fails_loudly(bad_url):
    result = run_settings(DATABASE_URL=bad_url)
    assert result.returncode != 0
    assert "DATABASE_URL must be postgres://" in result.stderr
