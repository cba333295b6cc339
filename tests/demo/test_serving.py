"""What `make demo` serves (Procfile.demo, run by honcho): the site in one process, Celery beat
running the periodic tasks itself with no broker, and a simulated audience watching through
the API unless DEMO_LIVE=0."""

import os
import shlex
import subprocess
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery import beat
from django.conf import settings
from honcho.environ import parse_procfile

from config.celery import app as celery_app

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def processes() -> dict[str, list[str]]:
    procfile = parse_procfile((BASE_DIR / "Procfile.demo").read_text())
    return {name: shlex.split(command) for name, command in procfile.processes.items()}


def test_the_demo_serves_the_site_the_schedule_and_an_audience(processes):
    assert set(processes) == {"web", "scheduler", "audience"}
    web = processes["web"]
    # One server process: the in-memory channel layer reaches only its own dashboards.
    uvicorn = web.index("uvicorn")
    assert web[uvicorn + 1] == "config.asgi:application" and "--workers" not in web
    # The whole audience asks its ad tags from one address: its limit fits hundreds of viewers.
    (limit,) = [word for word in web[:uvicorn] if word.startswith("VAST_REQUESTS_PER_ADDRESS")]
    assert int(limit.rsplit(":-", 1)[1].rstrip("}")) >= 10_000
    scheduler = processes["scheduler"]
    assert "CELERY_TASK_ALWAYS_EAGER=true" in scheduler  # tasks run inside beat
    celery = scheduler.index("celery")
    assert scheduler[celery : celery + 4] == ["celery", "-A", "config", "beat"]
    audience = processes["audience"]
    assert audience[:4] == ["python", "manage.py", "simulate_traffic", "--live"]
    assert audience[audience.index("--minutes") + 1] == "inf"
    assert float(audience[audience.index("--wait-for-server") + 1]) > 0


def make_demo_dry_run(**variables: str) -> str:
    """The commands `make demo` would run (make -n), with these make variables."""
    result = subprocess.run(
        ["make", "-n", "demo", *(f"{name}={value}" for name, value in variables.items())],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_demo_live_0_serves_without_the_audience():
    assert "-c audience=1" in make_demo_dry_run()
    assert "-c audience=0" in make_demo_dry_run(DEMO_LIVE="0")
    commands = make_demo_dry_run(PORT="8400", DEMO_AUDIENCE="5")
    assert "honcho start -f Procfile.demo" in commands
    assert "DEMO_PORT=8400" in commands and "DEMO_AUDIENCE=5" in commands


def test_every_periodic_task_is_known_to_the_scheduler():
    celery_app.loader.import_default_modules()
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in celery_app.tasks, name


def test_beat_runs_a_due_task_in_its_own_process(monkeypatch):
    """With eager tasks (as Procfile.demo sets them), beat applies a due task itself, in its
    own process: no broker, no worker."""
    from analytics import tasks

    calls = []

    def rollup_today(*, at):
        calls.append((os.getpid(), at))
        return [SimpleNamespace(delivery_rows=7)]

    monkeypatch.setattr(tasks.services, "rollup_today", rollup_today)
    entry = beat.ScheduleEntry(
        name="rollup-today",
        task=settings.CELERY_BEAT_SCHEDULE["rollup-today"]["task"],
        schedule=timedelta(minutes=5),
        app=celery_app,
    )
    eager = celery_app.conf.task_always_eager  # False on the full stack (REDIS_URL)
    celery_app.conf.task_always_eager = True
    try:
        result = beat.Scheduler(app=celery_app, lazy=True).apply_async(entry, advance=False)
    finally:
        celery_app.conf.task_always_eager = eager
    assert result.get() == 7
    assert [pid for pid, _ in calls] == [os.getpid()]
