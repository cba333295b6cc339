"""The model registry shared by `ads` (CTR) and `engagement`: versioned models with their
metrics, champion/challenger promotion, and a record of every training run."""

from django.db import models
from django.db.models import Q


class ModelKind(models.TextChoices):
    CTR = "ctr", "Click-through rate"
    ENGAGEMENT = "engagement", "Engagement"
    LIVE_ENGAGEMENT = "live_engagement", "Live engagement"


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        CHAMPION = "champion", "Champion"
        RETIRED = "retired", "Retired"

    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CANDIDATE)
    algorithm = models.CharField(max_length=60)
    trained_at = models.DateTimeField(auto_now_add=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    train_rows = models.PositiveIntegerField(default=0)
    holdout_rows = models.PositiveIntegerField(default=0)
    feature_spec = models.JSONField(default=dict, blank=True)
    # Held-out metrics: auc, log_loss, normalized_entropy, calibration_ratio, ece,
    # reliability (a table), psi (training window vs the last day), base_rate, ...
    metrics = models.JSONField(default=dict, blank=True)
    artifact = models.BinaryField(editable=False)
    challenged = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="challengers"
    )
    decision = models.TextField(blank=True, help_text="Why it was promoted or not.")
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="modelversion_unique_version"),
            models.UniqueConstraint(
                fields=["kind"], condition=Q(status="champion"), name="modelversion_one_champion"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} v{self.version} ({self.status})"


class TrainingRun(models.Model):
    """One attempt to train a model: a failure is recorded here and leaves the champion alone."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        PROMOTED = "promoted", "Promoted"
        KEPT_CHAMPION = "kept", "Candidate not promoted"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.kind} training at {self.started_at:%Y-%m-%d %H:%M} ({self.outcome})"


class DriftMeasurement(models.Model):
    """The PSI of a champion's scores on one day against its training window's scores."""

    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="drift")
    day = models.DateField()
    psi = models.FloatField()
    rows = models.PositiveIntegerField()
    measured_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "-day"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "day"], name="driftmeasurement_unique_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} drift on {self.day}: {self.psi:.3f}"
