"""Daily rollups of ad events, per account-local day. Rebuilt from the event table (the truth)
by `analytics.services.rollup_day`: running it twice for a day leaves identical rows.

Like the events they are summed from, the rows are derived data, written a million at a time
(bench/rollups.py): their references have no database constraint (the events' references were
checked when they were stored; checking a night's rows again at the commit took longer than
summing them) and the tables have two indexes besides the primary key: the row's identity and
the account's rows by day."""

from django.db import models

from ads.models import Advertiser, Campaign, Creative, LineItem


def _reference(to: type[models.Model], *, deletes_rows: bool) -> models.ForeignKey:
    """A reference of a rollup row: without a constraint or an index of its own. The one whose
    deletion `deletes_rows` cascades (it begins the row's identity, so its index); the others
    are its ancestors, whose deletion deletes it first, and so the rows."""
    return models.ForeignKey(
        to,
        on_delete=models.CASCADE if deletes_rows else models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )


class Metrics(models.Model):
    impressions = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    first_quartiles = models.PositiveIntegerField(default=0)
    midpoints = models.PositiveIntegerField(default=0)
    third_quartiles = models.PositiveIntegerField(default=0)
    completes = models.PositiveIntegerField(default=0)
    spend_micros = models.BigIntegerField(default=0)
    unique_viewers = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class DailyDelivery(Metrics):
    """advertiser × campaign × line item × creative × day (the account's local day)."""

    advertiser = _reference(Advertiser, deletes_rows=False)
    campaign = _reference(Campaign, deletes_rows=False)
    line_item = _reference(LineItem, deletes_rows=False)
    creative = _reference(Creative, deletes_rows=True)
    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["creative", "day"], name="dailydelivery_unique_grain")
        ]
        indexes = [models.Index(fields=["advertiser", "day"])]

    def __str__(self) -> str:
        return f"creative {self.creative_id} on {self.day}"


class DailyBreakdown(Metrics):
    """advertiser × line item × day × one value of a dimension (genre, region, device, title,
    hour of day in the account's time zone: "00" to "23"). A title with several genres counts
    once in each of its genres."""

    class Dimension(models.TextChoices):
        GENRE = "genre", "Genre"
        REGION = "region", "Region"
        DEVICE = "device", "Device"
        TITLE = "title", "Title"
        HOUR = "hour", "Hour of day"

    advertiser = _reference(Advertiser, deletes_rows=False)
    campaign = _reference(Campaign, deletes_rows=False)
    line_item = _reference(LineItem, deletes_rows=True)
    day = models.DateField()
    dimension = models.CharField(max_length=8, choices=Dimension.choices)
    value = models.CharField(max_length=64)
    label = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["line_item", "day", "dimension", "value"],
                name="dailybreakdown_unique_grain",
            )
        ]
        indexes = [models.Index(fields=["advertiser", "dimension", "day"])]

    def __str__(self) -> str:
        return f"line item {self.line_item_id}, {self.dimension} {self.label} on {self.day}"


class RetiredEventDay(models.Model):
    """A UTC day of decisions whose event partition retention dropped (analytics.retention):
    its events are gone, so the rollups of the local days they touched are the history and are
    never recomputed (`rollup_day` refuses them). Written before the partition is dropped: an
    interrupted drop leaves a day refused whose events are still there, never the reverse."""

    day = models.DateField(unique=True)
    retired_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"events decided on {self.day} retired"


class RolledThrough(models.Model):
    """When an account's local day was last rolled up: its rows count the events stored by
    then. Reach, which is not summable and so is read from the events, stops where the rows
    do (`analytics.selectors._impressions` says how for a range of days), so a range's reach
    and impressions count the same events: without it, the minutes between two intraday
    rollups (or just after midnight, before the first) showed more viewers reached than
    impressions."""

    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    rolled_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["advertiser", "day"], name="rolledthrough_unique")
        ]

    def __str__(self) -> str:
        return f"account {self.advertiser_id}'s {self.day} rolled up at {self.rolled_at}"
