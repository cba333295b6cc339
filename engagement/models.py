"""What viewers watched and how they liked it."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from catalog.models import Title, Viewer


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
