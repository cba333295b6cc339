"""docker-compose.yml runs the full stack. No Docker engine runs here, so the file is
checked by the compose client (when installed) and by reading it."""

import ast
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

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


def _services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def _words(command) -> list[str]:
    return command.split() if isinstance(command, str) else list(command)


def test_every_dependency_and_url_host_is_a_service_of_the_file():
    services = _services()
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} waits for {dependency}, which is not defined"
        for variable in ("DATABASE_URL", "REDIS_URL"):
            if variable in service.get("environment", {}):
                host = urlsplit(service["environment"][variable]).hostname
                assert host in services, f"{name}'s {variable} points at {host}"


def test_the_commands_start_things_that_exist():
    for name, service in _services().items():
        words = _words(service.get("command", ""))
        for word in words:
            # uvicorn / granian targets ("module:attribute"): the module assigns the name. Read,
            # not imported: importing config.wsgi builds the ad index and starts its thread.
            if re.fullmatch(r"[a-z_.]+:[a-z_]+", word):
                module, attribute = word.split(":")
                tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
                assigned = {
                    target.id
                    for node in ast.walk(tree)
                    if isinstance(node, ast.Assign)
                    for target in node.targets
                    if isinstance(target, ast.Name)
                }
                assert attribute in assigned, f"{name}: {module} has no {attribute}"
            # Files passed as options (gunicorn's -c) are in the repository.
            if word.endswith(".py"):
                assert (BASE_DIR / word).is_file(), f"{name}: {word} does not exist"
        if words[:2] == ["celery", "-A"]:
            # `celery -A config` finds the app as config.celery.app, with the tasks beat names.
            app = importlib.import_module(f"{words[2]}.celery").app
            app.loader.import_default_modules()
            assert "analytics.tasks.rollup_last_night_task" in app.tasks


@pytest.mark.django_db
def test_the_http_health_checks_call_the_port_served_and_a_path_that_answers(client):
    checked = []
    for name, service in _services().items():
        probe = " ".join(_words(service.get("healthcheck", {}).get("test", [])))
        found = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/-]*)", probe)
        if not found:
            continue
        port, path = found.groups()
        command = " ".join(_words(service["command"]))
        served = re.search(r"(?:--port |--bind [\d.]+:)(\d+)", command)
        assert served and served.group(1) == port, f"{name} probes {port}, serves {command}"
        assert client.get(path).status_code == 200, f"{name} probes {path}"
        checked.append(name)
    assert checked == ["web", "api"]


def test_the_procfile_runs_web_api_worker_and_beat():
    processes = dict(
        line.split(":", 1) for line in (BASE_DIR / "Procfile").read_text().splitlines() if line
    )
    assert set(processes) == {"web", "api", "worker", "beat"}
    assert "config.asgi:application" in processes["web"]
    # The integration API under WSGI (config/api_server.py serving config.wsgi).
    assert processes["api"].strip() == "python -m config.api_server"
