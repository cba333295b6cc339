"""The engagement model as one picklable object: the fitted features, the classifier and its
calibration. The registry stores it; serving calls `predict`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from engagement.learning.config import CALIBRATION_COVARIATES, FeatureConfig, ModelConfig
from engagement.learning.features import EngagementFeatures

LOGIT_CLIP = 30.0
PROBABILITY_CLIP = 1e-4  # an isotonic step's bounds (a step of 0 or 1 has no logit)
MIN_BETA_WEIGHT = 1e-3  # beta calibration's least weights: strictly rising, never flat
SMALL_TRAINING_ROWS = 20_000
# Of CALIBRATION_COVARIATES (engagement.learning.config), the rates enter on the log-odds
# scale, the idle time as it is (log hours).
LOG_ODDS_COVARIATES = ("viewer_running_rate", "viewer_recent_rate")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -LOGIT_CLIP, LOGIT_CLIP)))


def _clipped_logit(probabilities: np.ndarray) -> np.ndarray:
    """logit(p), p first kept within PROBABILITY_CLIP of 0 and 1 (where it has none)."""
    p = np.clip(probabilities, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return np.log(p / (1 - p))


def _beta_columns(raw: np.ndarray) -> np.ndarray:
    """(ln p, −ln(1 − p)) of p = sigmoid(raw), from the raw log-odds without rounding p."""
    return np.column_stack([-np.logaddexp(0.0, -raw), np.logaddexp(0.0, raw)])


def _fit_beta(raw: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Beta calibration (Kull, Silva Filho and Flach, AISTATS 2017): (a, b, c) of
    q = sigmoid(a·ln p − b·ln(1 − p) + c), p = sigmoid(raw), by maximum likelihood with a and
    b held at MIN_BETA_WEIGHT or more, so q rises strictly with the raw score (titles never
    tie, their order is kept). a = b gives Platt's family; a ≠ b bends the two ends apart."""
    columns = _beta_columns(raw)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = columns @ theta[:2] + theta[2]
        residual = _sigmoid(z) - labels
        value = np.mean(np.logaddexp(0.0, z) - labels * z)
        return float(value), np.r_[columns.T @ residual, residual.sum()] / len(labels)

    bounds = [(MIN_BETA_WEIGHT, None), (MIN_BETA_WEIGHT, None), (None, None)]
    found = minimize(loss, np.array([1.0, 1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=bounds)
    a, b, c = found.x
    return float(a), float(b), float(c)


def _fit_covariate_platt(
    raw: np.ndarray, covariates: np.ndarray, labels: np.ndarray, names: tuple[str, ...]
) -> tuple[float, float, tuple[float, ...]]:
    """(slope, intercept, covariate weights) of p = sigmoid(slope·raw + weights·covariates +
    intercept) by maximum likelihood, the weights of the viewer's rates (LOG_ODDS_COVARIATES)
    held at 0 or more: a viewer who engaged more so far is never predicted to engage less for
    it. Why the bound: the running and the recent rate move together (correlation 0.95 on
    test_learning's world, whose viewers have 25–30 events, most of them among the latest 20),
    and fitted free on a few hundred calibration rows they took opposite weights (−2.27 and
    +1.90, a net −0.37 on the rate's level); when the held-out viewers' rates rose with their
    engaged share, that model lowered its predictions: 1–2 % below plain Platt's mean on the
    held-out rows at each of 8 seeds of test_sessions_after_an_imported_history_..., and out
    of its 0.9–1.1 calibration ratio at one (0.890; plain Platt 0.913; bounded 0.912)."""
    columns = np.column_stack([raw, covariates])

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = columns @ theta[:-1] + theta[-1]
        residual = _sigmoid(z) - labels
        value = np.mean(np.logaddexp(0.0, z) - labels * z)
        return float(value), np.r_[columns.T @ residual, residual.sum()] / len(labels)

    bounds = [
        (None, None),
        *((0.0, None) if name in LOG_ODDS_COVARIATES else (None, None) for name in names),
        (None, None),
    ]
    start = np.r_[1.0, np.zeros(len(names)), 0.0]
    theta = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds).x
    return float(theta[0]), float(theta[-1]), tuple(float(w) for w in theta[1:-1])


def _mean_matching_shift(probabilities: np.ndarray, rate: float) -> float:
    """The logit shift d with mean(sigmoid(logit(p) + d)) = rate (0 when rate is 0 or 1)."""
    if not 0 < rate < 1:
        return 0.0
    logits = _clipped_logit(probabilities)
    return float(brentq(lambda d: _sigmoid(logits + d).mean() - rate, -10.0, 10.0))


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
    # Platt scaling of the raw score: p = sigmoid(slope · z + intercept + shift), plus
    # covariate_weights · the rows' covariate_names columns when there are any (the
    # ModelConfig.calibration_covariates the calibration took: none without the running
    # history, nor in a model pickled before they existed, which serves its plain Platt); with
    # ModelConfig.calibration_method "isotonic", p = sigmoid(logit(isotonic(z)) + shift); with
    # "beta", p = sigmoid(a·ln s − b·ln(1 − s) + c + shift), s = sigmoid(z), beta = (a, b, c).
    slope: float = 1.0
    intercept: float = 0.0
    covariate_names: tuple[str, ...] = ()
    covariate_weights: tuple[float, ...] = ()
    isotonic: IsotonicRegression | None = None
    beta: tuple[float, float, float] | None = None
    shift: float = 0.0
    # Serving asks about a viewing session when the model saw any, else about a rating.
    serve_as_session: bool = False
    base_rate: float = 0.5

    @property
    def uses_history(self) -> bool:
        """Whether rows to score need ``at`` and the history tallies (`history.with_history`,
        or `data.served_history_tallies` when serving)."""
        return self.features is not None and self.features.history_base_rate is not None

    @property
    def algorithm(self) -> str:
        return f"{self.model_config.algorithm}+{self.model_config.calibration_method}"

    def spec(self) -> dict[str, Any]:
        """What the registry's feature_spec records."""
        return {
            "features": list(self.features.names) if self.features else [],
            "feature_config": asdict(self.feature_config),
            "model_config": asdict(self.model_config),
            "calibration": f"{self.model_config.calibration_method}, on the calibration rows"
            + (
                f", with the covariates {list(self.covariate_names)}"
                if self.covariate_names
                else ""
            ),
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
        self._calibration_covariates(history=self.feature_config.history)  # before training
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

        self.calibrate(train, calibration, viewers, titles)
        report = FitReport(
            train_rows=len(train),
            calibration_rows=len(calibration),
            rounds=rounds,
            train_scores=self._calibrated(*self._raw_and_covariates(train_x)),
            calibration_scores=self._calibrated(*self._raw_and_covariates(calibration_x)),
        )
        if refresh_statistics:
            self.features.refit_statistics(pd.concat([train, calibration]), viewers, titles)
        else:
            self.features.refit_statistics(train, viewers, titles)
        return report

    def _calibration_covariates(self, *, history: bool) -> tuple[str, ...]:
        """The calibration covariates ModelConfig names, or a ValueError saying what is wrong
        with them; none without the running history (the rows have no such columns: plain
        Platt)."""
        config = self.model_config
        unknown = set(config.calibration_covariates) - set(CALIBRATION_COVARIATES)
        if unknown:
            raise ValueError(
                f"Calibration covariates are among {CALIBRATION_COVARIATES} "
                f"(unknown: {sorted(unknown)})."
            )
        names = tuple(config.calibration_covariates) if history else ()
        if names and config.calibration_method != "platt":
            raise ValueError(
                "Calibration covariates need the Platt calibration (calibration_covariates=() "
                f"with {config.calibration_method!r})."
            )
        return names

    def calibrate(
        self,
        train: pd.DataFrame,
        calibration: pd.DataFrame,
        viewers: pd.DataFrame,
        titles: pd.DataFrame,
    ) -> None:
        """Fit the mapping from raw score to probability as `model_config` says (method,
        chunks, share, shift: see ModelConfig) on the calibration rows; the classifier is
        already fitted (the benchmark calls this again to compare variants on one booster).
        Leaves the statistics refreshed with some of the calibration rows: `fit` sets them.
        Without the running history (FeatureConfig.history False) there are no calibration
        covariates to take: Platt maps the raw score alone, whatever the config names."""
        config = self.model_config
        assert self.features is not None
        chunks, share, shift_share = (
            config.calibration_chunks,
            config.calibration_share,
            config.shift_share,
        )
        if "at" in calibration:
            ordered = calibration.sort_values("at", kind="mergesort")
        else:  # no times: every row, scored with the training rows' statistics
            ordered, chunks, share, shift_share = calibration, 1, 1.0, 0.0
        self.covariate_names = self._calibration_covariates(history=self.uses_history)
        labels = ordered["label"].to_numpy(float)
        served = self._served_raw(train, ordered, viewers, titles, chunks) if chunks > 1 else None
        cut = len(ordered) - int(round(len(ordered) * share))
        if share >= 1 or cut <= 0 or labels[cut:].min() == labels[cut:].max():
            cut = 0
        if served is not None:
            fit_raw, fit_covariates = served[0][cut:], served[1][cut:]
        else:
            before = pd.concat([train, ordered.iloc[:cut]]) if cut else train
            self.features.refit_statistics(before, viewers, titles)
            fit_raw, fit_covariates = self._raw_and_covariates(
                self.features.transform(ordered.iloc[cut:], viewers, titles)
            )
        fit_labels = labels[cut:]
        self.shift, self.isotonic, self.beta, self.covariate_weights = 0.0, None, None, ()
        if config.calibration_method == "isotonic":
            self.isotonic = IsotonicRegression(
                out_of_bounds="clip", y_min=PROBABILITY_CLIP, y_max=1 - PROBABILITY_CLIP
            ).fit(fit_raw, fit_labels)
        elif config.calibration_method == "beta":
            self.beta = _fit_beta(fit_raw, fit_labels)
        elif config.calibration_method == "platt":
            if self.covariate_names:
                self.slope, self.intercept, self.covariate_weights = _fit_covariate_platt(
                    fit_raw, fit_covariates, fit_labels, self.covariate_names
                )
            else:
                platt = LogisticRegression(C=1e6, max_iter=1000).fit(fit_raw[:, None], fit_labels)
                self.slope, self.intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        else:
            raise ValueError(f"Unknown calibration method {config.calibration_method!r}.")
        if shift_share > 0:
            start = len(ordered) - max(int(round(len(ordered) * shift_share)), 1)
            if served is not None:
                latest = served[0][start:], served[1][start:]
            else:
                before = pd.concat([train, ordered.iloc[:start]])
                self.features.refit_statistics(before, viewers, titles)
                latest = self._raw_and_covariates(
                    self.features.transform(ordered.iloc[start:], viewers, titles)
                )
            self.shift = _mean_matching_shift(self._calibrated(*latest), labels[start:].mean())

    def _served_raw(
        self, train, ordered, viewers, titles, chunks: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw scores and calibration covariates of the calibration rows (oldest first) in
        `chunks` chunks by time, each scored with the statistics of every row before it, as
        serving scores later rows."""
        assert self.features is not None
        raws, covariates = [], []
        for chunk in np.array_split(np.arange(len(ordered)), chunks):
            if len(chunk):
                self.features.refit_statistics(
                    pd.concat([train, ordered.iloc[: chunk[0]]]), viewers, titles
                )
                rows = ordered.iloc[chunk]
                raw, covariate = self._raw_and_covariates(
                    self.features.transform(rows, viewers, titles)
                )
                raws.append(raw)
                covariates.append(covariate)
        return np.concatenate(raws), np.concatenate(covariates)

    def _raw_and_covariates(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The raw score of feature rows `x` and their `covariate_names` columns (rates on the
        log-odds scale; no columns without covariates)."""
        names = self.covariate_names
        if not names:
            return self._raw(x), np.zeros((len(x), 0))
        assert self.features is not None
        columns = x[:, [self.features.names.index(name) for name in names]].astype(float)
        for number, name in enumerate(names):
            if name in LOG_ODDS_COVARIATES:
                columns[:, number] = _clipped_logit(columns[:, number])
        return self._raw(x), columns

    def _calibrated(self, raw: np.ndarray, covariates: np.ndarray | None = None) -> np.ndarray:
        """Probabilities from raw scores (and, with covariate weights, the rows'
        calibration covariates) with the fitted mapping and shift."""
        if self.isotonic is not None:
            return _sigmoid(_clipped_logit(self.isotonic.predict(raw)) + self.shift)
        if self.beta is not None:
            a, b, c = self.beta
            return _sigmoid(_beta_columns(raw) @ np.array([a, b]) + c + self.shift)
        z = self.slope * raw + self.intercept + self.shift
        if self.covariate_weights:
            if covariates is None or covariates.shape[1] != len(self.covariate_weights):
                raise ValueError("This calibration needs the rows' calibration covariates.")
            z = z + covariates @ np.asarray(self.covariate_weights)
        return _sigmoid(z)

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
        attributes in `viewers` and `titles` (indexed by the same keys); when the model
        `uses_history`, the rows carry their moment ``at`` and its history tallies."""
        if self.features is None:
            raise RuntimeError("The engagement model is not fitted.")
        if len(rows) == 0:
            return np.zeros(0)
        if "session" not in rows:
            rows = rows.assign(session=float(self.serve_as_session))
        x = self.features.transform(rows, viewers, titles)
        return self._calibrated(*self._raw_and_covariates(x))
