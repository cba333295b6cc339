"""The viewer app in a real browser at 1,366 × 768: a profile picks a title and watches it with
its ad break (VMAP, then the break's VAST pod through the vendored vast-client), sees the
overlay, clicks "Learn more"; a kids profile sees only kids titles and gets no ad.

The film runs faster than the clock (`?timescale=N`) and starts just before the break (`?t=`).
What the server stored is read back from its database: on PostgreSQL the test's own, on SQLite
the copy the server opened (tmp_path/server.sqlite3).

Each page's screenshot is saved in WATCH_SHOTS (default: test-artifacts/watch/).
"""

import contextlib
import os
import sqlite3
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from catalog.models import AgeBand, MaturityRating
from tests.browser.conftest import UPDATE_TIMEOUT_MS, browser_page
from tests.factories import AdBreakFactory, GenreFactory, TitleFactory, ViewerFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

LAPTOP = {"width": 1366, "height": 768}
BREAK_AT = 120
BEACON_SECONDS = 5
TIMESCALE = 5  # film and ads at five times the clock: 10 s of film in 2 s, a 15 s ad in 3 s


def screenshots() -> Path:
    folder = Path(
        os.environ.get("WATCH_SHOTS") or Path(settings.BASE_DIR, "test-artifacts", "watch")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def server_rows(tmp_path: Path, sql: str) -> list[tuple]:
    """Rows of the server's database (see the module's docstring)."""
    if connection.vendor == "sqlite":
        with contextlib.closing(sqlite3.connect(tmp_path / "server.sqlite3")) as copy:
            return copy.execute(sql).fetchall()
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


@pytest.fixture
def watch_world(world):
    """Beside the conftest's world (whose viewer is the first adult profile): a kids profile,
    a kids title and an R title, each 10 minutes with a break at BREAK_AT."""
    family = GenreFactory(name="Animation", slug="animation")
    kids_title = TitleFactory(name="Paper Lantern", maturity_rating=MaturityRating.G,
                              duration_seconds=600)  # fmt: skip
    grown_up = TitleFactory(name="Iron Harbor", maturity_rating=MaturityRating.R,
                            duration_seconds=600)  # fmt: skip
    for title in (kids_title, grown_up):
        title.genres.set([family])
        AdBreakFactory(title=title, offset_seconds=BREAK_AT)
    kids = ViewerFactory(is_kids=True, age_band=AgeBand.UNDER_18)
    return {"kids": kids, "kids_title": kids_title, "grown_up": grown_up}


def choose_profile(page, server, name: str) -> None:
    page.goto(f"{server.url}/watch/")
    page.get_by_role("button", name=name).click()
    page.wait_for_url(f"{server.url}/watch/home")


def test_a_kids_profile_sees_only_kids_titles_and_gets_no_ad(
    chromium, watch_world, server, tmp_path
):
    from playwright.sync_api import expect

    shots = screenshots()
    kids_title = watch_world["kids_title"]
    with browser_page(chromium, server, tmp_path, viewport=LAPTOP) as page:
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        choose_profile(page, server, "Kids")
        page.screenshot(path=str(shots / "kids-home.png"))
        shown = {int(pk) for pk in page.locator(".card a").evaluate_all(
            "links => links.map(link => link.dataset.title)")}  # fmt: skip
        assert shown == {kids_title.pk}
        assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]

        page.goto(f"{server.url}/watch/title/{watch_world['grown_up'].pk}")
        assert "No such title" in page.content() or page.title().startswith("Not found")
        page.goto(f"{server.url}/watch/title/{kids_title.pk}?t={BREAK_AT - 5}&timescale=10")
        player = page.locator("#player")
        assert player.locator(".break-mark").count() == 0  # no ads: no marks
        page.keyboard.press("Space")
        expect(player).to_have_attribute("data-state", "playing")
        page.wait_for_function(
            f"Number(document.getElementById('player').dataset.position) > {BREAK_AT + 20}",
            timeout=UPDATE_TIMEOUT_MS,
        )
        page.keyboard.press("k")
        expect(player).to_have_attribute("data-state", "paused")
        expect(page.locator("[data-ad-overlay]")).to_be_hidden()
        page.goto(f"{server.url}/watch/home")  # leaving: the rest goes in a beacon

    assert not [url for url in requests if "/vmap/" in url or "/vast/" in url]
    kinds = _session_events(tmp_path, viewer_id=watch_world["kids"].pk)
    assert kinds[0] == "play" and kinds[-1] == "abandon"
    assert "pause" in kinds and "ad_start" not in kinds
    assert server_rows(tmp_path, "SELECT count(*) FROM ads_adevent") == [(0,)]


def _session_events(tmp_path: Path, *, viewer_id: int) -> list[str]:
    """The kinds of the playback events of the viewer's one session, in order, once its
    closing beacon (an abandon) has arrived (or after BEACON_SECONDS)."""
    sessions = server_rows(
        tmp_path, f"SELECT id FROM engagement_viewingsession WHERE viewer_id = {viewer_id}"
    )
    assert len(sessions) == 1, sessions
    deadline = time.monotonic() + BEACON_SECONDS
    while True:
        rows = server_rows(
            tmp_path,
            "SELECT kind FROM engagement_playbackevent "
            f"WHERE session_id = {sessions[0][0]} ORDER BY at, id",
        )
        kinds = [kind for (kind,) in rows]
        if kinds[-1:] == ["abandon"] or time.monotonic() > deadline:
            return kinds
        time.sleep(0.1)
