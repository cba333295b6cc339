"""The platform's inventory: what viewers watch and who they are. Not tenant data."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class MaturityRating(models.TextChoices):
    G = "G", "G (general audiences)"
    PG = "PG", "PG"
    PG_13 = "PG-13", "PG-13"
    R = "R", "R"
    NC_17 = "NC-17", "NC-17"


class AgeBand(models.TextChoices):
    UNDER_18 = "under_18", "Under 18"
    AGE_18_24 = "18_24", "18–24"
    AGE_25_34 = "25_34", "25–34"
    AGE_35_44 = "35_44", "35–44"
    AGE_45_54 = "45_54", "45–54"
    AGE_55_PLUS = "55_plus", "55+"


class Gender(models.TextChoices):
    FEMALE = "F", "Female"
    MALE = "M", "Male"
    UNKNOWN = "", "Unknown"


class Region(models.TextChoices):
    NORTHEAST = "us_northeast", "US Northeast"
    SOUTHEAST = "us_southeast", "US Southeast"
    MIDWEST = "us_midwest", "US Midwest"
    SOUTH = "us_south", "US South"
    WEST = "us_west", "US West"
    INTERNATIONAL = "intl", "Outside the US"


# Where a region's viewers live, for their clock (one zone stands for the region; London for
# outside the US).
REGION_TIMEZONES = {
    Region.NORTHEAST: "America/New_York",
    Region.SOUTHEAST: "America/New_York",
    Region.MIDWEST: "America/Chicago",
    Region.SOUTH: "America/Chicago",
    Region.WEST: "America/Los_Angeles",
    Region.INTERNATIONAL: "Europe/London",
}


class Device(models.TextChoices):
    CTV = "ctv", "Connected TV"
    MOBILE = "mobile", "Mobile"
    DESKTOP = "desktop", "Desktop"
    TABLET = "tablet", "Tablet"


def age_band_for(age: int) -> str:
    """The age band a viewer of `age` years falls in."""
    for upper, band in (
        (18, AgeBand.UNDER_18),
        (25, AgeBand.AGE_18_24),
        (35, AgeBand.AGE_25_34),
        (45, AgeBand.AGE_35_44),
        (55, AgeBand.AGE_45_54),
    ):
        if age < upper:
            return band
    return AgeBand.AGE_55_PLUS


class Genre(models.Model):
    name = models.CharField(max_length=60, unique=True)
    slug = models.SlugField(max_length=60, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Title(models.Model):
    class Kind(models.TextChoices):
        MOVIE = "movie", "Movie"
        SERIES = "series", "Series"

    # Where the title came from, e.g. "ml:42" for MovieLens item 42; makes loaders idempotent.
    external_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    year = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1880), MaxValueValidator(2100)]
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MOVIE)
    genres = models.ManyToManyField(Genre, related_name="titles", blank=True)
    maturity_rating = models.CharField(
        max_length=8, choices=MaturityRating.choices, default=MaturityRating.PG_13
    )
    duration_seconds = models.PositiveIntegerField(validators=[MinValueValidator(60)])

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["name"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.year})" if self.year else self.name


class AdBreak(models.Model):
    """A cue point in a title where a pod of ads may play."""

    title = models.ForeignKey(Title, on_delete=models.CASCADE, related_name="ad_breaks")
    offset_seconds = models.PositiveIntegerField(help_text="0 is a pre-roll.")
    max_pod_duration_seconds = models.PositiveIntegerField(
        default=120, validators=[MinValueValidator(15), MaxValueValidator(600)]
    )

    class Meta:
        ordering = ["title", "offset_seconds"]
        constraints = [
            models.UniqueConstraint(
                fields=["title", "offset_seconds"], name="adbreak_unique_offset"
            )
        ]

    def __str__(self) -> str:
        return f"{self.title.name} @ {self.offset_seconds}s"

    @property
    def position(self) -> str:
        if self.offset_seconds == 0:
            return "pre-roll"
        return "mid-roll"

    def clean(self) -> None:
        title = getattr(self, "title", None)
        if (
            title is not None
            and self.offset_seconds is not None
            and self.offset_seconds >= title.duration_seconds
        ):
            raise ValidationError(
                {
                    "offset_seconds": f"The break must start before the title ends "
                    f"({title.duration_seconds} s)."
                }
            )


class Viewer(models.Model):
    """A profile on the streaming service, as the ad platform knows it."""

    external_id = models.CharField(max_length=64, unique=True)
    age_band = models.CharField(max_length=10, choices=AgeBand.choices)
    gender = models.CharField(max_length=1, choices=Gender.choices, blank=True, default="")
    region = models.CharField(max_length=16, choices=Region.choices)
    device = models.CharField(
        max_length=10, choices=Device.choices, help_text="The device this profile uses most."
    )
    is_kids = models.BooleanField("kids profile", default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["external_id"]

    def __str__(self) -> str:
        return self.external_id
