"""The live dashboards in a real browser: Playwright drives the system Chromium against the real
ASGI server (uvicorn, WebSockets included). An owner, logged in, opens the overview; a player
posts a decision and its impression to the server's API; the "Today (live)" impressions tile
changes without a reload. The same for staff on the executive dashboard, whose
figures htmx polls every few seconds (every second here: STAFF_DASHBOARD_REFRESH_SECONDS, 5 by
default). The server, the world and the browser: conftest.py.
"""

import pytest

from tests.browser.conftest import (
    POLL_TIMEOUT_MS,
    UPDATE_TIMEOUT_MS,
    browser_page,
    play_an_ad,
    signed_in,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(autouse=True)
def polls_every_second(monkeypatch):
    """Read by the server at its start (the server fixture comes after this one)."""
    monkeypatch.setenv("STAFF_DASHBOARD_REFRESH_SECONDS", "1")


def test_the_live_impressions_tile_changes_without_a_reload(chromium, server, world, tmp_path):
    from playwright.sync_api import expect

    with browser_page(chromium, server, tmp_path) as page:
        signed_in(page, server, world.sessions[world.username], f"/a/{world.advertiser.slug}/")
        live = page.locator("section.live")
        impressions = live.locator('[data-live="impressions"]')
        # The socket is open (dashboard.js marks the strip live) and today is empty.
        expect(live).to_have_attribute("data-state", "live", timeout=UPDATE_TIMEOUT_MS)
        expect(impressions).to_have_text("0")
        page.evaluate("() => { window.stillTheSamePage = true; }")

        report = play_an_ad(server, world)
        assert report["accepted"] == 1, report

        expect(impressions).to_have_text("1", timeout=UPDATE_TIMEOUT_MS)
        expect(live.locator('[data-live="spend"]')).to_have_text("$0.01")  # a 12.50 CPM, in USD
        assert page.evaluate("() => window.stillTheSamePage === true"), "the page reloaded"


def test_the_executive_dashboard_figures_follow_without_a_reload(chromium, server, world, tmp_path):
    from playwright.sync_api import expect

    with browser_page(chromium, server, tmp_path) as page:
        signed_in(page, server, world.sessions[world.staff_username], "/staff/")
        impressions = page.locator('[data-figure="impressions"]')
        expect(impressions).to_have_text("0")
        page.evaluate("() => { window.stillTheSamePage = true; }")

        report = play_an_ad(server, world)
        assert report["accepted"] == 1, report

        # htmx polls every second here: the next poll at the latest brings the impression.
        expect(impressions).to_have_text("1", timeout=POLL_TIMEOUT_MS)
        expect(page.locator('[data-figure="fill_rate"]')).to_have_text("100.00%")
        assert page.evaluate("() => window.stillTheSamePage === true"), "the page reloaded"
