"""The engagement model as one picklable object: the fitted features, the classifier and its
calibration. The registry stores it; serving calls `predict`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from engagement.learning.config import FeatureConfig, ModelConfig
from engagement.learning.features import EngagementFeatures

LOGIT_CLIP = 30.0
SMALL_TRAINING_ROWS = 20_000


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -LOGIT_CLIP, LOGIT_CLIP)))


@dataclass(frozen=True)
class FitReport:
    """What a fit saw, for the training run's metrics (not stored in the artifact)."""

    train_rows: int
    calibration_rows: int
    rounds: int
    # Calibrated scores of the training rows (from their out-of-fold features) and of the
    # calibration rows: the reference distributions for drift.
    train_scores: np.ndarray
    calibration_scores: np.ndarray


@dataclass
class EngagementModel:
    """P(engaged | viewer, title). Fit on training rows, early-stopped and calibrated on the
    calibration rows that follow them; the collaborative statistics are then refreshed with
    the calibration rows, so the model scores later rows knowing everything before them."""

    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    model_config: ModelConfig = field(default_factory=ModelConfig)
    features: EngagementFeatures | None = None
    booster: lightgbm.Booster | None = None
    scaler: StandardScaler | None = None
    linear: LogisticRegression | None = None
    # Platt scaling of the raw score: p = sigmoid(slope · z + intercept).
    slope: float = 1.0
    intercept: float = 0.0
    # Serving asks about a viewing session when the model saw any, else about a rating.
    serve_as_session: bool = False
    base_rate: float = 0.5

    @property
    def algorithm(self) -> str:
        return f"{self.model_config.algorithm}+platt"

    def spec(self) -> dict[str, Any]:
        """What the registry's feature_spec records."""
        return {
            "features": list(self.features.names) if self.features else [],
            "feature_config": asdict(self.feature_config),
            "model_config": asdict(self.model_config),
            "calibration": "platt, on the calibration rows",
            "serve_as_session": self.serve_as_session,
        }

    def fit(
        self,
        train: pd.DataFrame,
        calibration: pd.DataFrame,
        viewers: pd.DataFrame,
        titles: pd.DataFrame,
        *,
        refresh_statistics: bool = True,
    ) -> FitReport:
        """Fit on `train`, stop and calibrate on `calibration` (rows after `train` in time,
        or a random share of them in the benchmark), then refresh the statistics with the
        calibration rows (`refresh_statistics=False` keeps those of `train` alone; the
        benchmark measures the difference)."""
        for name, rows in (("training", train), ("calibration", calibration)):
            if rows["label"].nunique() < 2:
                raise ValueError(f"The {name} rows need both engaged and not engaged rows.")
        self.features = EngagementFeatures(config=self.feature_config)
        train_x = self.features.fit_transform(train, viewers, titles)
        calibration_x = self.features.transform(calibration, viewers, titles)
        train_y = train["label"].to_numpy(float)
        calibration_y = calibration["label"].to_numpy(float)
        self.base_rate = float(train_y.mean())
        self.serve_as_session = bool("session" in train and train["session"].astype(bool).any())

        if self.model_config.algorithm == "lightgbm":
            rounds = self._fit_booster(train_x, train_y, calibration_x, calibration_y)
        elif self.model_config.algorithm == "logistic":
            self.scaler = StandardScaler().fit(train_x)
            self.linear = LogisticRegression(C=self.model_config.logistic_c, max_iter=2000)
            self.linear.fit(self.scaler.transform(train_x), train_y)
            rounds = int(self.linear.n_iter_[0])
        else:
            raise ValueError(f"Unknown algorithm {self.model_config.algorithm!r}.")

        latest_x, latest_y = self._latest_slice(train, calibration, viewers, titles)
        platt = LogisticRegression(C=1e6).fit(self._raw(latest_x)[:, None], latest_y)
        self.slope, self.intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        calibration_raw = self._raw(calibration_x)
        report = FitReport(
            train_rows=len(train),
            calibration_rows=len(calibration),
            rounds=rounds,
            train_scores=_sigmoid(self.slope * self._raw(train_x) + self.intercept),
            calibration_scores=_sigmoid(self.slope * calibration_raw + self.intercept),
        )
        if refresh_statistics:
            self.features.refit_statistics(pd.concat([train, calibration]), viewers, titles)
        return report

    def _latest_slice(
        self,
        train: pd.DataFrame,
        calibration: pd.DataFrame,
        viewers: pd.DataFrame,
        titles: pd.DataFrame,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The rows Platt scaling is fitted on: the latest `calibration_share` of the
        calibration rows by time, with the statistics refreshed with every row before them,
        so they are scored as served rows are (knowing everything before them)."""
        share = self.model_config.calibration_share
        ordered = calibration.sort_values("at", kind="mergesort") if "at" in calibration else None
        cut = len(calibration) - int(round(len(calibration) * share))
        if ordered is None or share >= 1 or cut <= 0 or ordered.iloc[cut:]["label"].nunique() < 2:
            rows = calibration
        else:
            earlier, rows = ordered.iloc[:cut], ordered.iloc[cut:]
            self.features.refit_statistics(pd.concat([train, earlier]), viewers, titles)  # type: ignore[union-attr]
        x = self.features.transform(rows, viewers, titles)  # type: ignore[union-attr]
        return x, rows["label"].to_numpy(float)

    def _fit_booster(
        self, train_x: np.ndarray, train_y: np.ndarray, stop_x: np.ndarray, stop_y: np.ndarray
    ) -> int:
        config = self.model_config
        params = {
            "objective": "binary",
            "learning_rate": config.learning_rate,
            "num_leaves": config.num_leaves,
            "min_data_in_leaf": int(np.clip(len(train_y) // 400, 5, config.min_data_in_leaf)),
            "feature_fraction": config.feature_fraction,
            "bagging_fraction": config.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": config.lambda_l2,
            # Threads only pay off on large trainings; on small ones they wait on each other.
            "num_threads": config.threads if len(train_y) >= SMALL_TRAINING_ROWS else 1,
            "seed": config.seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
        }
        names = list(self.features.names)  # type: ignore[union-attr]
        train_set = lightgbm.Dataset(train_x, train_y, feature_name=names)
        booster = lightgbm.train(
            params,
            train_set,
            num_boost_round=config.max_rounds,
            valid_sets=[lightgbm.Dataset(stop_x, stop_y, reference=train_set)],
            callbacks=[lightgbm.early_stopping(config.early_stopping_rounds, verbose=False)],
        )
        rounds = int(booster.best_iteration or booster.current_iteration())
        # Keep only the trees up to the best round: a smaller artifact, nothing to remember.
        self.booster = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=rounds))
        return rounds

    def _raw(self, x: np.ndarray) -> np.ndarray:
        """The classifier's uncalibrated log-odds."""
        if self.booster is not None:
            # One thread: serving scores small batches, where threads cost more than they save.
            return np.asarray(self.booster.predict(x, raw_score=True, num_threads=1))
        if self.linear is not None and self.scaler is not None:
            return self.linear.decision_function(self.scaler.transform(x))
        raise RuntimeError("The engagement model is not fitted.")

    def predict(
        self, rows: pd.DataFrame, viewers: pd.DataFrame, titles: pd.DataFrame
    ) -> np.ndarray:
        """Calibrated probabilities for the (``viewer``, ``title``) pairs of `rows`, with the
        attributes in `viewers` and `titles` (indexed by the same keys)."""
        if self.features is None:
            raise RuntimeError("The engagement model is not fitted.")
        if len(rows) == 0:
            return np.zeros(0)
        if "session" not in rows:
            rows = rows.assign(session=float(self.serve_as_session))
        x = self.features.transform(rows, viewers, titles)
        return _sigmoid(self.slope * self._raw(x) + self.intercept)
