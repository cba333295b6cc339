import datetime as dt

import pytest

from engagement import selectors
from engagement.models import ViewingSession
from tests.factories import TitleFactory, ViewerFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 3, 10, 20, 0, tzinfo=dt.UTC)


def session(minutes_ago: int, watched: int, *, ended: bool, completed: bool = False, now=NOW):
    title = TitleFactory(duration_seconds=6000)
    started = now - dt.timedelta(minutes=minutes_ago)
    return ViewingSession.objects.create(
        viewer=ViewerFactory(),
        title=title,
        device="ctv",
        started_at=started,
        ended_at=started + dt.timedelta(seconds=watched) if ended else None,
        watched_seconds=watched,
        completed=completed,
    )


def test_viewing_activity_by_hand():
    session(10, 1200, ended=False)  # open now
    session(30, 6000, ended=True, completed=True)
    session(60, 3000, ended=True)
    session(60 * 22, 600, ended=True)  # yesterday (UTC)
    session(60 * 5, 900, ended=False)  # left open five hours ago: not active any more
    activity = selectors.viewing_activity(at=NOW)
    assert activity["active_sessions"] == 1
    assert activity["sessions_today"] == 4
    # Of the three no longer open (the completed one, the ended one, the one left open five
    # hours), one completed; the session open now has not had its chance yet.
    assert activity["completion_rate"] == pytest.approx(1 / 3)
    # Watched shares today: 0.2, 1.0, 0.5 and 0.15.
    assert activity["average_engagement"] == pytest.approx((0.2 + 1.0 + 0.5 + 0.15) / 4)


def test_just_after_midnight_the_completion_rate_is_unknown_not_zero():
    just_after_midnight = dt.datetime(2026, 3, 11, 0, 20, tzinfo=dt.UTC)
    for minutes_ago in (5, 15):  # both started today, both still playing
        session(minutes_ago, 300, ended=False, now=just_after_midnight)
    session(60, 3600, ended=True, completed=True, now=just_after_midnight)  # yesterday's
    activity = selectors.viewing_activity(at=just_after_midnight)
    assert (activity["sessions_today"], activity["active_sessions"]) == (2, 2)
    assert activity["completion_rate"] is None  # not 0 %: none of them could have finished


def test_no_sessions_means_none_not_zero():
    activity = selectors.viewing_activity(at=NOW)
    assert (activity["sessions_today"], activity["completion_rate"]) == (0, None)
    assert activity["average_engagement"] is None
