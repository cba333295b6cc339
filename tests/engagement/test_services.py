from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from engagement.models import Rating
from engagement.services import RatingSpec, ratings_upsert
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
