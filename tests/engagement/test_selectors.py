import datetime as dt

import pytest

from engagement import selectors
from engagement.models import ViewingSession
from tests.factories import TitleFactory, ViewerFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 3, 10, 20, 0, tzinfo=dt.UTC)


def session(minutes_ago: int, watched: int, *, ended: bool, completed: bool = False):
    title = TitleFactory(duration_seconds=6000)
    started = NOW - dt.timedelta(minutes=minutes_ago)
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
    assert activity["completion_rate"] == pytest.approx(1 / 4)
    # Watched shares today: 0.2, 1.0, 0.5 and 0.15.
    assert activity["average_engagement"] == pytest.approx((0.2 + 1.0 + 0.5 + 0.15) / 4)


def test_no_sessions_means_none_not_zero():
    activity = selectors.viewing_activity(at=NOW)
    assert (activity["sessions_today"], activity["completion_rate"]) == (0, None)
    assert activity["average_engagement"] is None
