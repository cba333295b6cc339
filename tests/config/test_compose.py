"""docker-compose.yml runs the full stack. No Docker engine runs here, so the file is
checked by the compose client (when installed) and by reading it."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

BASE_DIR = Path(__file__).resolve().parents[2]
COMPOSE_FILE = BASE_DIR / "docker-compose.yml"


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_the_compose_client_accepts_the_file():
    command = compose_command()
    if command is None:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("no docker compose client: .ci/run installs docker-compose")
        pytest.skip("no docker compose client installed")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        env=os.environ | {"DJANGO_SECRET_KEY": "compose-check"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_stack_has_its_services_and_commands():
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert set(services) == {"postgres", "redis", "web", "api", "worker", "beat"}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert "uvicorn config.asgi:application" in services["web"]["command"]
    assert services["api"]["command"][:4] == [
        "gunicorn",
        "config.wsgi:application",
        "-c",
        "config/gunicorn.py",
    ]
    assert services["api"]["depends_on"]["web"]["condition"] == "service_healthy"
    assert services["worker"]["command"][:4] == ["celery", "-A", "config", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    for name in ("postgres", "redis", "web", "api", "worker"):
        assert "healthcheck" in services[name], f"{name} has no health check"
    for name in ("web", "api", "worker", "beat"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert environment["REDIS_URL"].startswith("redis://redis:6379")
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_procfile_runs_web_api_worker_and_beat():
    processes = dict(
        line.split(":", 1) for line in (BASE_DIR / "Procfile").read_text().splitlines() if line
    )
    assert set(processes) == {"web", "api", "worker", "beat"}
    assert "config.asgi:application" in processes["web"]
    # The integration API under WSGI (gthread workers), with its settings file.
    assert "gunicorn config.wsgi:application -c config/gunicorn.py" in processes["api"]
