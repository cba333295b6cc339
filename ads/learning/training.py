"""Training the CTR model from the event table, judged on a held-out last day.

1. Rows: every impression in the window with its label (a click on the same decision and
   creative), and its features (ads.learning.features).
2. Split by time: the last day is held out; of the rest, the most recent 20 % fits the
   calibration and the earlier 80 % the model. Never at random: the model is used on
   tomorrow, so it is judged on a later day than it learned from.
3. Two models: a logistic regression on one-hot features (the baseline) and gradient-boosted
   trees (LightGBM) with isotonic calibration. Both are registered, so the gain over the
   baseline is on record; each is promoted only if it beats the champion of the moment on
   the same held-out day (ml.services).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import lightgbm
import numpy as np
import pandas as pd
from django.db.models import Exists, OuterRef
from django.utils import timezone
from scipy import sparse
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from ads.learning.features import CATEGORICAL, CtrFeatures
from ads.models import AdEvent, Advertiser, daypart_at
from catalog.models import Title
from ml import metrics
from ml import services as ml_services
from ml.models import DriftMeasurement, ModelKind, ModelVersion
from ml.serving import champion, champions

logger = logging.getLogger(__name__)
MIN_ROWS = 500
MIN_CLICKS = 10
ISOTONIC_MIN_CLICKS = 500


class NotEnoughData(Exception):
    pass


def training_frame(*, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """Impressions in [start, end) with their features and label, oldest first."""
    clicks = AdEvent.objects.filter(
        event_type=AdEvent.Type.CLICK,
        decision_id=OuterRef("decision_id"),
        creative_id=OuterRef("creative_id"),
    )
    impressions = (
        AdEvent.objects.filter(
            event_type=AdEvent.Type.IMPRESSION, occurred_at__gte=start, occurred_at__lt=end
        )
        .annotate(clicked=Exists(clicks))
        .values_list(
            "occurred_at",
            "decision_id",
            "clicked",
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
            "clicked",
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
    zones = {pk: advertiser.tzinfo for pk, advertiser in Advertiser.objects.in_bulk().items()}
    local = [
        when.astimezone(zones[advertiser])
        for when, advertiser in zip(frame["occurred_at"], frame["advertiser"], strict=True)
    ]
    frame["daypart"] = [daypart_at(moment) for moment in local]
    frame["weekday"] = [moment.weekday() for moment in local]
    frame["break_offset"] = frame["break_offset"].fillna(0)
    frame["break_minutes"] = frame["break_offset"] / 60
    frame["is_preroll"] = (frame["break_offset"] == 0).astype(float)
    frame["label"] = frame["clicked"].astype(int)
    return frame


def _title_genres(title_ids: list[int]) -> dict[int, frozenset[str]]:
    pairs = Title.genres.through.objects.filter(title_id__in=title_ids).values_list(
        "title_id", "genre__slug"
    )
    genres: dict[int, set[str]] = {}
    for title_id, slug in pairs:
        genres.setdefault(title_id, set()).add(slug)
    return {title_id: frozenset(slugs) for title_id, slugs in genres.items()}


class PlattCalibrator:
    """A logistic regression on the log-odds of the raw score (Platt scaling)."""

    def __init__(self) -> None:
        self.model = LogisticRegression(C=1e4)

    @staticmethod
    def _logit(raw: np.ndarray) -> np.ndarray:
        clipped = np.clip(raw, 1e-6, 1 - 1e-6)
        return np.log(clipped / (1 - clipped)).reshape(-1, 1)

    def fit(self, raw: np.ndarray, labels: np.ndarray) -> PlattCalibrator:
        self.model.fit(self._logit(raw), labels)
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(self._logit(raw))[:, 1]


@dataclass
class CtrModel:
    """The registry artifact: the fitted features, the estimator and its calibration."""

    features: CtrFeatures
    estimator: object
    calibrator: IsotonicRegression | PlattCalibrator | None = None
    algorithm: str = ""

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        booster = getattr(self.estimator, "booster_", None)
        if booster is not None:
            # The booster itself, single-threaded: a decision scores ~100 rows, where the
            # scikit-learn wrapper's checks and a thread pool cost more than the trees.
            raw = booster.predict(matrix, num_threads=1)
        else:
            raw = self.estimator.predict_proba(matrix)[:, 1]
        if self.calibrator is None:
            return raw
        return np.clip(self.calibrator.predict(raw), 1e-6, 1 - 1e-6)

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_matrix(self.features.matrix(frame))


class OneHotLogistic:
    """The baseline: a logistic regression over one-hot categoricals, genres and numerics."""

    def __init__(self, features: CtrFeatures) -> None:
        self.categorical = len(CATEGORICAL)
        self.encoder = OneHotEncoder(handle_unknown="ignore")
        self.model = LogisticRegression(C=1.0, max_iter=500)

    def _design(self, matrix: np.ndarray, fit: bool = False):
        codes = np.nan_to_num(matrix[:, : self.categorical], nan=-1)
        rest = np.nan_to_num(matrix[:, self.categorical :], nan=0.0)
        scale = np.maximum(np.abs(rest).max(axis=0), 1.0) if fit else self.scale
        if fit:
            self.scale = scale
            onehot = self.encoder.fit_transform(codes)
        else:
            onehot = self.encoder.transform(codes)
        return sparse.hstack([onehot, sparse.csr_matrix(rest / scale)]).tocsr()

    def fit(self, matrix: np.ndarray, labels: np.ndarray) -> OneHotLogistic:
        self.model.fit(self._design(matrix, fit=True), labels)
        return self

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(self._design(matrix))


def _boosted_trees() -> lightgbm.LGBMClassifier:
    return lightgbm.LGBMClassifier(
        n_estimators=1000,
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
        num_threads=2,
        random_state=0,  # the row and column subsamples: the same data, the same model
        verbose=-1,
    )


def split_by_time(frame: pd.DataFrame, holdout_start: dt.datetime):
    """(fit, calibrate, holdout): holdout from `holdout_start`; before it, 80 % / 20 % by time."""
    holdout = frame[frame["occurred_at"] >= holdout_start]
    earlier = frame[frame["occurred_at"] < holdout_start]
    cut = int(len(earlier) * 0.8)
    return earlier.iloc[:cut], earlier.iloc[cut:], holdout


def fit_models(fit: pd.DataFrame, calibrate: pd.DataFrame) -> list[CtrModel]:
    features = CtrFeatures().fit(pd.concat([fit, calibrate]))
    x_fit, y_fit = features.matrix(fit), fit["label"].to_numpy()
    x_cal, y_cal = features.matrix(calibrate), calibrate["label"].to_numpy()
    baseline = OneHotLogistic(features).fit(
        np.vstack([x_fit, x_cal]), np.concatenate([y_fit, y_cal])
    )
    trees = _boosted_trees()
    # The most recent rows stop the boosting (early stopping on their log loss) and then fit
    # the calibration.
    trees.fit(
        x_fit,
        y_fit,
        eval_X=(x_cal,),
        eval_y=(y_cal,),
        categorical_feature=list(range(len(CATEGORICAL))),
        callbacks=[lightgbm.early_stopping(30, verbose=False)],
    )
    raw = trees.booster_.predict(x_cal)
    calibrator: IsotonicRegression | PlattCalibrator
    if int(y_cal.sum()) >= ISOTONIC_MIN_CLICKS:
        calibrator = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1.0)
        name = "LightGBM + isotonic calibration"
    else:  # too few clicks for a step function: a two-parameter sigmoid
        calibrator = PlattCalibrator()
        name = "LightGBM + Platt calibration"
    calibrator.fit(raw, y_cal)
    return [
        CtrModel(features, baseline, None, "logistic regression, one-hot"),
        CtrModel(features, trees, calibrator, name),
    ]


def ctr_model_train(*, window_end: dt.datetime | None = None, days: int = 14) -> list[ModelVersion]:
    """Train on the `days` before `window_end` (default now), the last day held out, and
    register the baseline and the trees (in that order). Raises NotEnoughData."""
    window_end = window_end or timezone.now()
    window_start = window_end - dt.timedelta(days=days)
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
        summary = metrics.summary(y_holdout, scores)
        train_scores = model.predict_frame(pd.concat([fit, calibrate]))
        summary["reference_scores"] = ml_services.reference_scores(train_scores)
        summary["psi"] = metrics.psi(summary["reference_scores"], scores)
        current = champion(ModelKind.CTR)
        champion_metrics = None
        if current is not None:
            champion_metrics = metrics.summary(y_holdout, current.model.predict_frame(holdout))
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
        champions.reset()
    return versions


def ctr_model_retrain(
    *, window_end: dt.datetime | None = None, days: int = 14
) -> ModelVersion | None:
    """The nightly job: train on the window, record the run; a failure is recorded (with
    its reason) and leaves the champion as it was. Returns the trees' version, or None."""
    window_end = window_end or timezone.now()
    run = ml_services.training_run_start(
        kind=ModelKind.CTR, window_start=window_end - dt.timedelta(days=days), window_end=window_end
    )
    try:
        versions = ctr_model_train(window_end=window_end, days=days)
    except Exception as error:  # any failure: recorded, champion untouched
        logger.exception("CTR training failed")
        ml_services.training_run_fail(run=run, error=f"{type(error).__name__}: {error}")
        return None
    trees = versions[-1]
    ml_services.training_run_finish(run=run, model_version=trees)
    return trees


def ctr_drift_measure(*, day: dt.date) -> DriftMeasurement | None:
    """Score `day`'s impressions (UTC) with the CTR champion and record the PSI against its
    training window. None when there is no champion or no impression that day."""
    current = champion(ModelKind.CTR)
    if current is None:
        return None
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    frame = training_frame(start=start, end=start + dt.timedelta(days=1))
    if frame.empty:
        return None
    version = ModelVersion.objects.get(pk=current.version_id)
    return ml_services.drift_record(
        model_version=version, day=day, scores=current.model.predict_frame(frame)
    )
