"""Reads of the model registry, for the apps that train, serve and watch models: the serving
champion of this process, the versions and drift stored, and the evaluation metrics (pure
functions of labels and scores, shared so every kind is judged by the same arithmetic)."""

from django.db.models import QuerySet

from ml import metrics
from ml.models import DriftMeasurement, ModelVersion, TrainingRun
from ml.serving import LoadedModel, champions


def champion(kind: str) -> LoadedModel | None:
    """This process's loaded champion of `kind` (None without one, or when its artifact
    cannot be read); reloaded when another process promotes a version."""
    return champions.get(kind)


def champions_reload() -> None:
    """Forget this process's loaded champions: the next read loads the current ones (after a
    registration in this process, which may have promoted a version)."""
    champions.reset()


def champion_version(*, kind: str) -> ModelVersion | None:
    """The stored champion of `kind`, artifact included."""
    return ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.CHAMPION).first()


def champion_versions() -> dict[str, ModelVersion]:
    """The champion of each kind that has one, without their artifacts."""
    champions = ModelVersion.objects.filter(status=ModelVersion.Status.CHAMPION)
    return {version.kind: version for version in champions.defer("artifact")}


def model_versions(*, kind: str) -> list[ModelVersion]:
    """Every version of `kind`, oldest first, without their artifacts."""
    return list(ModelVersion.objects.filter(kind=kind).defer("artifact").order_by("version"))


def drift_measurements(*, model_version: ModelVersion) -> QuerySet[DriftMeasurement]:
    return DriftMeasurement.objects.filter(model_version=model_version).order_by("day")


def latest_training_run(*, kind: str) -> TrainingRun | None:
    return TrainingRun.objects.filter(kind=kind).order_by("-started_at").first()


def model_metrics(labels, scores) -> dict:
    """AUC, log loss, normalised entropy, calibration ratio, ECE, reliability, base rate."""
    return metrics.summary(labels, scores)


def score_drift(reference, scores) -> float:
    """Population stability index of `scores` against the `reference` scores."""
    return metrics.psi(reference, scores)


def psi_band(value: float) -> str:
    """The conventional band of a PSI value: none, moderate or significant."""
    return metrics.psi_band(value)


def training_outcome(version: ModelVersion) -> dict:
    """What a training task returns: whether its candidate was promoted, and which it is."""
    return {
        "outcome": "promoted" if version.status == ModelVersion.Status.CHAMPION else "kept",
        "model_version_id": version.pk,
        "version": version.version,
        "decision": version.decision,
    }
