"""What the browser tests share: Chromium (or a skip saying what is missing), a world of one
account, the real ASGI server on a free port of 127.0.0.1 reaching the test's database, a page in
a fresh context of the worker's headless Chromium (launched once per worker by Playwright's
`launch-server`; each test gets a context of its own: its own cookies, storage and cache),
logging in through the form, and a player playing an ad.

Playwright's driver (a Node process that every sync API call goes through) is started once
for a run of browser tests on a worker, not once per test (0.35 s of CPU and of wall each):
the Driver below. Its sync API marks an event loop running in the test's thread for as long as
the driver runs, and Django then refuses database calls there (SynchronousOnlyOperation) and
pytest-asyncio cannot start its own loops; so the driver is stopped before a test that is not a
browser test runs on the worker, and while it runs DJANGO_ALLOW_ASYNC_UNSAFE is set in this
process only (never in a server's environment), for the browser tests' own setup and checks.

The server is a process of its own on the test's database, forked for each test by the
worker's fork server (tests/browser/forkserver.py: the libraries the server imports whatever its
settings are imported there once; Django's setup from the server's environment, its settings,
apps and URLs, is done once per environment, in a template process the servers of that
environment are forked from; each server opens the test's database, builds its decision index
from it and starts its threads itself):
- PostgreSQL: the test database itself (the tests commit: `transaction=True`), so the server
  sees the world the test made; with REDIS_URL it shares Redis too.
- SQLite: the test database is in memory, invisible to another process, so the world is copied
  into a file (SQLite's backup API) that the server opens. Nothing flows back: the browser and
  the player talk to the server only, and what a test asserts is what the browser shows. The
  copy is the test's tmp_path/server.sqlite3, which every server of the worker opens by one
  path (a symbolic link to the test's tmp_path), so that they share one environment.
Either way the server publishes to its own sockets (the in-memory channel layer is enough).

Skips when Chromium (/usr/bin/chromium, Debian's `chromium`) or the playwright package is
missing, unless REQUIRE_BROWSER=1 (CI), which makes that a failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.test import Client

from ads import services
from ads.models import Advertiser
from catalog.models import AdBreak, Viewer
from tests.ads.conftest import line_item_with_creative
from tests.factories import (
    PASSWORD,
    AdBreakFactory,
    AdvertiserFactory,
    MembershipFactory,
    UserFactory,
    ViewerFactory,
)

CHROMIUM = "/usr/bin/chromium"
# No first-run work, no background traffic: the browser only ever talks to 127.0.0.1.
# (Headless: Playwright's launch option.)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REQUIRE_BROWSER = os.environ.get("REQUIRE_BROWSER") == "1"
# Set in this process while Playwright's driver runs (Driver), never in a server's environment.
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
SERVER_START_SECONDS = 30
BROWSER_START_SECONDS = 30
UPDATE_TIMEOUT_MS = 5000
# settle(): the page has loaded and no request has been in flight for this long. Playwright's
# "networkidle" waits 500 ms after the last one, on every page; the pages' own chains (an htmx
# partial loading the next) follow each other within a few milliseconds.
QUIET_MS = 150
POLL_TIMEOUT_MS = 8000  # the executive dashboard polls every 5 s (by default)
# A player's user agent: scripted clients' (python-requests, curl) events are not counted.
PLAYER_AGENT = "InterludeTestPlayer/1.0"
# Every browser context the tests open: a user who asked their system for less motion. The
# pages' charts then draw once instead of animating for a second (dashboard.js, staff.js;
# Pico's transitions too), which only cost Chromium frames, and a screenshot shows them drawn.
CONTEXT_OPTIONS = {"reduced_motion": "reduce"}


class BrowserServer:
    """The worker's Chromium, launched once by Playwright (`playwright launch-server`, with the
    switches Playwright's own launch uses) and reached by each test over Playwright's protocol:
    a test gets a context of its own (cookies, storage, cache) in a browser already running."""

    def __init__(self, folder: Path) -> None:
        config = folder / "launch-server.json"
        config.write_text(
            json.dumps({"executablePath": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True})
        )
        self.output = folder / "launch-server.out"
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "playwright", "launch-server", "--browser", "chromium"]
                + ["--config", str(config)],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + BROWSER_START_SECONDS
        while not (endpoint := self.output.read_text().partition("\n")[0]).startswith("ws://"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail(f"Chromium did not start:\n{self.output.read_text()}", pytrace=False)
            time.sleep(0.05)
        self.endpoint = endpoint

    def running(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self.process.terminate()  # Playwright closes the browser, then exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # what is left of it
        self.process.wait()


@pytest.fixture(scope="session")
def browser_servers(tmp_path_factory) -> Iterator[list[BrowserServer]]:
    """The worker's Chromium (started by the first browser test that runs; again if it died)."""
    started: list[BrowserServer] = []
    yield started
    for browser in started:
        browser.close()


@pytest.fixture
def chromium(browser_servers, tmp_path_factory) -> str:
    """The endpoint of the worker's Chromium (BrowserServer), or a skip (a failure with
    REQUIRE_BROWSER=1) saying what is missing."""
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (requirements/dev.txt)")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"Chromium at {CHROMIUM} (Debian's chromium package)")
    if missing:
        reason = "needs " + " and ".join(missing)
        if REQUIRE_BROWSER:
            pytest.fail(f"REQUIRE_BROWSER=1 but this test {reason}", pytrace=False)
        pytest.skip(reason)
    if not (browser_servers and browser_servers[-1].running()):
        browser_servers.append(BrowserServer(tmp_path_factory.mktemp("chromium")))
    return browser_servers[-1].endpoint


@dataclass
class World:
    advertiser: Advertiser
    username: str
    staff_username: str
    ad_break: AdBreak
    viewer: Viewer
    player_key: str
    sessions: dict[str, str]  # username → a session of theirs (signed_in)


def session_key(user) -> str:
    """A session in which `user` is logged in, stored in the test's database (so, made before
    the server starts, in the SQLite copy it opens too): what the login form leaves behind,
    without the production hasher's rehash at each login (half a second of the server's CPU)."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def world(db) -> World:
    """An account with an owner, a staff user (each with a session: World.sessions), a live
    line item with a creative, a title with a break, a viewer, and a player's API key, all
    committed before the server starts."""
    advertiser = AdvertiserFactory(name="Acme Sodas", slug="acme")
    owner = UserFactory(username="olive")
    staff = UserFactory(username="sam", is_staff=True)
    for user in (owner, staff):
        # The server runs with the production hashers, not the tests' fast MD5 one.
        user.password = PBKDF2PasswordHasher().encode(PASSWORD, "browsertest", iterations=1000)
        user.save(update_fields=["password"])
    MembershipFactory(advertiser=advertiser, user=owner)
    line_item_with_creative(advertiser, category="travel")
    _, player_key = services.platform_key_create(name="player")
    return World(
        advertiser=advertiser,
        username=owner.username,
        staff_username=staff.username,
        ad_break=AdBreakFactory(),
        viewer=ViewerFactory(),
        player_key=player_key,
        sessions={user.username: session_key(user) for user in (owner, staff)},
    )


def _database_url(tmp_path: Path, folder: Path) -> str:
    """A DATABASE_URL for the server process that reaches this test's data; on SQLite, the copy
    in tmp_path, by way of `folder`, a symbolic link to this test's tmp_path: every server of the
    worker has one DATABASE_URL, so that they share one template in the fork server."""
    connection.ensure_connection()
    if connection.vendor == "sqlite":
        copy = tmp_path / "server.sqlite3"
        with contextlib.closing(sqlite3.connect(copy)) as target:
            connection.connection.backup(target)
        link = folder.with_name(folder.name + ".new")
        link.unlink(missing_ok=True)
        link.symlink_to(tmp_path, target_is_directory=True)
        link.replace(folder)  # the link changes at once (rename(2) replaces it)
        return f"sqlite:///{folder / copy.name}"
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or 5432
    return f"postgres://{credentials}@{host}:{port}/{quote(db['NAME'], safe='')}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    url: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class ForkServer:
    """The worker's tests/browser/forkserver.py: starts each test's server by forking a
    process that has already imported the libraries the server needs (see its docstring)."""

    def __init__(self) -> None:
        # No settings there: its imports must not read any (see its docstring).
        environment = {
            k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", ASYNC_UNSAFE)
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.browser.forkserver"],
            cwd=settings.BASE_DIR,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, request: dict) -> dict:
        if self.process.poll() is not None:
            pytest.fail(f"The fork server exited ({self.process.returncode})", pytrace=False)
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()  # it stops what still runs, then exits
        self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def fork_server() -> Iterator[ForkServer]:
    forks = ForkServer()
    yield forks
    forks.close()


@pytest.fixture
def server(world, tmp_path, tmp_path_factory, fork_server) -> Iterator[Server]:
    """uvicorn serving config.asgi:application on 127.0.0.1, one process, until the test ends."""
    port = _free_port()
    # Not pytest's name of the test phase (each test's own): nothing else differs from one
    # server of the worker to the next, so they share the fork server's template.
    ours = (ASYNC_UNSAFE, "PYTEST_CURRENT_TEST")
    env = {name: value for name, value in os.environ.items() if name not in ours} | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _database_url(tmp_path, tmp_path_factory.getbasetemp() / "server-database"),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_DEBUG": "true",  # static files straight from the app folders
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    log = tmp_path / "server.log"
    argv = ["config.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", "1", "--no-access-log"]
    start = {"argv": argv, "env": env, "cwd": str(settings.BASE_DIR), "log": str(log)}
    pid = fork_server.ask({"start": start})["pid"]
    running = Server(url=f"http://127.0.0.1:{port}", log=log)
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            exited = fork_server.ask({"poll": pid})["status"]
            if exited is not None:
                pytest.fail(f"The server exited ({exited}):\n{running.log_tail()}")
            try:
                with urllib.request.urlopen(f"{running.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"The server did not start in time:\n{running.log_tail()}")
            time.sleep(0.05)
        yield running
    finally:
        fork_server.ask({"stop": pid})


def _post(server: Server, path: str, body: dict, key: str) -> dict:
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "User-Agent": PLAYER_AGENT,
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def play_an_ad(server: Server, world: World, event_id: str = "browser-e1") -> dict:
    """What a player does at an ad break: ask for the pod, then report its impression."""
    decision = _post(
        server,
        "/api/v1/decisions",
        {
            "viewer_id": world.viewer.external_id,
            "title_id": world.ad_break.title_id,
            "ad_break_id": world.ad_break.pk,
            "device": "ctv",
        },
        world.player_key,
    )
    assert [slot["advertiser_id"] for slot in decision["pod"]] == [world.advertiser.pk], decision
    token = decision["pod"][0]["tracking"]["impression"].split("/t/")[1].split("/")[0]
    event = {"event_id": event_id, "token": token, "type": "impression"}
    return _post(server, "/api/v1/events", {"events": [event]}, world.player_key)


class Driver:
    """The worker's Playwright driver and its connection to the worker's Chromium, kept from
    one browser test to the next (see the module's docstring): started by the first browser
    test, stopped by pytest_runtest_teardown below when the next test is not one (or none)."""

    def __init__(self) -> None:
        self.manager = None
        self.playwright = None
        self.browser = None
        self.endpoint = ""
        self.async_unsafe_before: str | None = None

    def connected(self, endpoint: str):
        """The worker's Chromium (at `endpoint`) as a Playwright Browser, the driver started
        and the browser connected when they are not yet (or Chromium was started again)."""
        if self.manager is None:
            from playwright.sync_api import sync_playwright

            self.async_unsafe_before = os.environ.get(ASYNC_UNSAFE)
            os.environ[ASYNC_UNSAFE] = "true"
            self.manager = sync_playwright()
            self.playwright = self.manager.start()
        if self.browser is None or self.endpoint != endpoint or not self.browser.is_connected():
            self.browser = self.playwright.chromium.connect(endpoint)
            self.endpoint = endpoint
        return self.browser

    def stop(self) -> None:
        if self.manager is None:
            return
        try:
            self.manager.__exit__(None, None, None)  # closes the connection, ends the driver
        finally:
            self.manager = self.playwright = self.browser = None
            if self.async_unsafe_before is None:
                os.environ.pop(ASYNC_UNSAFE, None)
            else:
                os.environ[ASYNC_UNSAFE] = self.async_unsafe_before


driver = Driver()


@pytest.hookimpl(wrapper=True)  # after the test's fixtures are torn down, even when one fails
def pytest_runtest_teardown(item, nextitem):
    try:
        return (yield)
    finally:
        if nextitem is None or nextitem.get_closest_marker("browser") is None:
            driver.stop()


@contextlib.contextmanager
def browser_page(
    chromium: str, server: Server, tmp_path: Path, viewport: dict | None = None
) -> Iterator:
    """A page in a fresh context of the worker's headless Chromium (`chromium`: its endpoint);
    on failure, a screenshot and the server's log. Every context the test opened (another
    user's, say) is closed after it."""
    browser = driver.connected(chromium)
    page = browser.new_context(viewport=viewport, **CONTEXT_OPTIONS).new_page()
    count_requests(page)
    try:
        yield page
    except Exception:
        shot = tmp_path / "page.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"Screenshot: {shot}\nServer log:\n{server.log_tail()}")
        raise
    finally:
        for context in browser.contexts:
            context.close()


def screenshot(page, folder: str, name: str, *, full_page: bool = False) -> None:
    """Saves what the page shows as BROWSER_SHOTS/<folder>/<name>.png when BROWSER_SHOTS names
    a folder (`BROWSER_SHOTS=test-artifacts make test`: test-artifacts/ is git-ignored), so that
    a person can look at what a newcomer, a viewer or the staff see; otherwise nothing. No test
    checks a picture, and each cost Chromium ~0.1-0.35 s of CPU (15 in the newcomer's tour)."""
    shots = os.environ.get("BROWSER_SHOTS")
    if not shots:
        return
    path = Path(shots, folder, f"{name}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)


def nothing_leaves(context, server: Server) -> None:
    """Aborts every request of the browser context that is not for the server (a creative's
    media, a landing page): nothing leaves 127.0.0.1. The pattern is one Playwright matches in
    its own process, so the server's requests go straight through, not each by way of this
    one (a route that let them continue took a round trip to Python per request)."""
    elsewhere = re.compile("^(?!" + re.escape(server.url + "/") + ")")
    context.route(elsewhere, lambda route: route.abort())


def log_in(page, server: Server, username: str, path: str) -> None:
    """Through the login form, as a person would, landing on `path`."""
    page.goto(f"{server.url}/login/?next={path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + path)


def signed_in(page, server: Server, session: str, path: str) -> None:
    """Opens `path` with the cookie of a session made beforehand (session_key), landing on it
    as log_in would. The form itself is walked by the tests of a newcomer and of the pages'
    policy (and tests/accounts); the others start logged in."""
    cookie = {"name": settings.SESSION_COOKIE_NAME, "value": session, "url": server.url}
    page.context.add_cookies([cookie])
    page.goto(server.url + path)
    assert page.url == server.url + path, f"not signed in: {page.url}"


def wait_until(page, expression: str, timeout_ms: int = UPDATE_TIMEOUT_MS) -> None:
    """Waits until the JavaScript `expression` is true in the page. Not page.wait_for_function:
    Playwright runs that predicate through `new Function` inside the page, which the pages'
    Content-Security-Policy refuses (no eval); page.evaluate goes through the DevTools protocol,
    which the policy does not govern."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_ms} ms waiting for: {expression}")
        page.wait_for_timeout(50)


def count_requests(page) -> None:
    """Keeps the page's requests in flight, and when the last one ended, for settle()."""
    in_flight: set = set()
    page.requests_in_flight = in_flight
    page.last_request_ended = time.monotonic()

    def ended(request) -> None:
        in_flight.discard(request)
        page.last_request_ended = time.monotonic()

    page.on("request", lambda request: in_flight.add(request))
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)


def settle(page, timeout_ms: int = UPDATE_TIMEOUT_MS) -> None:
    """Waits until the page has loaded and no request has been in flight for QUIET_MS: its
    scripts and htmx partials have done their work. Playwright's wait for "networkidle" does
    the same with 500 ms of quiet."""
    page.wait_for_load_state("load")
    deadline = time.monotonic() + timeout_ms / 1000
    while page.requests_in_flight or time.monotonic() - page.last_request_ended < QUIET_MS / 1000:
        if time.monotonic() > deadline:
            pending = [request.url for request in page.requests_in_flight]
            raise AssertionError(f"still loading after {timeout_ms} ms: {pending}")
        page.wait_for_timeout(25)
