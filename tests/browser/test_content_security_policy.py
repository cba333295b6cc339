"""Every page passes its own Content-Security-Policy (config/settings/security.py), in a real
browser: the advertiser overview with its live socket, the line item form with its reach preview,
insights with an answer's chart, a title playing to its ad on /watch/, the staff dashboard with
its socket, the API docs (Swagger UI), the VAST try-it page playing its breaks, and admin.

A violation is caught twice: the page's `securitypolicyviolation` events (a listener installed
before any of the page's own scripts run) and Chromium's "Refused to …" console messages. Each
page is driven until its scripts have done their work (a socket open, a chart drawn, an ad on
screen), because most violations happen then, not at load.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from ads.models import LineItem
from tests.browser.conftest import (
    CONTEXT_OPTIONS,
    UPDATE_TIMEOUT_MS,
    browser_page,
    count_requests,
    log_in,
    nothing_leaves,
    settle,
    wait_until,
)
from tests.factories import PlayerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1366, "height": 768}
PLAY_TIMEOUT_MS = 15_000

# Runs in every document before its scripts; Playwright's init scripts are not subject to the
# page's policy.
LISTEN = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportViolation([event.violatedDirective, event.blockedURI, event.sourceFile,
                          event.lineNumber, location.pathname].join(" "));
});
"""


class Violations(list):
    def watch(self, page) -> None:
        page.expose_function("reportViolation", lambda text: self.append(text))
        page.add_init_script(LISTEN)
        page.on(
            "console",
            lambda message: (
                "Content Security Policy" in message.text
                and self.append(f"console: {message.text} ({page.url})")
            ),
        )


@pytest.fixture
def csp_world(world):
    PlayerFactory(public_id="interlude-web", name="Interlude web player")
    return world


def test_the_pages_raise_no_policy_violation(chromium, csp_world, server, tmp_path):
    from playwright.sync_api import expect

    world = csp_world
    slug = world.advertiser.slug
    line_item = LineItem.objects.get(advertiser=world.advertiser)
    violations = Violations()
    with browser_page(chromium, server, tmp_path, viewport=LAPTOP) as page:
        violations.watch(page)
        # Nothing leaves 127.0.0.1 (a creative's media, a landing page).
        nothing_leaves(page.context, server)
        log_in(page, server, world.username, f"/a/{slug}/")
        response = page.goto(f"{server.url}/a/{slug}/")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        expect(page.locator("section.live")).to_have_attribute(
            "data-state", "live", timeout=UPDATE_TIMEOUT_MS
        )

        page.goto(f"{server.url}/a/{slug}/line-items/{line_item.pk}/edit/")
        expect(page.locator("#reach-preview")).not_to_contain_text(
            "Estimating", timeout=UPDATE_TIMEOUT_MS
        )
        # A bid the preview cannot read: its 400 is shown (reach_preview.js, not hx-on).
        page.fill("#id_bid", "-1")
        page.locator("#id_bid").dispatch_event("change")
        expect(page.locator("#reach-preview .form-errors")).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
        page.goto(f"{server.url}/a/{slug}/creatives/")
        page.locator("table a").first.click()
        settle(page)

        page.goto(f"{server.url}/a/{slug}/insights/")
        page.locator("[data-suggestion]").first.click()
        page.locator("form.insights-form button[type=submit]").click()
        expect(page.locator("[data-answer]").first).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
        settle(page)

        query = {
            "player": "interlude-web",
            "viewer": world.viewer.external_id,
            "title": world.ad_break.title_id,
            "device": "ctv",
        }
        page.goto(f"{server.url}/vast/try/?{urlencode(query)}")
        page.click("#play")
        wait_until(
            page,
            "/^(Played|Failed)/.test(document.getElementById('status').textContent)",
            PLAY_TIMEOUT_MS,
        )
        assert page.inner_text("#status").startswith("Played:"), page.inner_text("#status")

        page.goto(f"{server.url}/api/docs/")
        expect(page.locator(".opblock").first).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
        page.locator(".opblock-summary").first.click()
        settle(page)

        page.goto(f"{server.url}/watch/")
        page.get_by_role("button").first.click()
        page.wait_for_url(f"{server.url}/watch/home")
        offset = world.ad_break.offset_seconds
        page.goto(f"{server.url}/watch/title/{world.ad_break.title_id}?t={offset - 2}&timescale=5")
        page.get_by_role("button", name="Play").first.click()
        expect(page.locator("[data-ad-overlay]")).to_be_visible(timeout=UPDATE_TIMEOUT_MS)

        # Staff, in a browser context of their own (their own cookies).
        staff = page.context.browser.new_context(viewport=LAPTOP, **CONTEXT_OPTIONS).new_page()
        count_requests(staff)
        violations.watch(staff)
        log_in(staff, server, world.staff_username, "/staff/")
        expect(staff.locator("[data-staff-socket]")).to_be_visible()
        settle(staff)
        staff.goto(f"{server.url}/staff/sessions/")
        settle(staff)
        staff.goto(f"{server.url}/admin/")
        staff.goto(f"{server.url}/admin/ads/lineitem/")
        staff.goto(f"{server.url}/admin/ads/lineitem/{line_item.pk}/change/")
        settle(staff)

    assert not violations, "\n".join(violations)
