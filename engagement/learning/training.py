"""Training the engagement model: a window of ratings and viewing sessions in, a registered
model version out (promoted only if it beats the champion on the same held-out rows)."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, time, timedelta

import joblib
import numpy as np
import pandas as pd

from engagement.learning import data, history, labels
from engagement.learning.config import FeatureConfig, ModelConfig
from engagement.learning.model import EngagementModel
from ml import selectors as ml_selectors
from ml.models import ModelKind, ModelVersion
from ml.services import (
    TrainingError,
    artifact_dumps,
    model_version_register,
    training_run_fail,
    training_run_finish,
    training_run_start,
)

logger = logging.getLogger(__name__)

KIND = ModelKind.ENGAGEMENT
MIN_ROWS = 200
# By time within each source (ratings, viewing sessions): the first 80 % trains, the next 10 %
# calibrates, the last 10 % is held out.
CALIBRATION_SHARE = 0.1
HOLDOUT_SHARE = 0.1
LABEL = (
    f"engaged: a rating >= {labels.ENGAGED_RATING}, or a viewing session completed or watched to "
    f"{labels.ENGAGED_WATCH_RATIO:.0%} of the title"
)


class EngagementTrainingError(TrainingError):
    """The window cannot train a model (too few rows, one outcome only); nothing registered."""


def default_window_end(now: datetime | None = None) -> datetime:
    """Midnight UTC at the start of today: every run of the same night sees the same rows."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return datetime.combine(today, time(0), tzinfo=UTC)


def engagement_model_train(
    *,
    window_end: datetime | None = None,
    window_days: int | None = None,
    feature_config: FeatureConfig | None = None,
    model_config: ModelConfig | None = None,
) -> ModelVersion:
    """Train the engagement model on the ratings and finished viewing sessions before
    `window_end` (default: midnight UTC today) and, with `window_days`, not older than that;
    register it, and promote it if it beats the champion.

    1. Each source's rows (ratings, viewing sessions) are ordered by time: its first 80 %
       train, the next 10 % early-stop and calibrate, the last 10 % are held out (never a
       random split: the model serves the future; per source because their clocks differ,
       see `_split`).
    2. The candidate is scored on the held-out rows as the registry will serve it (after a
       round trip through its stored artifact); the champion is scored on the same rows.
    3. `ml.services.model_version_register` stores the candidate with both sets of metrics and
       promotes it only if it is calibrated, its AUC is not lower and its log loss is lower.

    The same window gives the same candidate (seeded, deterministic training), so running a
    night twice adds an equivalent candidate that is not promoted (its log loss ties).
    Every attempt is a `TrainingRun`; on any error the run is recorded as failed, the
    champion is left as it was, and the error is raised again (`EngagementTrainingError`, a
    `TrainingError`, when the window has too little data)."""
    window_end = window_end or default_window_end()
    if window_end.tzinfo is None:
        raise ValueError("window_end needs a time zone.")
    window_start = window_end - timedelta(days=window_days) if window_days else None
    run = training_run_start(kind=KIND, window_start=window_start, window_end=window_end)
    try:
        version = _train(
            window_start=window_start,
            window_end=window_end,
            feature_config=feature_config or FeatureConfig(),
            model_config=model_config or ModelConfig(),
        )
    except Exception as error:
        training_run_fail(run=run, error=f"{type(error).__name__}: {error}")
        logger.warning("Engagement training failed: %s", error)
        raise
    training_run_finish(run=run, model_version=version)
    logger.info("Engagement model v%s: %s", version.version, version.decision)
    return version


def _split(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Training, calibration and held-out rows: each source's rows (ratings, viewing
    sessions) ordered by their own time and cut 80 / 10 / 10, then merged back in time order.

    Why per source: the two do not share a clock. Ratings can be an imported history (the
    MovieLens ratings of the demo are from 1997–98) while sessions are the live product; one
    cut through the merged timeline puts every session after every rating, so a window with
    fewer than a tenth of its rows in sessions holds out all of them, and the candidate is
    trained and calibrated on ratings alone, then judged on sessions it never saw (and served
    as a rating). Cutting each source keeps "the held-out rows are the future" true of each,
    and trains, calibrates and judges the model on both in the window's proportions."""
    count, engaged = len(rows), int(rows["label"].sum()) if len(rows) else 0
    if count < MIN_ROWS or engaged == 0 or engaged == count:
        raise EngagementTrainingError(
            f"Not enough data to train the engagement model: {count} rows, {engaged} engaged; "
            f"it needs at least {MIN_ROWS} rows with both outcomes."
        )
    parts: tuple[list[pd.DataFrame], list[pd.DataFrame], list[pd.DataFrame]] = ([], [], [])
    for _, source in rows.groupby("session", sort=True):
        # `rows` is in time order, so each source's rows are too.
        calibration_from = int(round(len(source) * (1 - CALIBRATION_SHARE - HOLDOUT_SHARE)))
        holdout_from = int(round(len(source) * (1 - HOLDOUT_SHARE)))
        parts[0].append(source.iloc[:calibration_from])
        parts[1].append(source.iloc[calibration_from:holdout_from])
        parts[2].append(source.iloc[holdout_from:])
    # Back in the order `interaction_rows` gives (time, then source, viewer, title).
    train, calibration, holdout = (
        pd.concat(frames).sort_index(kind="mergesort") for frames in parts
    )
    for name, part in (("training", train), ("calibration", calibration), ("held-out", holdout)):
        if part["label"].nunique() < 2:
            raise EngagementTrainingError(
                f"The {name} rows ({len(part)}, by time) have only one outcome; the model "
                "needs both engaged and not engaged rows in each period."
            )
    return train, calibration, holdout


def _train(
    *,
    window_start: datetime | None,
    window_end: datetime,
    feature_config: FeatureConfig,
    model_config: ModelConfig,
) -> ModelVersion:
    rows = data.interaction_rows(window_start=window_start, window_end=window_end)
    if feature_config.history:
        # Every row's running history, from all the events known before it (those before the
        # window too), as serving reads it from the database.
        events = (
            rows
            if window_start is None
            else data.interaction_rows(window_start=None, window_end=window_end)
        )
        rows = history.with_history(rows, events)
    train, calibration, holdout = _split(rows)
    viewers, titles = data.all_viewers_frame(), data.all_titles_frame()

    model = EngagementModel(feature_config=feature_config, model_config=model_config)
    report = model.fit(train, calibration, viewers, titles)
    served = joblib.load(io.BytesIO(artifact_dumps(model)))
    pairs = holdout.drop(columns=["label", "score"])
    labels = holdout["label"].to_numpy()
    probabilities = served.predict(pairs, viewers, titles)

    candidate_metrics = ml_selectors.model_metrics(labels, probabilities)
    drift = ml_selectors.score_drift(report.train_scores, probabilities)
    candidate_metrics |= {
        "psi": drift,
        "psi_band": ml_selectors.psi_band(drift),
        "calibration_rows": len(calibration),
        "rounds": report.rounds,
        "ratings": int((rows["session"] == 0).sum()),
        "sessions": int((rows["session"] == 1).sum()),
        "holdout_start": holdout["at"].iloc[0].isoformat(),
    } | _per_source_metrics(holdout, probabilities)
    return model_version_register(
        kind=KIND,
        model=model,
        algorithm=model.algorithm,
        metrics=candidate_metrics,
        feature_spec=model.spec()
        | {
            "label": LABEL,
            "split": "by time within each source: 80 % train, 10 % calibration, 10 % held out",
        },
        train_rows=len(train) + len(calibration),
        holdout_rows=len(holdout),
        window_start=window_start or rows["at"].iloc[0].to_pydatetime(),
        window_end=window_end,
        champion_metrics=_champion_metrics(pairs, labels, viewers, titles),
    )


def _per_source_metrics(holdout: pd.DataFrame, probabilities: np.ndarray) -> dict:
    """Held-out rows, base rate and calibration ratio of each source: the overall ratio is
    their mix, and the model serves sessions."""
    found: dict = {}
    for session, name in ((0, "ratings"), (1, "sessions")):
        mask = holdout["session"].to_numpy() == session
        found[f"holdout_{name}"] = int(mask.sum())
        if not mask.any():
            continue
        observed = float(holdout["label"].to_numpy()[mask].mean())
        found[f"base_rate_{name}"] = observed
        if observed > 0:
            found[f"calibration_ratio_{name}"] = float(probabilities[mask].mean()) / observed
    return found


def _champion_metrics(
    pairs: pd.DataFrame, labels: np.ndarray, viewers: pd.DataFrame, titles: pd.DataFrame
) -> dict | None:
    """The current champion's metrics on the candidate's held-out rows; None when there is no
    champion, or when it cannot score them (it could not serve either, so it should go)."""
    champion = ml_selectors.champion_version(kind=KIND)
    if champion is None:
        return None
    try:
        model = joblib.load(io.BytesIO(bytes(champion.artifact)))
        return ml_selectors.model_metrics(labels, np.asarray(model.predict(pairs, viewers, titles)))
    except Exception:
        logger.exception(
            "The engagement champion v%s cannot score the held-out rows.", champion.version
        )
        return None
