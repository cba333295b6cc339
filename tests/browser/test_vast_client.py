"""A standard VAST client, untouched, plays Interlude's pods: the try-it page (/vast/try/) loads
Dailymotion's vast-client and vmap from static/vendor/, fetches a title's VMAP, each break's
VAST 4.2 pod, and drives a VASTTracker per ad through impression, start, quartiles, complete
and a click. Afterwards the server's database holds exactly one of each event per ad; playing
the same trackers again counts nothing more.

With SQLite the server works on a copy of the test's database (tests/browser/conftest.py), so
the events are read from that copy; on PostgreSQL, from the test's own database.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
from django.db import connection, connections

from ads.models import AdEvent
from tests.ads.conftest import line_item_with_creative
from tests.browser.conftest import browser_page, wait_until
from tests.factories import AdBreakFactory, AdvertiserFactory, PlayerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1366, "height": 768}
PLAY_TIMEOUT_MS = 15_000
EVENT_TYPES = {"impression", "first_quartile", "midpoint", "third_quartile", "complete", "click"}
# Per ad: Impression, start (the impression's link again), three quartiles, complete, click.
TRACKER_CALLS_PER_AD = 7


@pytest.fixture
def vast_world(world):
    """The browser world, plus the web player's id, a pre-roll before its mid-roll, and a
    second advertiser, so each break's pod holds two ads."""
    PlayerFactory(public_id="interlude-web", name="Interlude web player")
    AdBreakFactory(title=world.ad_break.title, offset_seconds=0, max_pod_duration_seconds=90)
    line_item_with_creative(AdvertiserFactory(name="Globex", slug="globex"), category="finance")
    return world


def _events(tmp_path) -> Counter:
    """(decision, creative, event type) → how many rows the server stored."""
    if connection.vendor == "sqlite":
        with contextlib.closing(sqlite3.connect(tmp_path / "server.sqlite3")) as copy:
            rows = copy.execute(
                "SELECT decision_id, creative_id, event_type FROM ads_adevent"
            ).fetchall()
        return Counter(
            (str(decision).replace("-", ""), creative, kind) for decision, creative, kind in rows
        )

    def read() -> Counter:
        try:
            return Counter(
                (decision.hex, creative, kind)
                for decision, creative, kind in AdEvent.objects.values_list(
                    "decision_id", "creative_id", "event_type"
                )
            )
        finally:
            connections.close_all()

    # Playwright's sync API marks an event loop running in this thread, where Django refuses
    # queries (but for conftest's DJANGO_ALLOW_ASYNC_UNSAFE): they run in a thread of their own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(read).result()


def _wait_for(page, condition, what: str, seconds: float = 30.0, seen: list | None = None) -> None:
    """Polls through the page: Playwright delivers its events while the page is waited on.
    Generous: on a loaded 2-core machine the 28 tracker calls took over 10 s."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            calls = "" if seen is None else f"; {len(seen)} seen: {seen}"
            pytest.fail(f"timed out waiting for {what}{calls}")
        page.wait_for_timeout(100)


def test_the_dailymotion_client_plays_every_break_and_counts_each_event_once(
    chromium, vast_world, server, tmp_path
):
    world = vast_world
    query = {
        "player": "interlude-web",
        "viewer": world.viewer.external_id,
        "title": world.ad_break.title_id,
        "device": "ctv",
    }
    tracking: list[tuple[str, int]] = []
    with browser_page(chromium, server, tmp_path, viewport=LAPTOP) as page:
        page.on(
            "response",
            lambda response: (
                "/t/" in response.url and tracking.append((response.url, response.status))
            ),
        )
        page.goto(f"{server.url}/vast/try/?{urlencode(query)}")
        page.click("#play")
        wait_until(
            page,
            "document.getElementById('status').textContent.startsWith('Played:')",
            timeout_ms=PLAY_TIMEOUT_MS,
        )
        status = page.inner_text("#status")
        assert status.startswith("Played: 2 breaks, 4 ads"), status
        first_run = 4 * TRACKER_CALLS_PER_AD
        _wait_for(
            page,
            lambda: len(tracking) == first_run,
            f"the first run's trackers (of {first_run})",
            seen=tracking,
        )

        counted = _events(tmp_path)
        ads = {(decision, creative) for decision, creative, _ in counted}
        assert len(ads) == 4  # two breaks, two ads each
        assert len({decision for decision, _ in ads}) == 2  # one decision per break
        for decision, creative in ads:
            types = {kind: counted[(decision, creative, kind)] for kind in EVENT_TYPES}
            assert types == dict.fromkeys(EVENT_TYPES, 1), (decision, creative, types)
        assert sum(counted.values()) == 4 * len(EVENT_TYPES)
        # Each ad's `start` fired its impression's link again: a replay, not counted.
        assert sorted(status for _, status in tracking).count(204) == 4 * len(EVENT_TYPES)

        page.click("#replay")
        wait_until(
            page,
            "document.getElementById('status').textContent.startsWith('Played again')",
            timeout_ms=PLAY_TIMEOUT_MS,
        )
        _wait_for(page, lambda: len(tracking) == 2 * first_run, "the second run's trackers")
        assert {status for _, status in tracking[first_run:]} == {400}
        assert _events(tmp_path) == counted
        rows = page.locator("#events tbody tr")
        assert rows.count() == 8
        assert "complete" in rows.nth(0).inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
