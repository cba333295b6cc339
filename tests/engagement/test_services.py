from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.forms.models import model_to_dict

from engagement.models import PlaybackEvent, Rating, ViewingSession
from engagement.services import (
    PlaybackSpec,
    RatingSpec,
    ratings_upsert,
    viewing_session_finish,
    viewing_session_start,
)
from tests.factories import TitleFactory, ViewerFactory

pytestmark = pytest.mark.django_db

WHEN = datetime(1998, 4, 1, 12, 0, tzinfo=UTC)


def test_ratings_upsert_is_keyed_on_viewer_and_title():
    viewer, other_viewer, title = ViewerFactory(), ViewerFactory(), TitleFactory()
    written = ratings_upsert(
        ratings=[
            RatingSpec(viewer_id=viewer.id, title_id=title.id, rating=3, rated_at=WHEN),
            RatingSpec(viewer_id=other_viewer.id, title_id=title.id, rating=5, rated_at=WHEN),
        ],
        batch_size=1,
    )
    assert written == 2
    later = datetime(1998, 5, 1, tzinfo=UTC)
    ratings_upsert(
        ratings=[RatingSpec(viewer_id=viewer.id, title_id=title.id, rating=4, rated_at=later)]
    )
    assert Rating.objects.count() == 2
    rating = Rating.objects.get(viewer=viewer, title=title)
    assert (rating.rating, rating.rated_at) == (4, later)


@pytest.mark.parametrize(
    ("rating", "rated_at", "message"),
    [
        (0, WHEN, "0 is not between 1 and 5"),
        (6, WHEN, "6 is not between 1 and 5"),
        (3, datetime(1998, 4, 1), "needs a time zone"),
    ],
)
def test_ratings_upsert_refuses_bad_ratings_and_writes_nothing(rating, rated_at, message):
    viewer, title, other_title = ViewerFactory(), TitleFactory(), TitleFactory()
    with pytest.raises(ValidationError, match=message):
        ratings_upsert(
            ratings=[
                RatingSpec(viewer_id=viewer.id, title_id=other_title.id, rating=4, rated_at=WHEN),
                RatingSpec(
                    viewer_id=viewer.id, title_id=title.id, rating=rating, rated_at=rated_at
                ),
            ],
            batch_size=1,
        )
    assert not Rating.objects.exists()


def test_ratings_upsert_refuses_a_pair_twice():
    viewer, title = ViewerFactory(), TitleFactory()
    spec = RatingSpec(viewer_id=viewer.id, title_id=title.id, rating=4, rated_at=WHEN)
    with pytest.raises(ValidationError, match="rates title .* twice"):
        ratings_upsert(ratings=[spec, spec])
    assert not Rating.objects.exists()


# -- sessions stored as they happen ------------------------------------------------------------


def started_session() -> ViewingSession:
    return viewing_session_start(
        viewer_id=ViewerFactory().id, title_id=TitleFactory().id, device="ctv", started_at=WHEN
    )


def test_a_session_is_stored_open_when_it_starts():
    session = started_session()
    stored = ViewingSession.objects.get()
    assert stored.pk == session.pk
    assert (stored.started_at, stored.ended_at, stored.watched_seconds) == (WHEN, None, 0)
    assert (stored.completed, stored.abandoned, stored.device) == (False, False, "ctv")
    assert not stored.events.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"device": "toaster"}, "device"), ({"started_at": datetime(1998, 4, 1)}, "started_at")],
)
def test_a_start_that_cannot_be_is_refused(changes, field):
    fields = {"viewer_id": ViewerFactory().id, "title_id": TitleFactory().id, "device": "ctv"}
    with pytest.raises(ValidationError) as error:
        viewing_session_start(**({"started_at": WHEN} | fields | changes))
    assert field in error.value.message_dict
    assert not ViewingSession.objects.exists()


def test_finishing_a_session_stores_its_end_and_its_events():
    session = started_session()
    end = WHEN + timedelta(minutes=30)
    finished = viewing_session_finish(
        session=session,
        ended_at=end,
        watched_seconds=1700,
        completed=False,
        abandoned=True,
        events=[
            PlaybackSpec("play", 0, WHEN),
            PlaybackSpec("pause", 600, WHEN + timedelta(minutes=10), {"seconds": 90}),
            PlaybackSpec("abandon", 1700, end),
        ],
    )
    assert finished.ended_at == end  # the instance is updated too
    stored = ViewingSession.objects.get()
    assert (stored.ended_at, stored.watched_seconds) == (end, 1700)
    assert (stored.completed, stored.abandoned) == (False, True)
    assert [(e.kind, e.position_seconds, e.detail) for e in stored.events.all()] == [
        ("play", 0, {}),
        ("pause", 600, {"seconds": 90}),
        ("abandon", 1700, {}),
    ]


FINISH = {
    "ended_at": WHEN + timedelta(minutes=30),
    "watched_seconds": 1800,
    "completed": True,
    "abandoned": False,
    "events": [PlaybackSpec("play", 0, WHEN)],
}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ended_at": WHEN - timedelta(seconds=1)}, "ended_at"),  # before the start
        ({"ended_at": None}, "ended_at"),
        ({"abandoned": True}, "abandoned"),  # completed and abandoned
        ({"watched_seconds": -1}, "watched_seconds"),
        ({"events": [PlaybackSpec("rewind", 0, WHEN)]}, "kind"),
    ],
)
def test_a_finish_that_cannot_be_is_refused_and_changes_nothing(changes, field):
    session = started_session()
    before = model_to_dict(ViewingSession.objects.get())
    with pytest.raises(ValidationError) as error:
        viewing_session_finish(session=session, **(FINISH | changes))
    assert field in error.value.message_dict
    assert model_to_dict(ViewingSession.objects.get()) == before
    assert session.ended_at is None
    assert not PlaybackEvent.objects.exists()


def test_a_session_is_finished_once():
    session = started_session()
    stale = ViewingSession.objects.get()  # read before the finish, as another process would
    viewing_session_finish(session=session, **FINISH)
    before = model_to_dict(ViewingSession.objects.get())
    again = FINISH | {"ended_at": WHEN + timedelta(hours=1), "watched_seconds": 3600}
    for instance in (session, stale):
        with pytest.raises(ValidationError) as error:
            viewing_session_finish(session=instance, **again)
        assert "already ended" in error.value.message_dict["ended_at"][0]
    assert model_to_dict(ViewingSession.objects.get()) == before
    assert stale.ended_at is None
    assert PlaybackEvent.objects.count() == 1
