"""What engaged means, as numbers and as a database condition: shared by the training rows
(engagement.learning.data) and the fallback that scores titles without a model
(engagement.learning.predict), which must not import pandas to do it (every process that loads
the URLs reaches the fallback through engagement.selectors)."""

from __future__ import annotations

from django.db.models import ExpressionWrapper, F, FloatField, Q

# Engaged: a rating of 4 or more, or a session finished (completed, or 90 % of the title).
ENGAGED_RATING = 4
ENGAGED_WATCH_RATIO = 0.9


def session_engaged() -> Q:
    """The engagement label of a viewing session, as a database condition."""
    watched_enough = ExpressionWrapper(
        F("title__duration_seconds") * ENGAGED_WATCH_RATIO, output_field=FloatField()
    )
    return Q(completed=True) | Q(watched_seconds__gte=watched_enough)
