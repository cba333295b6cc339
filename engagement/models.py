"""What viewers watched and how they liked it."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from catalog.models import Device, Title, Viewer


class Rating(models.Model):
    """A viewer's explicit rating of a title (MovieLens), the engagement model's label source:
    a rating of 4 or more counts as engaged."""

    viewer = models.ForeignKey(Viewer, on_delete=models.CASCADE, related_name="ratings")
    title = models.ForeignKey(Title, on_delete=models.CASCADE, related_name="ratings")
    rating = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    rated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["viewer", "title"], name="rating_unique_viewer_title")
        ]
        indexes = [models.Index(fields=["rated_at"])]

    def __str__(self) -> str:
        return f"{self.viewer} rated {self.title}: {self.rating}"


class ViewingSession(models.Model):
    """One sitting of a viewer with a title, from the first play to the last frame watched.

    A session still running has no `ended_at`; one that ended is either `completed` (played to
    the end) or `abandoned` (left before it)."""

    viewer = models.ForeignKey(Viewer, on_delete=models.CASCADE, related_name="viewing_sessions")
    title = models.ForeignKey(Title, on_delete=models.CASCADE, related_name="viewing_sessions")
    device = models.CharField(max_length=10, choices=Device.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    watched_seconds = models.PositiveIntegerField(
        default=0, help_text="Seconds of the title played (ads and pauses not counted)."
    )
    completed = models.BooleanField(default=False)
    abandoned = models.BooleanField(default=False)
    # The live engagement score (engagement/live.py): the probability that the viewer finishes
    # the title, given the engagement model's prior and the session's behaviour so far; kept
    # while the session runs, and its last value after it ends.
    engagement_prior = models.FloatField(
        null=True, blank=True, help_text="The engagement model's prior for viewer × title."
    )
    engagement_score = models.FloatField(null=True, blank=True)
    score_updated_at = models.DateTimeField(null=True, blank=True)
    # The last few scores, oldest first, as [unix seconds, score] pairs (the staff sparkline).
    score_history = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["viewer", "started_at"]),
            models.Index(fields=["started_at"]),
            # The staff list of live sessions: the open ones, newest first.
            models.Index(
                fields=["-started_at"],
                condition=models.Q(ended_at__isnull=True),
                name="viewingsession_open",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(completed=True, abandoned=True),
                name="viewingsession_completed_or_abandoned",
            ),
            models.CheckConstraint(
                condition=models.Q(ended_at__isnull=True)
                | models.Q(ended_at__gte=models.F("started_at")),
                name="viewingsession_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.viewer} watching {self.title} at {self.started_at:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        errors = {}
        if self.completed and self.abandoned:
            errors["abandoned"] = "A session is completed or abandoned, not both."
        if self.ended_at and self.started_at and self.ended_at < self.started_at:
            errors["ended_at"] = "The session cannot end before it starts."
        if errors:
            raise ValidationError(errors)


class PlaybackEvent(models.Model):
    """What the player reported during a session, at a position in the title."""

    class Kind(models.TextChoices):
        PLAY = "play", "Play"
        PAUSE = "pause", "Pause"
        RESUME = "resume", "Resume"
        SEEK = "seek", "Seek"
        SKIP = "skip", "Skip forward"
        AD_BREAK = "ad_break", "Ad break"
        AD_START = "ad_start", "Ad started"
        AD_END = "ad_end", "Ad ended"
        SPEED = "speed", "Speed change"
        ABANDON = "abandon", "Abandon"
        COMPLETE = "complete", "Complete"

    session = models.ForeignKey(ViewingSession, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    position_seconds = models.PositiveIntegerField(help_text="Where in the title it happened.")
    at = models.DateTimeField()
    # Whatever the kind needs: a seek's or skip's target, an ad break's decision id and pod.
    detail = models.JSONField(default=dict, blank=True)
    # The player's own id for the event: a batch sent twice (a retry, a beacon after a fetch)
    # stores each event once. Events recorded in bulk (the simulator's history) have none.
    client_event_id = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        ordering = ["session", "at", "id"]
        indexes = [models.Index(fields=["session", "at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "client_event_id"],
                condition=models.Q(client_event_id__isnull=False),
                name="playbackevent_unique_client_event_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} at {self.position_seconds}s ({self.at:%H:%M:%S})"


class BreakPlacement(models.Model):
    """The nightly drop-off and break-placement analysis of one title (engagement.placement),
    one row per title and day: rerunning the night replaces the day's row."""

    title = models.ForeignKey(Title, on_delete=models.CASCADE, related_name="break_placements")
    day = models.DateField(help_text="The analysis covers the sessions ended before this day.")
    computed_at = models.DateTimeField()
    window_days = models.PositiveIntegerField()
    sessions = models.PositiveIntegerField()
    # engagement.placement.Analysis.as_json(): the curve, each break's figures, the
    # recommendations and their expected effect.
    analysis = models.JSONField()
    # The worst break's excess abandonment (its abandonment minus the curve's baseline), so the
    # executive tile can rank titles in the database.
    worst_excess = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-day", "title"]
        constraints = [
            models.UniqueConstraint(fields=["title", "day"], name="breakplacement_unique_day")
        ]
        indexes = [models.Index(fields=["day", "-worst_excess"])]

    def __str__(self) -> str:
        return f"Break placement of {self.title} on {self.day}"


class AdBreakChange(models.Model):
    """A change of a title's ad breaks made from the staff title page: who, when, before and
    after (lists of [id, offset, max pod]), and the analysis it applied."""

    title = models.ForeignKey(Title, on_delete=models.CASCADE, related_name="ad_break_changes")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    changed_at = models.DateTimeField()
    placement = models.ForeignKey(
        BreakPlacement, on_delete=models.SET_NULL, null=True, blank=True, related_name="changes"
    )
    before = models.JSONField()
    after = models.JSONField()

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"Ad breaks of {self.title} changed at {self.changed_at:%Y-%m-%d %H:%M}"
