"""Two api processes on one PostgreSQL and one Redis agree: each sees demand saved elsewhere
within its refresh interval, and budgets and caps hold exactly under traffic split between
them (the reservations are in the shared Redis, not in either process)."""

import os
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from ads import services
from ads.delivery import keys
from ads.delivery.counters import counters
from ads.models import AdEvent
from tests.ads.conftest import line_item_with_creative
from tests.factories import ViewerFactory

BASE_DIR = Path(__file__).resolve().parents[2]
PLAYER = "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) InterludePlayer/1.0"
pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _database_url() -> str:
    database = connection.settings_dict
    password = f":{quote(database['PASSWORD'])}" if database["PASSWORD"] else ""
    return (
        f"postgres://{quote(database['USER'])}{password}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )


@pytest.fixture
def two_servers(tmp_path):
    """Two `api` processes (config/api_server.py, one worker each) on the test database and
    Redis."""
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("needs PostgreSQL and Redis")
    servers = []
    try:
        for number in range(2):
            port = _free_port()
            env = os.environ | {
                "DATABASE_URL": _database_url(),
                "REDIS_URL": settings.REDIS_URL,
                "DJANGO_SECRET_KEY": settings.SECRET_KEY,
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
                "PORT": str(port),
                "WEB_CONCURRENCY": "1",
            }
            log = open(tmp_path / f"server-{number}.log", "w")  # noqa: SIM115 (closed below)
            process = subprocess.Popen(
                [sys.executable, "-m", "config.api_server"],
                cwd=BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            servers.append((port, process, log))
        for port, process, _ in servers:
            _wait_until_up(port, process)
        yield [port for port, _, _ in servers]
    finally:
        for _, process, log in servers:
            process.terminate()
            process.wait(timeout=30)
            log.close()


def _wait_until_up(port: int, process: subprocess.Popen) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not answer")


def _post(port: int, path: str, body: dict, key: str) -> dict:
    import json

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        json.dumps(body).encode(),
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        | {"User-Agent": PLAYER},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 200
        return json.loads(reply.read())


def test_two_servers_share_demand_budgets_and_caps(world, two_servers):
    _, key = services.platform_key_create(name="Living-room player")
    viewers = [
        ViewerFactory(external_id=f"v{n}", age_band="25_34", region="us_west", device="ctv")
        for n in range(16)
    ]
    # Saved after both servers started: each must see it within its refresh interval.
    budgeted = line_item_with_creative(world.acme, daily_budget=Decimal("0.05"), pacing="asap")
    capped = line_item_with_creative(
        world.globex, frequency_cap_day=3, pacing="asap", bid=Decimal("1.00")
    )
    services.index_changed()  # saved outside a transaction: the version moves at once

    def decide(port: int, viewer_id: str) -> dict:
        body = {
            "viewer_id": viewer_id,
            "title_id": world.title.pk,
            "ad_break_id": world.ad_break.pk,
            "device": "ctv",
        }
        return _post(port, "/api/v1/decisions", body, key)

    for port in two_servers:
        for _ in range(100):
            if decide(port, "v0")["pod"]:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the server on {port} never saw the new line items")
    # Forget the probes' reservations (the servers' state is refreshed within a second).
    counters().delete_prefix(keys.PREFIX + "{li:")
    time.sleep(1.5)

    # 32 decisions at once, alternating between the servers: the $0.05 budget buys four
    # $12.50 CPM impressions, and viewer v1 sees the capped line item three times a day.
    requests = [(two_servers[n % 2], viewers[n % 16].external_id) for n in range(16)]
    requests += [(two_servers[n % 2], "v1") for n in range(16)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda args: decide(*args), requests))
    slots = [slot for answer in answers for slot in answer["pod"]]
    budgeted_slots = [slot for slot in slots if slot["line_item_id"] == budgeted.pk]
    capped_for_v1 = [
        slot
        for (_, viewer_id), answer in zip(requests, answers, strict=True)
        for slot in answer["pod"]
        if viewer_id == "v1" and slot["line_item_id"] == capped.pk
    ]
    assert len(budgeted_slots) == 4
    assert len(capped_for_v1) == 3
    today = timezone.now().date()
    assert counters().get_many([keys.reserved_day(budgeted.pk, today)]) == [50_000]

    # Their impressions, half through each server: the shared live totals equal the table.
    tokens = [slot["tracking"]["impression"].split("/t/")[1].split("/")[0] for slot in slots]
    for part, port in enumerate(two_servers):
        events = [
            {"event_id": f"e{n}", "token": token, "type": "impression"}
            for n, token in enumerate(tokens)
            if n % 2 == part
        ]
        assert _post(port, "/api/v1/events", {"events": events}, key)["accepted"] == len(events)
    shown = AdEvent.objects.filter(advertiser=world.acme).count()
    assert shown == 4
    assert counters().get_many([keys.live(world.acme.pk, today, "impressions")]) == [4]


@pytest.fixture
def two_web_servers(tmp_path):
    """Two `web` processes (uvicorn on the ASGI application, as the Procfile runs it) on the
    test database and Redis."""
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("needs PostgreSQL and Redis")
    servers = []
    try:
        for number in range(2):
            port = _free_port()
            env = os.environ | {
                "DATABASE_URL": _database_url(),
                "REDIS_URL": settings.REDIS_URL,
                "DJANGO_SECRET_KEY": settings.SECRET_KEY,
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
                "DJANGO_SECURE_SSL_REDIRECT": "false",
            }
            log = open(tmp_path / f"web-{number}.log", "w")  # noqa: SIM115 (closed below)
            process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "config.asgi:application", "--lifespan", "off"]
                + ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
                cwd=BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            servers.append((port, process, log))
        for port, process, _ in servers:
            _wait_until_up(port, process)
        yield [port for port, _, _ in servers]
    finally:
        for _, process, log in servers:
            process.terminate()
            process.wait(timeout=30)
            log.close()


def _live_strip(port: int, path: str, session: str) -> dict[str, str]:
    import re

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 200
        html = reply.read().decode()
    return dict(re.findall(r'<span data-live="(\w+)">([^<]*)</span>', html))


def test_two_web_servers_show_identical_live_totals(world, two_web_servers, client):
    """The account's "Today (live)" strip is the same on both web processes, and equals the
    event table: the totals live in the shared Redis, not in either process."""
    from tests.factories import MembershipFactory

    assert services.counters_heal() is True
    owner = MembershipFactory(advertiser=world.acme).user
    client.force_login(owner)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    line_item = line_item_with_creative(world.acme)
    services.index_changed()
    for seed in range(3):
        (slot,) = world.decide(at=timezone.now(), seed=seed).pod
        kinds = ["impression", "complete"] + (["click"] if seed == 0 else [])
        outcomes = services.events_record(
            events=[services.IncomingEvent(slot.token, kind, f"{seed}-{kind}") for kind in kinds],
            user_agent=PLAYER,
        )
        assert {outcome.status for outcome in outcomes} == {"accepted"}
    assert AdEvent.objects.filter(line_item=line_item).count() == 7
    strips = [_live_strip(port, f"/a/{world.acme.slug}/", session) for port in two_web_servers]
    assert strips[0] == strips[1]
    assert (strips[0]["impressions"], strips[0]["clicks"], strips[0]["completes"]) == (
        "3",
        "1",
        "3",
    )
