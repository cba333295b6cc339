"""Writes to what viewers watched and how they liked it."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction

from catalog.services import BATCH_SIZE, batched
from engagement.models import Rating


@dataclass(frozen=True)
class RatingSpec:
    """A viewer's rating of a title, by database ids (a loader maps its own keys first)."""

    viewer_id: int
    title_id: int
    rating: int
    rated_at: datetime


def ratings_upsert(*, ratings: Iterable[RatingSpec], batch_size: int = BATCH_SIZE) -> int:
    """Create or update ratings keyed on (viewer, title): a second identical load leaves the
    same rows, a changed rating or timestamp overwrites the stored one.

    `ratings` is consumed lazily, `batch_size` at a time (a progress bar around it moves as
    batches are written); all of it is written in one transaction. Each rating must be 1 to 5
    with an aware `rated_at`, and a (viewer, title) pair may appear only once (PostgreSQL
    refuses to update one row twice in one statement). Returns the number of ratings written.
    """
    written = 0
    seen: set[tuple[int, int]] = set()
    with transaction.atomic():
        for batch in batched(ratings, batch_size):
            for spec in batch:
                _rating_spec_check(spec, seen)
            Rating.objects.bulk_create(
                [
                    Rating(
                        viewer_id=spec.viewer_id,
                        title_id=spec.title_id,
                        rating=spec.rating,
                        rated_at=spec.rated_at,
                    )
                    for spec in batch
                ],
                update_conflicts=True,
                unique_fields=["viewer", "title"],
                update_fields=["rating", "rated_at"],
            )
            written += len(batch)
    return written


def _rating_spec_check(spec: RatingSpec, seen: set[tuple[int, int]]) -> None:
    key = (spec.viewer_id, spec.title_id)
    if key in seen:
        raise ValidationError(f"Viewer {spec.viewer_id} rates title {spec.title_id} twice.")
    seen.add(key)
    if not 1 <= spec.rating <= 5:
        raise ValidationError({"rating": f"{spec.rating} is not between 1 and 5."})
    if spec.rated_at.tzinfo is None:
        raise ValidationError({"rated_at": "The time needs a time zone."})
