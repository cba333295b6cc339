"""The staff's live sessions in a real browser (Playwright, the system Chromium, the real ASGI
server): the page fits a 1366 px screen and follows the staff socket; a session that starts
and moves shows up in the list, and in the executive dashboard's active sessions, within a
second, without a reload. The server, the world and the browser: conftest.py.

The sessions change in this test's process (through `engagement.services`, as the viewer
app's playback endpoint will change them in the server's), so their messages reach the
server's sockets only through a shared channel layer: those tests need Redis (and
PostgreSQL, for the server to see the test's rows)."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from engagement import services
from engagement.models import PlaybackEvent, ViewingSession
from tests.browser.conftest import UPDATE_TIMEOUT_MS, browser_page, screenshot, signed_in
from tests.factories import TitleFactory, ViewerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDE = {"width": 1366, "height": 900}


def off_the_loop(function, /, **kwargs):
    """Call `function` in a thread of its own, as a view runs: Playwright's sync API marks an
    event loop running in this one (where Django refuses database work but for conftest's
    DJANGO_ALLOW_ASYNC_UNSAFE, and async_to_sync would refuse to run)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def call():
        try:
            return function(**kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


@pytest.fixture
def open_session(world):
    """A session watched for twenty minutes, paused now, with a score history."""
    title = TitleFactory(name="Harbour Lights", duration_seconds=5400)
    viewer = ViewerFactory(external_id="viewer-harbour")
    started = timezone.now() - timedelta(minutes=20)
    session = ViewingSession.objects.create(
        viewer=viewer,
        title=title,
        device="ctv",
        started_at=started,
        engagement_prior=0.62,
        engagement_score=0.58,
        score_history=[[n, 0.62 - 0.01 * n] for n in range(5)],
    )
    for kind, minutes, position in (("play", 0, 0), ("pause", 19, 1140)):
        PlaybackEvent.objects.create(
            session=session,
            kind=kind,
            position_seconds=position,
            at=started + timedelta(minutes=minutes),
        )
    playing = ViewingSession.objects.create(
        viewer=ViewerFactory(external_id="viewer-playing"),
        title=title,
        device="mobile",
        started_at=timezone.now() - timedelta(minutes=2),
    )
    PlaybackEvent.objects.create(
        session=playing, kind="play", position_seconds=0, at=playing.started_at
    )
    return session


def test_the_live_sessions_page_fits_a_laptop_and_follows_the_socket(
    open_session, chromium, server, world, tmp_path
):  # the session first: the server (on SQLite, a copy of the database) must see it
    from playwright.sync_api import expect

    with browser_page(chromium, server, tmp_path, viewport=WIDE) as page:
        signed_in(page, server, world.sessions[world.staff_username], "/staff/sessions/")
        section = page.locator("[data-staff-socket]")
        expect(section).to_have_attribute("data-state", "live", timeout=UPDATE_TIMEOUT_MS)
        row = page.locator(f'tr[data-session="{open_session.pk}"]')
        expect(row.locator('[data-field="state"]')).to_have_text("paused")
        expect(row.locator('[data-field="position"]')).to_have_text("19:00 / 1:30:00")
        expect(row.locator('[data-field="score"]')).to_have_text("58.00%")
        # A playing session's position runs on between messages; a paused one stands still.
        playing = page.locator('tr[data-session]:has-text("viewer-playing") [data-field=position]')
        expect(playing).not_to_have_text(playing.text_content(), timeout=3000)
        expect(row.locator('[data-field="position"]')).to_have_text("19:00 / 1:30:00")
        points = row.locator("polyline").get_attribute("points")
        assert len(points.split()) == 5
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 1366, f"the page is {width} px wide"
        screenshot(page, "staff", "staff-sessions", full_page=True)

        page.goto(f"{server.url}/staff/sessions/{open_session.pk}/")
        expect(page.locator("[data-table=timeline] tbody tr")).to_have_count(2)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366
        screenshot(page, "staff", "staff-session", full_page=True)

        page.goto(f"{server.url}/staff/")
        expect(page.locator("[data-staff-socket]")).to_have_attribute(
            "data-state", "live", timeout=UPDATE_TIMEOUT_MS
        )
        expect(page.locator('[data-figure="average_live_score"]')).to_have_text("58.00%")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366
        screenshot(page, "staff", "staff-executive", full_page=True)


@pytest.mark.services
def test_a_session_reaches_the_staff_screens_within_a_second(chromium, server, world, tmp_path):
    from playwright.sync_api import expect

    title = TitleFactory(name="The Long Night", duration_seconds=5400)
    viewer = ViewerFactory(external_id="viewer-night")
    other_viewer = ViewerFactory()
    with browser_page(chromium, server, tmp_path, viewport=WIDE) as page:
        signed_in(page, server, world.sessions[world.staff_username], "/staff/sessions/")
        expect(page.locator("[data-staff-socket]")).to_have_attribute(
            "data-state", "live", timeout=UPDATE_TIMEOUT_MS
        )
        page.evaluate("() => { window.stillTheSamePage = true; }")

        started = time.monotonic()
        session = off_the_loop(
            services.viewing_session_start,
            viewer_id=viewer.pk,
            title_id=title.pk,
            device="mobile",
            started_at=timezone.now(),
        )
        row = page.locator(f'tr[data-session="{session.pk}"]')
        expect(row).to_contain_text("viewer-night", timeout=UPDATE_TIMEOUT_MS)
        assert time.monotonic() - started < 1.0
        expect(page.locator('[data-figure="active_sessions"]')).to_have_text("1")

        off_the_loop(
            PlaybackEvent.objects.create,
            session=session,
            kind="pause",
            position_seconds=30,
            at=timezone.now(),
        )
        started = time.monotonic()
        off_the_loop(services.sessions_touched, session_ids=[session.pk])
        expect(row.locator('[data-field="state"]')).to_have_text(
            "paused", timeout=UPDATE_TIMEOUT_MS
        )
        assert time.monotonic() - started < 1.0
        # One point per second scored (a second score within the same second replaces it).
        history = off_the_loop(lambda: ViewingSession.objects.get(pk=session.pk).score_history)
        assert len(row.locator("polyline").get_attribute("points").split()) == len(history)
        assert page.evaluate("() => window.stillTheSamePage === true"), "the page reloaded"

        # The executive dashboard's active sessions, pushed over the same socket (its htmx
        # polling is every 5 s: this is not it).
        page.goto(f"{server.url}/staff/")
        expect(page.locator("[data-staff-socket]")).to_have_attribute(
            "data-state", "live", timeout=UPDATE_TIMEOUT_MS
        )
        active = page.locator('[data-figure="active_sessions"]')
        expect(active).to_have_text("1")
        started = time.monotonic()
        off_the_loop(
            services.viewing_session_start,
            viewer_id=other_viewer.pk,
            title_id=title.pk,
            device="ctv",
            started_at=timezone.now(),
        )
        expect(active).to_have_text("2", timeout=UPDATE_TIMEOUT_MS)
        assert time.monotonic() - started < 1.0
