"""The live engagement score's model: P(the viewer finishes the title | the engagement model's
prior for viewer × title, what the session did so far), trained on finished sessions cut at
several moments, registered as its own kind (`ModelKind.LIVE_ENGAGEMENT`).

Rows: each finished session (completed or abandoned) gives one row per moment of CUT_MINUTES
after its start at which it was still open, with the features of its events up to that moment
(`live_features.feature_row`) and its outcome (completed) as the label. A row never sees the
session's end: the moment precedes it, and the replay ignores the ending events. Which rows
a session gives depends on how long it lasted, as for the sessions open now: a long sitting
is scored many times while it runs, a short one a few.
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import joblib
import lightgbm
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from catalog.models import Title
from engagement.learning import data
from engagement.learning.live_features import FEATURES, Playback, feature_row
from engagement.learning.predict import engagement_fallback
from engagement.learning.training import default_window_end
from engagement.models import PlaybackEvent, ViewingSession
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

KIND = ModelKind.LIVE_ENGAGEMENT
CUT_MINUTES = (1, 3, 5, 10, 15, 20, 30, 45, 60, 80, 100, 120, 150, 180)
MIN_SESSIONS = 100
# By session start: the first 70 % of sessions train, the next 15 % early-stop and calibrate,
# the last 15 % are held out; all of a session's rows stay in its part.
CALIBRATION_SHARE = 0.15
HOLDOUT_SHARE = 0.15
LOGIT_CLIP = 30.0
LABEL = "completed: the session played its title to the end (abandoned: not)"


class LiveScoreTrainingError(TrainingError):
    """Too few finished sessions, or one outcome only; nothing registered."""


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -LOGIT_CLIP, LOGIT_CLIP)))


@dataclass
class LiveScoreModel:
    """Gradient-boosted trees on FEATURES, calibrated by Platt scaling; the stored artifact."""

    booster: lightgbm.Booster | None = None
    slope: float = 1.0
    intercept: float = 0.0
    features: tuple[str, ...] = FEATURES

    algorithm = "lightgbm+platt"

    def fit(self, train: np.ndarray, train_y: np.ndarray, stop: np.ndarray, stop_y: np.ndarray):
        params = {
            "objective": "binary",
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_data_in_leaf": int(np.clip(len(train_y) // 200, 5, 100)),
            "feature_fraction": 0.9,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
            "num_threads": 1,
            "seed": 0,
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
        }
        names = list(self.features)
        train_set = lightgbm.Dataset(train, train_y, feature_name=names)
        booster = lightgbm.train(
            params,
            train_set,
            num_boost_round=1000,
            valid_sets=[lightgbm.Dataset(stop, stop_y, reference=train_set)],
            callbacks=[lightgbm.early_stopping(50, verbose=False)],
        )
        rounds = int(booster.best_iteration or booster.current_iteration())
        self.booster = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=rounds))
        platt = LogisticRegression(C=1e6).fit(self._raw(stop)[:, None], stop_y)
        self.slope, self.intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        return rounds

    def _raw(self, x: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("The live score model is not fitted.")
        return np.asarray(self.booster.predict(x, raw_score=True, num_threads=1))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for the rows of `x` (columns: FEATURES)."""
        x = np.asarray(x, dtype=float).reshape(-1, len(self.features))
        return _sigmoid(self.slope * self._raw(x) + self.intercept)


def engagement_priors(pairs: list[tuple[int, int, datetime]]) -> np.ndarray:
    """The engagement champion's probability for each (viewer id, title id, moment), in one
    call of the model, with the running history known before each moment (a session's start:
    when serving stores its prior); without a champion (or if it fails), each title's
    `engagement_fallback`."""
    if not pairs:
        return np.zeros(0)
    loaded = ml_selectors.champion(ModelKind.ENGAGEMENT)
    if loaded is not None:
        rows = pd.DataFrame(pairs, columns=["viewer", "title", "at"])
        try:
            if loaded.model.uses_history:
                rows = data.with_stored_history(rows)
            return np.asarray(
                loaded.model.predict(rows, data.all_viewers_frame(), data.all_titles_frame())
            )
        except Exception:
            logger.exception(
                "Engagement model v%s failed; priors from the fallback.", loaded.version
            )
    titles = Title.objects.filter(pk__in={title for _, title, _ in pairs})
    fallback = engagement_fallback(titles=list(titles))
    return np.array([fallback[title] for _, title, _ in pairs])


@dataclass(frozen=True)
class PrefixRows:
    """The rows of a set of finished sessions: features, label, and each row's session and
    cut (minutes after the start)."""

    x: np.ndarray
    y: np.ndarray
    session_ids: np.ndarray
    cut_minutes: np.ndarray
    priors: np.ndarray


def prefix_rows(sessions: list[ViewingSession], cuts=CUT_MINUTES) -> PrefixRows:
    """Cut each finished session at each moment of `cuts` (minutes after its start) before it
    ended; its events up to the moment give the features, its outcome the label."""
    events: dict[int, list[Playback]] = defaultdict(list)
    ids = [session.pk for session in sessions]
    for start in range(0, len(ids), 2000):  # an IN list of bounded size
        for session_id, kind, position, at, detail in (
            PlaybackEvent.objects.filter(session_id__in=ids[start : start + 2000])
            .order_by("session_id", "at", "id")
            .values_list("session_id", "kind", "position_seconds", "at", "detail")
        ):
            events[session_id].append(Playback(kind, position, at, detail))
    priors = engagement_priors([(s.viewer_id, s.title_id, s.started_at) for s in sessions])
    x, y, session_ids, cut_minutes, row_priors = [], [], [], [], []
    for session, prior in zip(sessions, priors, strict=True):
        if session.ended_at is None:
            continue
        for minutes in cuts:
            at = session.started_at + timedelta(minutes=minutes)
            if at >= session.ended_at:
                break
            x.append(
                feature_row(
                    events[session.pk],
                    started_at=session.started_at,
                    duration_seconds=session.title.duration_seconds,
                    prior=float(prior),
                    at=at,
                )
            )
            y.append(int(session.completed))
            session_ids.append(session.pk)
            cut_minutes.append(minutes)
            row_priors.append(float(prior))
    return PrefixRows(
        x=np.array(x, dtype=float).reshape(-1, len(FEATURES)),
        y=np.array(y, dtype=float),
        session_ids=np.array(session_ids, dtype=int),
        cut_minutes=np.array(cut_minutes, dtype=int),
        priors=np.array(row_priors, dtype=float),
    )


# Only sessions that started this long before the window's end: by then every sitting has
# ended. Taking every session that ended in the window would keep, of the last hours, the
# short ones (mostly abandoned) and leave out the long ones still running (mostly finishing),
# and the held-out sessions, the latest, would be the most biased.
SETTLED_AFTER = timedelta(hours=4)


def finished_sessions(
    *, window_start: datetime | None, window_end: datetime
) -> list[ViewingSession]:
    """Sessions that started from `window_start` and at least SETTLED_AFTER before
    `window_end`, and ended before it; by start."""
    sessions = ViewingSession.objects.filter(
        started_at__lt=window_end - SETTLED_AFTER, ended_at__isnull=False, ended_at__lt=window_end
    )
    if window_start is not None:
        sessions = sessions.filter(started_at__gte=window_start)
    return list(
        sessions.select_related("title")
        .only(
            "pk", "viewer_id", "title_id", "title__duration_seconds", "started_at",
            "ended_at", "completed",
        )
        .order_by("started_at", "id")
    )  # fmt: skip


def split_sessions(
    sessions: list[ViewingSession],
) -> tuple[list[ViewingSession], list[ViewingSession], list[ViewingSession]]:
    """Training, calibration and held-out sessions, by start time (the model serves the
    future). Refused when there are too few, or a part has one outcome only."""
    count = len(sessions)
    completed = sum(session.completed for session in sessions)
    if count < MIN_SESSIONS or completed in (0, count):
        raise LiveScoreTrainingError(
            f"Not enough finished sessions to train the live score: {count}, {completed} "
            f"completed; it needs at least {MIN_SESSIONS} with both outcomes."
        )
    calibration_from = int(round(count * (1 - CALIBRATION_SHARE - HOLDOUT_SHARE)))
    holdout_from = int(round(count * (1 - HOLDOUT_SHARE)))
    return (
        sessions[:calibration_from],
        sessions[calibration_from:holdout_from],
        sessions[holdout_from:],
    )


def prior_metrics(rows: PrefixRows, calibration: PrefixRows) -> dict:
    """The prior alone on the held-out rows: as served (the engagement model's probability,
    which asks about engaging, not finishing), and recalibrated to finishing by Platt scaling
    on the calibration rows (the fair baseline: the same data, no behaviour)."""
    found = {f"prior_{name}": value for name, value in _headline(rows.y, rows.priors).items()}
    platt = LogisticRegression(C=1e6).fit(calibration.x[:, :1], calibration.y)
    recalibrated = platt.predict_proba(rows.x[:, :1])[:, 1]
    found |= {
        f"prior_recalibrated_{name}": value
        for name, value in _headline(rows.y, recalibrated).items()
    }
    return found


def _headline(labels: np.ndarray, scores: np.ndarray) -> dict:
    summary = ml_selectors.model_metrics(labels, scores)
    return {name: summary[name] for name in ("auc", "log_loss", "calibration_ratio", "ece")}


def auc_by_cut(rows: PrefixRows, scores: np.ndarray) -> dict[str, float]:
    """The AUC of the rows cut at each moment (where both outcomes are present)."""
    found = {}
    for minutes in sorted(set(rows.cut_minutes.tolist())):
        mask = rows.cut_minutes == minutes
        if 0 < rows.y[mask].sum() < mask.sum():
            found[str(minutes)] = ml_selectors.model_metrics(rows.y[mask], scores[mask])["auc"]
    return found


def live_score_model_train(
    *, window_end: datetime | None = None, window_days: int | None = None
) -> ModelVersion:
    """Train the live score on the sessions that ended before `window_end` (default: midnight
    UTC today), started SETTLED_AFTER before it and, with `window_days`, not before that
    many days; register it, and
    promote it if it beats the champion (or, first, the base rate) on the same held-out rows.

    1. Sessions by start: 70 % train, 15 % early-stop and calibrate, 15 % held out.
    2. Each becomes prefix rows (`prefix_rows`): features up to a moment, the outcome.
    3. The candidate, after a round trip through its artifact, and the prior alone are scored
       on the held-out rows; both sets of figures are stored in the version's metrics.

    Deterministic: the same window gives the same candidate. Every attempt is a TrainingRun;
    a failure is recorded, leaves the champion, and is raised again (`LiveScoreTrainingError`
    when the window has too little data)."""
    window_end = window_end or default_window_end()
    if window_end.tzinfo is None:
        raise ValueError("window_end needs a time zone.")
    window_start = window_end - timedelta(days=window_days) if window_days else None
    run = training_run_start(kind=KIND, window_start=window_start, window_end=window_end)
    try:
        version = _train(window_start=window_start, window_end=window_end)
    except Exception as error:
        training_run_fail(run=run, error=f"{type(error).__name__}: {error}")
        logger.warning("Live score training failed: %s", error)
        raise
    training_run_finish(run=run, model_version=version)
    logger.info("Live score model v%s: %s", version.version, version.decision)
    return version


def _train(*, window_start: datetime | None, window_end: datetime) -> ModelVersion:
    sessions = finished_sessions(window_start=window_start, window_end=window_end)
    parts = split_sessions(sessions)
    train, calibration, holdout = (prefix_rows(part) for part in parts)
    for name, rows in (("training", train), ("calibration", calibration), ("held-out", holdout)):
        if len(set(rows.y.tolist())) < 2:
            raise LiveScoreTrainingError(
                f"The {name} sessions' rows ({len(rows.y)}) have one outcome only."
            )
    model = LiveScoreModel()
    rounds = model.fit(train.x, train.y, calibration.x, calibration.y)
    served = joblib.load(io.BytesIO(artifact_dumps(model)))
    probabilities = served.predict(holdout.x)
    metrics = ml_selectors.model_metrics(holdout.y, probabilities)
    metrics |= prior_metrics(holdout, calibration) | {
        "rounds": rounds,
        "sessions": len(sessions),
        "holdout_sessions": len(parts[2]),
        "calibration_rows": len(calibration.y),
        "auc_by_cut": auc_by_cut(holdout, probabilities),
        "holdout_start": parts[2][0].started_at.isoformat(),
    }
    return model_version_register(
        kind=KIND,
        model=model,
        algorithm=model.algorithm,
        metrics=metrics,
        feature_spec={
            "features": list(FEATURES),
            "cut_minutes": list(CUT_MINUTES),
            "label": LABEL,
            "split": "sessions by start: 70 % train, 15 % calibration, 15 % held out",
            "calibration": "platt, on the calibration sessions' rows",
        },
        train_rows=len(train.y) + len(calibration.y),
        holdout_rows=len(holdout.y),
        window_start=window_start or sessions[0].started_at,
        window_end=window_end,
        champion_metrics=_champion_metrics(holdout),
    )


def _champion_metrics(holdout: PrefixRows) -> dict | None:
    champion = ml_selectors.champion_version(kind=KIND)
    if champion is None:
        return None
    try:
        model = joblib.load(io.BytesIO(bytes(champion.artifact)))
        return ml_selectors.model_metrics(holdout.y, np.asarray(model.predict(holdout.x)))
    except Exception:
        logger.exception(
            "The live score champion v%s cannot score the held-out rows.", champion.version
        )
        return None
