"""Training the CTR model from the event table, judged on a held-out last day.

1. Rows: every impression in the window with its label (a click on the same decision and
   creative), and its features (ads.learning.features).
2. Split by time: the last day is held out; of the rest, the most recent 20 % stops the
   boosting early. Never at random: the model is used on tomorrow, so it is judged on a
   later day than it learned from.
3. Two models: a logistic regression on one-hot features (the baseline) and gradient-boosted
   trees (LightGBM), calibrated on cross-fitted scores of every training row (isotonic, or
   Platt below 500 clicks) and refitted on all of them (`fit_models`). Both are registered,
   so the gain over the baseline is on record; each is promoted only if it beats the
   champion of the moment on the same held-out day (ml.services).
"""

from __future__ import annotations

import datetime as dt
import logging

import lightgbm
import numpy as np
import pandas as pd
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from ads.learning import features as features_module
from ads.learning.estimators import (  # noqa: F401 - artifacts pickled these from here
    CtrModel,
    IsotonicCalibrator,
    OneHotLogistic,
    PlattCalibrator,
)
from ads.learning.features import (
    CATEGORICAL,
    FATIGUE_BUCKET_SECONDS,
    FATIGUE_BUCKETS,
    FORMAT_VERSION,
    CtrFeatures,
    fatigue_columns,
    viewer_clocks,
)
from ads.models import AdEvent
from catalog.models import Title
from ml import selectors as ml_selectors
from ml import services as ml_services
from ml.models import DriftMeasurement, ModelKind, ModelVersion

logger = logging.getLogger(__name__)
WINDOW_DAYS = 14  # the nightly window: two weeks, the last day held out
MIN_ROWS = 500
MIN_CLICKS = 10
ISOTONIC_MIN_CLICKS = 500


class NotEnoughData(ml_services.TrainingError):
    pass


def training_frame(*, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """Impressions in [start, end) with their features and label, oldest first."""
    clicks = AdEvent.objects.filter(
        event_type=AdEvent.Type.CLICK,
        decision_id=OuterRef("decision_id"),
        creative_id=OuterRef("creative_id"),
        decided_at=OuterRef("decided_at"),  # one decision, one partition
    )
    impressions = (
        AdEvent.objects.occurred_between(start, end)
        .filter(event_type=AdEvent.Type.IMPRESSION)
        .annotate(clicked_at=Subquery(clicks.values("occurred_at")[:1]))
        .values_list(
            "occurred_at",
            "decision_id",
            "clicked_at",
            "viewer_id",
            "line_item_id",
            "viewer__age_band",
            "viewer__gender",
            "region",
            "device",
            "title_id",
            "title__maturity_rating",
            "title__year",
            "creative__category",
            "creative__duration_seconds",
            "advertiser_id",
            "creative_id",
            "pod_position",
            "ad_break__offset_seconds",
        )
        .order_by("occurred_at", "id")
    )
    frame = pd.DataFrame.from_records(
        list(impressions),
        columns=[
            "occurred_at",
            "decision_id",
            "clicked_at",
            "viewer_id",
            "line_item",
            "age_band",
            "gender",
            "region",
            "device",
            "title_id",
            "maturity",
            "year",
            "category",
            "duration",
            "advertiser",
            "creative",
            "position",
            "break_offset",
        ],
    )
    if frame.empty:
        return frame
    genres = _title_genres(frame["title_id"].unique().tolist())
    frame["genres"] = frame["title_id"].map(lambda title_id: genres.get(title_id, frozenset()))
    clocks = viewer_clocks(frame["region"], frame["occurred_at"])
    frame["viewer_daypart"] = [clock[0] for clock in clocks]
    frame["viewer_hour"] = [clock[1] for clock in clocks]
    frame["viewer_weekend"] = [clock[2] for clock in clocks]
    frame["break_offset"] = frame["break_offset"].fillna(0)
    frame["break_minutes"] = frame["break_offset"] / 60
    frame["is_preroll"] = (frame["break_offset"] == 0).astype(float)
    frame["label"] = frame["clicked_at"].notna().astype(int)
    # Fatigue counts the viewer's impressions before each decision, back to the first
    # bucket that the window's earliest decision can see.
    earlier = start - dt.timedelta(seconds=FATIGUE_BUCKETS * FATIGUE_BUCKET_SECONDS)
    seen = AdEvent.objects.filter(
        event_type=AdEvent.Type.IMPRESSION,
        occurred_at__gte=earlier,
        occurred_at__lt=end,
    ).values_list("viewer_id", "occurred_at")
    impressions = pd.DataFrame.from_records(list(seen), columns=["viewer_id", "occurred_at"])
    for name, values in fatigue_columns(frame, impressions).items():
        frame[name] = values
    return frame


def _title_genres(title_ids: list[int]) -> dict[int, frozenset[str]]:
    pairs = Title.genres.through.objects.filter(title_id__in=title_ids).values_list(
        "title_id", "genre__slug"
    )
    genres: dict[int, set[str]] = {}
    for title_id, slug in pairs:
        genres.setdefault(title_id, set()).add(slug)
    return {title_id: frozenset(slugs) for title_id, slugs in genres.items()}


def _boosted_trees(n_estimators: int = 1000) -> lightgbm.LGBMClassifier:
    return lightgbm.LGBMClassifier(
        n_estimators=n_estimators,
        learning_rate=0.05,
        num_leaves=31,
        min_child_samples=100,
        # High-cardinality categoricals (creative, advertiser) overfit small data otherwise.
        min_data_per_group=200,
        cat_smooth=50,
        cat_l2=10,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        # One thread: the rows are few, and OpenMP threads spinning on cores that other
        # processes hold made a 2-second fit take minutes on the shared 2-core machine.
        num_threads=1,
        random_state=0,  # the row and column subsamples: the same data, the same model
        verbose=-1,
    )


def split_by_time(frame: pd.DataFrame, holdout_start: dt.datetime):
    """(fit, calibrate, holdout): holdout from `holdout_start`; before it, 80 % / 20 % by time."""
    holdout = frame[frame["occurred_at"] >= holdout_start]
    earlier = frame[frame["occurred_at"] < holdout_start]
    cut = int(len(earlier) * 0.8)
    return earlier.iloc[:cut], earlier.iloc[cut:], holdout


CALIBRATION_FOLDS = 4


def _cross_fitted_scores(matrix: np.ndarray, labels: np.ndarray, n_trees: int) -> np.ndarray:
    """Each row's raw score from trees that did not learn from it: the rows in consecutive
    blocks by time, each scored by trees fitted on the other blocks. Calibration fitted on
    these uses every training click, not only the last fifth's."""
    scores = np.empty(len(labels))
    blocks = np.array_split(np.arange(len(labels)), CALIBRATION_FOLDS)
    for block in blocks:
        rest = np.ones(len(labels), dtype=bool)
        rest[block] = False
        trees = _boosted_trees(n_trees).fit(
            matrix[rest], labels[rest], categorical_feature=list(range(len(CATEGORICAL)))
        )
        scores[block] = trees.booster_.predict(matrix[block])
    return scores


def fit_models(
    fit: pd.DataFrame,
    calibrate: pd.DataFrame,
    *,
    history: list[str] | None = None,
    fatigue: bool | None = None,
) -> list[CtrModel]:
    """The baseline and the calibrated trees, from the training rows (oldest first), with the
    `history` columns (default: features.HISTORY) and the fatigue ones if `fatigue` (default:
    features.FATIGUE_BY_DEFAULT, off):

    1. features and history from all of them (each row's history: out of fold);
    2. the number of trees by early stopping: fitted on `fit`, stopped on `calibrate`'s log
       loss (the most recent rows);
    3. calibration on cross-fitted scores of every training row (`_cross_fitted_scores`):
       isotonic with at least ISOTONIC_MIN_CLICKS clicks, else Platt;
    4. the served trees refitted on every training row with that number of trees.
    """
    rows = pd.concat([fit, calibrate])
    columns = list(features_module.HISTORY if history is None else history)
    if fatigue is None:
        fatigue = features_module.FATIGUE_BY_DEFAULT
    features = CtrFeatures(history_columns=columns, fatigue=fatigue).fit(rows)
    matrix, labels = features.matrix(rows, training=True), rows["label"].to_numpy()
    x_fit, y_fit = matrix[: len(fit)], labels[: len(fit)]
    x_cal, y_cal = matrix[len(fit) :], labels[len(fit) :]
    baseline = OneHotLogistic(features).fit(matrix, labels)
    categorical = list(range(len(CATEGORICAL)))
    stopped = _boosted_trees().fit(
        x_fit,
        y_fit,
        eval_X=(x_cal,),
        eval_y=(y_cal,),
        categorical_feature=categorical,
        callbacks=[lightgbm.early_stopping(30, verbose=False)],
    )
    n_trees = max(int(stopped.best_iteration_ or stopped.n_estimators), 10)
    raw = _cross_fitted_scores(matrix, labels, n_trees)
    calibrator: IsotonicCalibrator | PlattCalibrator
    if int(labels.sum()) >= ISOTONIC_MIN_CLICKS:
        calibrator = IsotonicCalibrator()
        name = "LightGBM + isotonic calibration"
    else:  # too few clicks for a step function: a two-parameter sigmoid
        calibrator = PlattCalibrator()
        name = "LightGBM + Platt calibration"
    calibrator.fit(raw, labels)
    trees = _boosted_trees(n_trees).fit(matrix, labels, categorical_feature=categorical)
    return [
        CtrModel(features, baseline, None, "logistic regression, one-hot"),
        CtrModel(features, trees, calibrator, name),
    ]


def ctr_models_register(*, window_end: dt.datetime, window_days: int) -> list[ModelVersion]:
    """Train on the `window_days` before `window_end`, the last day held out, and register
    the baseline and the trees (in that order). Raises NotEnoughData."""
    window_start = window_end - dt.timedelta(days=window_days)
    holdout_start = window_end - dt.timedelta(days=1)
    frame = training_frame(start=window_start, end=window_end)
    fit, calibrate, holdout = split_by_time(frame, holdout_start) if len(frame) else (frame,) * 3
    for part, name in ((fit, "training"), (holdout, "held-out")):
        if len(part) < MIN_ROWS or int(part["label"].sum()) < MIN_CLICKS:
            raise NotEnoughData(
                f"The {name} rows hold {len(part)} impressions and "
                f"{int(part['label'].sum()) if len(part) else 0} clicks; the CTR model needs "
                f"at least {MIN_ROWS} and {MIN_CLICKS}."
            )
    y_holdout = holdout["label"].to_numpy()
    versions = []
    for model in fit_models(fit, calibrate):
        scores = model.predict_frame(holdout)
        summary = ml_selectors.model_metrics(y_holdout, scores)
        train_scores = model.predict_frame(pd.concat([fit, calibrate]))
        summary["reference_scores"] = ml_services.reference_scores(train_scores)
        summary["psi"] = ml_selectors.score_drift(summary["reference_scores"], scores)
        current = ml_selectors.champion(ModelKind.CTR)
        champion_metrics = None
        if current is not None and _scores_todays_rows(current.model):
            champion_metrics = ml_selectors.model_metrics(
                y_holdout, current.model.predict_frame(holdout)
            )
        versions.append(
            ml_services.model_version_register(
                kind=ModelKind.CTR,
                model=model,
                algorithm=model.algorithm,
                metrics=summary,
                feature_spec={"columns": model.features.columns, "genres": model.features.genres},
                train_rows=len(fit) + len(calibrate),
                holdout_rows=len(holdout),
                window_start=window_start,
                window_end=window_end,
                champion_metrics=champion_metrics,
            )
        )
        # A version promoted here is the champion the next candidate must beat.
        ml_selectors.champions_reload()
    return versions


def _scores_todays_rows(model) -> bool:
    """Whether `model` (a champion's artifact) has today's feature layout; an older one
    cannot be compared on the new rows, and a candidate then needs only be calibrated."""
    return getattr(model, "format_version", 1) == FORMAT_VERSION


def ctr_model_train(
    *, window_end: dt.datetime | None = None, window_days: int = WINDOW_DAYS
) -> ModelVersion:
    """Train the CTR model on the `window_days` before `window_end` (default: now), the
    last day held out; register the logistic baseline and the trees, each promoted only if
    it beats the champion (`ml.services.model_version_register`). Returns the trees' version.

    Every attempt is a `TrainingRun`; on any error the run is recorded as failed, the
    champion is left as it was, and the error is raised again (`NotEnoughData`, a
    `TrainingError`, when the window has too little data). A window end without a time zone
    is refused, as by every trainer."""
    window_end = window_end or timezone.now()
    if window_end.tzinfo is None:
        raise ValueError("window_end needs a time zone.")
    run = ml_services.training_run_start(
        kind=ModelKind.CTR,
        window_start=window_end - dt.timedelta(days=window_days),
        window_end=window_end,
    )
    try:
        versions = ctr_models_register(window_end=window_end, window_days=window_days)
    except Exception as error:  # any failure: recorded, champion untouched, raised again
        ml_services.training_run_fail(run=run, error=f"{type(error).__name__}: {error}")
        logger.warning("CTR training failed: %s", error)
        raise
    trees = versions[-1]
    ml_services.training_run_finish(run=run, model_version=trees)
    return trees


def ctr_drift_measure(*, day: dt.date) -> DriftMeasurement | None:
    """Score `day`'s impressions (UTC) with the CTR champion and record the PSI against its
    training window. None when there is no champion (or one of an older feature layout) or
    no impression that day."""
    current = ml_selectors.champion(ModelKind.CTR)
    if current is None or not _scores_todays_rows(current.model):
        return None
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    frame = training_frame(start=start, end=start + dt.timedelta(days=1))
    if frame.empty:
        return None
    version = ModelVersion.objects.get(pk=current.version_id)
    return ml_services.drift_record(
        model_version=version, day=day, scores=current.model.predict_frame(frame)
    )
