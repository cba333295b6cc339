"""Writes to the model registry: register a trained candidate, promote it only when it beats
the champion (or, without one, predicting the base rate), roll back, and record training
runs."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from ml.metrics import entropy, psi
from ml.models import DriftMeasurement, ModelVersion, TrainingRun

CALIBRATION_RANGE = (0.9, 1.1)
# A first model (or one whose champion cannot score the same rows) has no champion to beat, so
# it must beat the no-skill baseline: predicting the held-out base rate for every row, whose AUC
# is 0.5 and whose log loss is the base rate's entropy. A constant predictor is calibrated, so
# calibration alone would promote it. The margins keep out models whose "skill" is noise: on a
# held-out day with a few dozen clicks the AUC of a model that learnt nothing spreads about
# ±0.04 around 0.5, so 0.52 refuses most of the luckiest no-skill models without refusing the
# weak but real ones (the demo's first CTR baseline scores 0.60). The log-loss margin is
# relative (a normalized entropy of at most 0.99), because a CTR's base-rate entropy is about
# 0.06 and an engagement rate's about 0.69: the same absolute margin cannot fit both.
FIRST_MODEL_AUC_MARGIN = 0.02
FIRST_MODEL_LOG_LOSS_MARGIN = 0.01


def champion_pointer_key(kind: str) -> str:
    return f"ml:champion:{kind}"


def artifact_dumps(model: Any) -> bytes:
    import joblib  # here, not at the top: ~0.4 s of CPU at every start-up that loads the URLs

    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    return buffer.getvalue()


def promotion_verdict(
    *, candidate: dict[str, float], champion: dict[str, float] | None
) -> tuple[bool, str]:
    """The promotion rule: calibration ratio within 0.9–1.1, and then

    - against a champion scored on the same held-out window: an AUC not lower and a log loss
      lower;
    - without one: beating the no-skill baseline (the held-out base rate for every row) by the
      margins above, an AUC of at least 0.5 + FIRST_MODEL_AUC_MARGIN and a log loss of at most
      (1 − FIRST_MODEL_LOG_LOSS_MARGIN) × the base rate's entropy.

    `candidate` needs `calibration_ratio`, `auc`, `log_loss` and (without a champion)
    `base_rate`, as `ml.metrics.summary` gives them."""
    low, high = CALIBRATION_RANGE
    ratio = candidate["calibration_ratio"]
    if not low <= ratio <= high:
        return False, f"Calibration ratio {ratio:.3f} is outside {low}–{high}."
    if champion is None:
        return _no_skill_verdict(candidate)
    if candidate["auc"] < champion["auc"]:
        return False, (
            f"AUC {candidate['auc']:.4f} is lower than the champion's {champion['auc']:.4f} "
            "on the same held-out window."
        )
    if candidate["log_loss"] >= champion["log_loss"]:
        return False, (
            f"Log loss {candidate['log_loss']:.4f} is not lower than the champion's "
            f"{champion['log_loss']:.4f} on the same held-out window."
        )
    return True, (
        f"AUC {candidate['auc']:.4f} ≥ {champion['auc']:.4f} and log loss "
        f"{candidate['log_loss']:.4f} < {champion['log_loss']:.4f} on the same held-out window."
    )


def _no_skill_verdict(candidate: dict[str, float]) -> tuple[bool, str]:
    base_rate = candidate["base_rate"]
    least_auc = 0.5 + FIRST_MODEL_AUC_MARGIN
    most_log_loss = (1 - FIRST_MODEL_LOG_LOSS_MARGIN) * entropy(base_rate)
    baseline = f"predicting the base rate {base_rate:.4f}"
    if candidate["auc"] < least_auc:
        return False, (
            f"AUC {candidate['auc']:.4f} is below {least_auc:.2f}: no better than {baseline}."
        )
    if candidate["log_loss"] > most_log_loss:
        return False, (
            f"Log loss {candidate['log_loss']:.4f} is above {most_log_loss:.4f} "
            f"({1 - FIRST_MODEL_LOG_LOSS_MARGIN:.2f} × its entropy): no better than {baseline}."
        )
    return True, (
        f"Calibrated, and better than {baseline}: AUC {candidate['auc']:.4f} ≥ "
        f"{least_auc:.2f} and log loss {candidate['log_loss']:.4f} ≤ {most_log_loss:.4f}."
    )


def model_version_register(
    *,
    kind: str,
    model: Any,
    algorithm: str,
    metrics: dict[str, Any],
    feature_spec: dict[str, Any],
    train_rows: int,
    holdout_rows: int,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    champion_metrics: dict[str, Any] | None = None,
) -> ModelVersion:
    """Store a trained model as a candidate, then promote it if `promotion_verdict` says so.

    `champion_metrics` are the current champion's metrics on the candidate's held-out rows
    (None when there is no champion, or when it cannot score them: then the candidate is judged
    as a first model, against the base rate). The verdict is recorded on the version either way.
    """
    artifact = artifact_dumps(model)
    champion = ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.CHAMPION).first()
    compared = champion_metrics if champion is not None else None
    promote, reason = promotion_verdict(candidate=metrics, champion=compared)
    if champion is not None and compared is None:
        reason = f"Champion v{champion.version} did not score these held-out rows. {reason}"
    for _ in range(3):  # two trainings racing for the same version number
        try:
            with transaction.atomic():
                latest = ModelVersion.objects.filter(kind=kind).aggregate(Max("version"))
                candidate = ModelVersion.objects.create(
                    kind=kind,
                    version=(latest["version__max"] or 0) + 1,
                    algorithm=algorithm,
                    metrics=metrics,
                    feature_spec=feature_spec,
                    train_rows=train_rows,
                    holdout_rows=holdout_rows,
                    window_start=window_start,
                    window_end=window_end,
                    artifact=artifact,
                    challenged=champion,
                    decision=reason,
                )
            break
        except IntegrityError:
            continue
    else:
        raise RuntimeError(f"Could not number a new {kind} model version.")
    if promote:
        model_version_promote(model_version=candidate, reason=reason)
    return candidate


def model_version_promote(*, model_version: ModelVersion, reason: str = "") -> ModelVersion:
    """Make `model_version` its kind's champion and retire the one before it."""
    with transaction.atomic():
        ModelVersion.objects.select_for_update().filter(
            kind=model_version.kind, status=ModelVersion.Status.CHAMPION
        ).exclude(pk=model_version.pk).update(status=ModelVersion.Status.RETIRED)
        model_version.status = ModelVersion.Status.CHAMPION
        model_version.promoted_at = timezone.now()
        if reason:
            model_version.decision = reason
        model_version.save(update_fields=["status", "promoted_at", "decision"])
        transaction.on_commit(
            lambda: cache.set(champion_pointer_key(model_version.kind), model_version.pk, None)
        )
    return model_version


def model_version_rollback(*, kind: str) -> ModelVersion:
    """Bring back the champion before the current one; ValidationError if there was none."""
    current = ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.CHAMPION).first()
    previous = (
        ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.RETIRED)
        .exclude(promoted_at=None)
        .order_by("-promoted_at")
        .first()
    )
    if previous is None:
        raise ValidationError(f"No earlier {kind} champion to roll back to.")
    reason = f"Rolled back from v{current.version}." if current else "Rolled back."
    return model_version_promote(model_version=previous, reason=reason)


def training_run_start(
    *, kind: str, window_start: datetime | None, window_end: datetime | None
) -> TrainingRun:
    return TrainingRun.objects.create(kind=kind, window_start=window_start, window_end=window_end)


def training_run_finish(*, run: TrainingRun, model_version: ModelVersion) -> TrainingRun:
    promoted = model_version.status == ModelVersion.Status.CHAMPION
    run.outcome = TrainingRun.Outcome.PROMOTED if promoted else TrainingRun.Outcome.KEPT_CHAMPION
    run.model_version = model_version
    run.finished_at = timezone.now()
    run.save(update_fields=["outcome", "model_version", "finished_at"])
    return run


def training_run_fail(*, run: TrainingRun, error: str) -> TrainingRun:
    run.outcome = TrainingRun.Outcome.FAILED
    run.error = error[:10_000]
    run.finished_at = timezone.now()
    run.save(update_fields=["outcome", "error", "finished_at"])
    return run


REFERENCE_QUANTILES = 1000


def reference_scores(scores) -> list[float]:
    """A compact stand-in for a training window's score distribution (its quantiles), kept in
    the version's metrics so that drift can be measured later without the training rows."""
    values = np.asarray(scores, dtype=float)
    return np.quantile(values, np.linspace(0, 1, REFERENCE_QUANTILES)).round(6).tolist()


def drift_record(*, model_version: ModelVersion, day: date, scores) -> DriftMeasurement:
    """PSI of `scores` (the champion's, on `day`'s rows) against the version's training window.
    Idempotent: measuring a day again replaces that day's figure."""
    reference = model_version.metrics.get("reference_scores")
    if not reference:
        raise ValidationError(f"{model_version} has no reference scores to measure drift with.")
    value = psi(reference, scores)
    measurement, _ = DriftMeasurement.objects.update_or_create(
        model_version=model_version,
        day=day,
        defaults={"kind": model_version.kind, "psi": value, "rows": len(scores)},
    )
    return measurement


class TrainingError(Exception):
    """A window that cannot train a model (too few rows or outcomes). The run is recorded as
    failed and the champion stays; each kind's trainer raises a subclass."""


def training_window_end(iso: str | None) -> datetime | None:
    """A training task's window end from ISO 8601 (None: the trainer's default); a time
    without a zone is UTC, as the beat schedule and the commands write it."""
    if not iso:
        return None
    window_end = datetime.fromisoformat(iso)
    return window_end if window_end.tzinfo else window_end.replace(tzinfo=UTC)
