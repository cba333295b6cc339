"""Daily rollups of ad events, per account-local day. Rebuilt from the event table (the truth)
by `analytics.services.rollup_day`: running it twice for a day leaves identical rows."""

from django.db import models

from ads.models import Advertiser, Campaign, Creative, LineItem


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

    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    line_item = models.ForeignKey(LineItem, on_delete=models.CASCADE, related_name="+")
    creative = models.ForeignKey(Creative, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["advertiser", "creative", "day"], name="dailydelivery_unique_grain"
            )
        ]
        indexes = [models.Index(fields=["advertiser", "day"])]

    def __str__(self) -> str:
        return f"creative {self.creative_id} on {self.day}"


class DailyBreakdown(Metrics):
    """advertiser × line item × day × one value of a dimension (genre, region, device, title).
    A title with several genres counts once in each of its genres."""

    class Dimension(models.TextChoices):
        GENRE = "genre", "Genre"
        REGION = "region", "Region"
        DEVICE = "device", "Device"
        TITLE = "title", "Title"

    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    line_item = models.ForeignKey(LineItem, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    dimension = models.CharField(max_length=8, choices=Dimension.choices)
    value = models.CharField(max_length=64)
    label = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["advertiser", "line_item", "day", "dimension", "value"],
                name="dailybreakdown_unique_grain",
            )
        ]
        indexes = [models.Index(fields=["advertiser", "dimension", "day"])]

    def __str__(self) -> str:
        return f"line item {self.line_item_id}, {self.dimension} {self.label} on {self.day}"
