"""What a CTR artifact holds and how it scores: the calibrators, the one-hot baseline and the
model wrapper that the registry stores (ads.learning.training fits them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from ads.learning.features import CATEGORICAL, FORMAT_VERSION, CtrFeatures, ServingRows
from ads.learning.forest import CompiledForest


class PlattCalibrator:
    """A logistic regression on the log-odds of the raw score (Platt scaling), applied with
    numpy alone (a decision cannot afford scikit-learn's input checks)."""

    def __init__(self) -> None:
        self.slope, self.intercept = 1.0, 0.0

    @staticmethod
    def _logit(raw: np.ndarray) -> np.ndarray:
        clipped = np.clip(raw, 1e-6, 1 - 1e-6)
        return np.log(clipped / (1 - clipped))

    def fit(self, raw: np.ndarray, labels: np.ndarray) -> PlattCalibrator:
        model = LogisticRegression(C=1e4).fit(self._logit(raw).reshape(-1, 1), labels)
        self.slope, self.intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(self.slope * self._logit(raw) + self.intercept)))


class IsotonicCalibrator:
    """Isotonic regression, applied as the linear interpolation of its fitted steps."""

    def __init__(self) -> None:
        self.x = np.array([0.0, 1.0])
        self.y = np.array([0.0, 1.0])

    def fit(self, raw: np.ndarray, labels: np.ndarray) -> IsotonicCalibrator:
        model = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1.0).fit(raw, labels)
        self.x, self.y = model.X_thresholds_, model.y_thresholds_
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return np.interp(raw, self.x, self.y)


@dataclass
class CtrModel:
    """The registry artifact: the fitted features, the estimator and its calibration."""

    features: CtrFeatures
    estimator: Any
    calibrator: IsotonicCalibrator | PlattCalibrator | None = None
    algorithm: str = ""
    format_version: int = FORMAT_VERSION

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for cache in ("_serving", "_forest", "_cached"):  # per process, rebuilt on first use
            state.pop(cache, None)
        return state

    def cached(self, name: str, make):
        """A per-process object made from this model once (`make(self)`), never pickled."""
        objects = self.__dict__.setdefault("_cached", {})
        if name not in objects:
            objects[name] = make(self)
        return objects[name]

    @property
    def serving(self) -> ServingRows:
        serving = self.__dict__.get("_serving")
        if serving is None:
            serving = self.__dict__["_serving"] = ServingRows(self.features)
        return serving

    @property
    def forest(self) -> CompiledForest | None:
        """The trees as arrays (ads.learning.forest), or None for a model that is not a
        LightGBM binary booster summing its trees (the logistic baseline)."""
        if "_forest" not in self.__dict__:
            booster = getattr(self.estimator, "booster_", None)
            try:
                forest = CompiledForest.from_booster(booster) if booster is not None else None
            except ValueError:
                forest = None
            self.__dict__["_forest"] = forest
        return self.__dict__["_forest"]

    def raw_scores(self, matrix: np.ndarray) -> np.ndarray:
        booster = getattr(self.estimator, "booster_", None)
        if booster is not None:
            # The booster itself, single-threaded: a decision scores ~100 rows, where the
            # scikit-learn wrapper's checks and a thread pool cost more than the trees.
            return booster.predict(matrix, num_threads=1)
        return self.estimator.predict_proba(matrix)[:, 1]

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        return self.calibrated(self.raw_scores(matrix))

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        """pCTR from the estimator's scores (probabilities before calibration)."""
        if self.calibrator is None:
            return scores
        # np.clip's own values, without its wrapper's cost (a tenth of a decision's scoring).
        return np.minimum(np.maximum(self.calibrator.predict(scores), 1e-6), 1 - 1e-6)

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores of rows after the training window (history: the window's totals)."""
        return self.predict_matrix(self.features.matrix(frame))


class OneHotLogistic:
    """The baseline: a logistic regression over one-hot categoricals, genres and numerics."""

    def __init__(self, features: CtrFeatures) -> None:
        self.categorical = len(CATEGORICAL)
        self.encoder = OneHotEncoder(handle_unknown="ignore")
        self.model = LogisticRegression(C=1.0, max_iter=500)
        self.scale = np.ones(0)

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
