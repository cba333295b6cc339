"""A newcomer's first minutes, in a real browser at 1,366 × 768 (a laptop): an owner logs in,
sees live tiles that are not zero and that move while a player plays ads, walks every page of
the advertiser app without any scrolling sideways, pauses a line item and sees its delivery
panel say so, and opens the API docs, which list their operations offline.

With BROWSER_SHOTS set, each page's screenshot is saved in BROWSER_SHOTS/newcomer/, so what a
newcomer sees can be looked at (conftest.screenshot).
"""

import pytest

from ads.models import Campaign, Creative, LineItem
from tests.browser.conftest import (
    UPDATE_TIMEOUT_MS,
    browser_page,
    log_in,
    play_an_ad,
    screenshot,
    settle,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

LAPTOP = {"width": 1366, "height": 768}
LIVE_CHANGE_MS = 10_000


def test_a_newcomers_path_through_the_advertiser_app(chromium, world, server, tmp_path):
    from playwright.sync_api import expect

    slug = world.advertiser.slug
    line_item = LineItem.objects.get(advertiser=world.advertiser)
    campaign = Campaign.objects.get(advertiser=world.advertiser)
    creative = Creative.objects.get(advertiser=world.advertiser)
    assert play_an_ad(server, world, "newcomer-1")["accepted"] == 1  # today is not empty

    with browser_page(chromium, server, tmp_path, viewport=LAPTOP) as page:
        log_in(page, server, world.username, f"/a/{slug}/")
        live = page.locator("section.live")
        impressions = live.locator('[data-live="impressions"]')
        expect(live).to_have_attribute("data-state", "live", timeout=UPDATE_TIMEOUT_MS)
        expect(impressions).to_have_text("1")
        assert play_an_ad(server, world, "newcomer-2")["accepted"] == 1
        expect(impressions).to_have_text("2", timeout=LIVE_CHANGE_MS)

        pages = {
            "overview": f"/a/{slug}/",
            "campaigns": f"/a/{slug}/campaigns/",
            "campaign": f"/a/{slug}/campaigns/{campaign.pk}/",
            "campaign-report": f"/a/{slug}/campaigns/{campaign.pk}/report/",
            "campaign-new": f"/a/{slug}/campaigns/new/",
            "line-items": f"/a/{slug}/line-items/",
            "line-item": f"/a/{slug}/line-items/{line_item.pk}/",
            "line-item-report": f"/a/{slug}/line-items/{line_item.pk}/report/",
            "line-item-new": f"/a/{slug}/line-items/new/",
            "line-item-edit": f"/a/{slug}/line-items/{line_item.pk}/edit/",
            "creatives": f"/a/{slug}/creatives/",
            "creative": f"/a/{slug}/creatives/{creative.pk}/",
            "creative-new": f"/a/{slug}/creatives/new/",
        }
        too_wide = {}
        for name, path in pages.items():
            response = page.goto(server.url + path)
            assert response is not None and response.status == 200, (name, response)
            settle(page)
            screenshot(page, "newcomer", name, full_page=True)
            width = page.evaluate("() => document.documentElement.scrollWidth")
            if width > LAPTOP["width"]:
                too_wide[name] = width
        assert too_wide == {}, f"pages wider than {LAPTOP['width']} px: {too_wide}"

        # Pause from the line item's page: the delivery panel follows without a reload.
        page.goto(server.url + pages["line-item"])
        checks = page.locator("#delivery-checks")
        expect(checks).to_contain_text("The line item and its campaign are active.")
        page.locator(".status-panel button", has_text="Pause").click()
        expect(page.locator(".status-panel")).to_contain_text("Paused")
        expect(checks).to_contain_text("The line item is paused.", timeout=UPDATE_TIMEOUT_MS)
        screenshot(page, "newcomer", "line-item-paused", full_page=True)

        # The API docs list their operations from local files (no network here).
        page.goto(server.url + "/api/docs/")
        operations = page.locator(".opblock")
        expect(operations.first).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
        assert operations.count() >= 2
        screenshot(page, "newcomer", "api-docs", full_page=True)
