"""The engagement model: training, promotion and failure, serving with and without a champion,
the nightly task. On a small synthetic world whose rule is known: a viewer engages with a
title with probability sigmoid(quality of the title + the viewer's taste for its genre)."""

import copy
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import joblib
import numpy as np
import pandas as pd
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from catalog.models import AgeBand, Gender, Region
from config.celery import app as celery_app
from engagement.learning import (
    EngagementModel,
    EngagementTrainingError,
    FeatureConfig,
    ModelConfig,
    data,
    default_window_end,
    engagement_fallback,
    engagement_model_train,
    engagement_predict,
    history,
)
from engagement.learning.features import EngagementFeatures
from engagement.learning.model import CALIBRATION_COVARIATES
from engagement.learning.statistics import CollaborativeStats
from engagement.models import Rating, ViewingSession
from engagement.tasks import RETRAIN_SOFT_TIME_LIMIT, retrain_engagement_model_task
from ml import metrics, serving
from ml.models import ModelVersion, TrainingRun
from ml.services import artifact_dumps
from tests.conftest import world_once
from tests.factories import GenreFactory, TitleFactory, ViewerFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 60
WINDOW_END = START + timedelta(days=DAYS + 1)
GENRES = ("drama", "comedy", "horror", "documentary")


@dataclass
class World:
    viewers: list
    titles: list
    genre_of_title: dict[int, int]
    taste: dict[int, np.ndarray]  # viewer id → taste per genre
    quality: dict[int, float]  # title id → quality

    def truth(self, viewer_id: int, title_id: int) -> float:
        logit = self.quality[title_id] + self.taste[viewer_id][self.genre_of_title[title_id]]
        return float(1 / (1 + np.exp(-logit)))


def build_world(*, viewers: int = 100, titles: int = 40, per_viewer: int = 30) -> World:
    """`viewers` × `per_viewer` ratings (3,000 by default) spread over 60 days; engaged rows
    rate 4 or 5, the others 1 to 3."""
    rng = np.random.default_rng(7)
    genres = [GenreFactory(name=slug.title(), slug=slug) for slug in GENRES]
    title_objects, genre_of_title = [], {}
    for number in range(titles):
        title = TitleFactory(year=1980 + number)
        title.genres.set([genres[number % len(GENRES)]])
        title_objects.append(title)
        genre_of_title[title.pk] = number % len(GENRES)
    viewer_objects = [
        ViewerFactory(
            age_band=rng.choice(AgeBand.values),
            gender=rng.choice([Gender.FEMALE, Gender.MALE]),
            region=rng.choice(Region.values),
        )
        for _ in range(viewers)
    ]
    world = World(
        viewers=viewer_objects,
        titles=title_objects,
        genre_of_title=genre_of_title,
        taste={viewer.pk: rng.normal(0.0, 1.5, len(GENRES)) for viewer in viewer_objects},
        quality={title.pk: float(rng.normal(0.0, 1.0)) for title in title_objects},
    )
    ratings = []
    for viewer in viewer_objects:
        for index in rng.choice(titles, per_viewer, replace=False):
            title = title_objects[index]
            engaged = rng.random() < world.truth(viewer.pk, title.pk)
            ratings.append(
                Rating(
                    viewer=viewer,
                    title=title,
                    rating=int(rng.integers(4, 6) if engaged else rng.integers(1, 4)),
                    rated_at=START + timedelta(seconds=float(rng.uniform(0, DAYS * 86400))),
                )
            )
    Rating.objects.bulk_create(ratings)
    return world


# The world, built once for each class below (the module's other tests need an empty database).
world = world_once(lambda: build_world(), scope="class")
# Its first training (a champion, v1, and its promoted run), once for TestTrained's tests.
trained = world_once(lambda world: engagement_model_train(window_end=WINDOW_END), scope="class")


def champions() -> list[ModelVersion]:
    return list(ModelVersion.objects.filter(kind="engagement", status="champion"))


def oracle_auc_on_holdout(world: World) -> float:
    """The AUC of the true probabilities on the held-out rows (the last 10 % by time)."""
    rows = data.interaction_rows(window_start=None, window_end=WINDOW_END)
    holdout = rows.iloc[int(round(len(rows) * 0.9)) :]
    truth = [world.truth(v, t) for v, t in zip(holdout["viewer"], holdout["title"], strict=True)]
    return metrics.auc(holdout["label"], truth)


class TestTrained:
    """On the world with its first training (`trained`): a champion, v1, and its promoted
    run; each test reads it or trains again on top of it."""

    def test_training_promotes_a_first_champion_that_learnt_the_rule(self, world, trained):
        version = trained

        assert (version.version, version.status, version.algorithm) == (
            1,
            "champion",
            "lightgbm+platt",
        )
        assert (version.train_rows, version.holdout_rows) == (2700, 300)
        assert version.window_end == WINDOW_END
        assert START <= version.window_start < START + timedelta(days=1)
        found = version.metrics
        # The truth itself scores 0.86 on these 300 rows, and a model that learnt nothing 0.5
        # ± 0.033 (one standard error at this size): 0.65 is 4.5 standard errors above chance and
        # leaves room below the truth for what 2,700 rows can teach (the model reaches 0.77).
        oracle = oracle_auc_on_holdout(world)
        assert oracle > 0.8
        assert found["auc"] >= 0.65, (found["auc"], oracle)
        assert found["rows"] == 300
        assert found["log_loss"] < metrics.entropy(found["base_rate"])  # beats the base rate
        assert 0.9 <= found["calibration_ratio"] <= 1.1
        assert {"ece", "psi", "psi_band", "accuracy", "reliability", "rounds"} <= set(found)
        assert (found["ratings"], found["sessions"]) == (3000, 0)
        assert "factor_score" in version.feature_spec["features"]
        assert version.feature_spec["label"].startswith("engaged: a rating >= 4")
        run = TrainingRun.objects.get()
        assert (run.outcome, run.model_version, run.window_end) == ("promoted", version, WINDOW_END)
        assert run.finished_at is not None

    def test_a_second_run_of_the_same_window_is_an_equivalent_candidate(self, world, trained):
        first = trained
        second = engagement_model_train(window_end=WINDOW_END)

        assert (second.version, second.status, second.challenged) == (2, "candidate", first)
        assert second.metrics["log_loss"] == first.metrics["log_loss"]
        assert second.metrics["auc"] == first.metrics["auc"]
        assert second.decision.startswith("Log loss")
        assert "is not lower than the champion's" in second.decision
        assert champions() == [first]
        outcomes = list(TrainingRun.objects.order_by("started_at", "pk").values_list("outcome"))
        assert outcomes == [("promoted",), ("kept",)]

    def test_too_little_data_records_a_failed_run_and_keeps_the_champion(self, world, trained):
        champion = trained
        # The first three days hold about 150 ratings.
        early = START + timedelta(days=3)
        with pytest.raises(EngagementTrainingError, match="at least 200 rows with both outcomes"):
            engagement_model_train(window_end=early)

        failed = TrainingRun.objects.get(window_end=early)
        assert failed.outcome == "failed"
        assert failed.error.startswith("EngagementTrainingError: Not enough data")
        assert failed.model_version is None
        assert champions() == [champion]
        assert ModelVersion.objects.count() == 1

    def test_predict_uses_the_champion(self, world, trained, django_assert_max_num_queries):
        viewer = world.viewers[0]
        titles = world.titles

        # One moment for both calls: the viewer's idle time (hours since their last known
        # event, a calibration covariate) moves with the clock, so two calls a few
        # milliseconds apart differ by ~1e-11.
        at = timezone.now()
        predicted = engagement_predict(viewer=viewer, titles=titles, at=at)  # loads the champion
        # The titles' genres, the viewer's known events, the titles' tallies (the running
        # history: `data.served_history_tallies`).
        with django_assert_max_num_queries(3):
            assert engagement_predict(viewer=viewer, titles=titles, at=at) == predicted

        assert list(predicted) == [title.pk for title in titles]
        values = np.array(list(predicted.values()))
        fallback = np.array(list(engagement_fallback(titles=titles).values()))
        assert np.abs(values - fallback).max() > 0.05  # not the fallback
        # It ranks this viewer's titles along the truth.
        truth = np.array([world.truth(viewer.pk, title.pk) for title in titles])
        assert np.corrcoef(values, truth)[0, 1] > 0.5

    def test_a_new_title_in_a_viewers_favourite_genre_ranks_above_one_they_dislike(
        self, world, trained
    ):
        # One unrated title per genre: the model knows nothing of its quality, only its genre and
        # the viewer's history with that genre.
        new_titles = []
        for genre_number in range(len(GENRES)):
            title = TitleFactory(year=2000)
            title.genres.set([world.titles[genre_number].genres.get()])
            new_titles.append(title)
        # The ten viewers whose favourite and least favourite genres differ most (a logit gap of
        # 3 or more in the truth): their 30 ratings show it.
        by_gap = sorted(world.viewers, key=lambda v: np.ptp(world.taste[v.pk]), reverse=True)[:10]
        for viewer in by_gap:
            favourite, disliked = _favourite_and_disliked(world, viewer)
            predicted = engagement_predict(viewer=viewer, titles=new_titles)
            # The model's gaps are 0.24 to 0.71 on this world; 0.1 is well clear of noise.
            gap = predicted[new_titles[favourite].pk] - predicted[new_titles[disliked].pk]
            assert gap > 0.1, (viewer.pk, GENRES[favourite], GENRES[disliked], predicted)

    def test_a_new_viewer_is_scored_by_the_titles_engagement_rates(self, world, trained):
        newcomer = ViewerFactory()
        predicted = engagement_predict(viewer=newcomer, titles=world.titles)

        ratings = Rating.objects.all()
        base_rate = ratings.filter(rating__gte=4).count() / ratings.count()
        title_rates = [
            ratings.filter(title=title, rating__gte=4).count() / ratings.filter(title=title).count()
            for title in world.titles
        ]
        values = np.array([predicted[title.pk] for title in world.titles])
        # Without a history, the titles' own rates are what is known: the scores follow them (0.94
        # on this world) and average near everyone's base rate (0.40 against 0.44).
        assert np.corrcoef(values, title_rates)[0, 1] > 0.8
        assert values.mean() == pytest.approx(base_rate, abs=0.08)

    def test_the_soft_time_limit_records_a_failed_run_and_keeps_the_champion(
        self, world, trained, monkeypatch
    ):
        champion = trained

        def slow_fit(self, *args, **kwargs):
            # What the worker raises inside the task when the soft limit passes.
            raise SoftTimeLimitExceeded(f"{RETRAIN_SOFT_TIME_LIMIT} s")

        monkeypatch.setattr("engagement.learning.model.EngagementModel.fit", slow_fit)
        with pytest.raises(SoftTimeLimitExceeded):
            retrain_engagement_model_task.apply(kwargs={"window_end_iso": WINDOW_END.isoformat()})
        failed = TrainingRun.objects.get(outcome="failed")
        assert failed.error.startswith("SoftTimeLimitExceeded: ")
        assert failed.finished_at is not None
        assert champions() == [champion]
        assert ModelVersion.objects.count() == 1

    def test_an_unexpected_error_is_recorded_raised_and_leaves_the_champion(
        self, world, trained, monkeypatch
    ):
        champion = trained

        def broken_fit(self, *args, **kwargs):
            raise RuntimeError("the features ran out of memory")

        monkeypatch.setattr("engagement.learning.model.EngagementModel.fit", broken_fit)
        with pytest.raises(RuntimeError, match="out of memory"):
            engagement_model_train(window_end=WINDOW_END)
        failed = TrainingRun.objects.get(outcome="failed")
        assert failed.error == "RuntimeError: the features ran out of memory"
        assert champions() == [champion]


class TestOnTheWorld:
    """On the world without a model: each test that trains starts from an empty registry."""

    def test_one_outcome_only_is_refused(self, world):
        Rating.objects.update(rating=5)
        with pytest.raises(EngagementTrainingError, match="3000 rows, 3000 engaged"):
            engagement_model_train(window_end=WINDOW_END)
        assert TrainingRun.objects.get().outcome == "failed"
        assert not ModelVersion.objects.exists()

    def test_predict_without_a_champion_falls_back_to_each_titles_smoothed_rate(self, world):
        first, unrated = world.titles[0], TitleFactory()
        predicted = engagement_predict(viewer=world.viewers[0], titles=[first, unrated])

        ratings = Rating.objects.all()
        base_rate = ratings.filter(rating__gte=4).count() / ratings.count()
        engaged = ratings.filter(title=first, rating__gte=4).count()
        rated = ratings.filter(title=first).count()
        assert predicted == {
            first.pk: pytest.approx((engaged + 10 * base_rate) / (rated + 10)),
            unrated.pk: pytest.approx(base_rate),
        }
        assert engagement_predict(viewer=world.viewers[0], titles=[]) == {}

    def test_the_nightly_task_runs_eagerly_and_is_idempotent(self, world):
        # apply(): in process, as the embedded default's eager mode runs .delay(), and also when
        # REDIS_URL makes Celery use a broker (CI).
        night = WINDOW_END.isoformat()
        first = retrain_engagement_model_task.apply(kwargs={"window_end_iso": night}).get()
        again = retrain_engagement_model_task.apply(kwargs={"window_end_iso": night}).get()

        assert first["outcome"] == "promoted"
        assert again["outcome"] == "kept"
        assert champions() == [ModelVersion.objects.get(pk=first["model_version_id"])]
        assert ModelVersion.objects.count() == 2

        too_early = retrain_engagement_model_task.apply(args=["2026-03-03T00:00:00"]).get()
        assert too_early["outcome"] == "failed"
        assert "Not enough data" in too_early["error"]
        assert champions() == [ModelVersion.objects.get(pk=first["model_version_id"])]
        assert TrainingRun.objects.filter(outcome="failed").count() == 1

    def test_viewing_sessions_train_alongside_ratings(self, world):
        rng = np.random.default_rng(11)
        sessions = []
        for viewer in world.viewers[:50]:
            for index in rng.choice(len(world.titles), 12, replace=False):
                title = world.titles[index]
                finished = rng.random() < world.truth(viewer.pk, title.pk)
                started = START + timedelta(seconds=float(rng.uniform(0, DAYS * 86400)))
                sessions.append(_session(viewer, title, started, finished, rng))
        ViewingSession.objects.bulk_create(sessions)

        version = engagement_model_train(window_end=WINDOW_END)
        assert (version.metrics["ratings"], version.metrics["sessions"]) == (3000, 600)
        assert version.feature_spec["serve_as_session"] is True
        assert version.metrics["auc"] >= 0.65
        # Served as sessions, the scores follow the truth that drew the sessions' outcomes.
        scores, truth = [], []
        for viewer in world.viewers[:5]:
            predicted = engagement_predict(viewer=viewer, titles=world.titles)
            scores += [predicted[title.pk] for title in world.titles]
            truth += [world.truth(viewer.pk, title.pk) for title in world.titles]
        assert np.corrcoef(scores, truth)[0, 1] > 0.5

    def test_sessions_after_an_imported_history_are_split_by_their_own_time(self, world):
        """The demo's shape: ratings from an old history (here the 60 days from START), viewing
        sessions a year later, too few of them (300 of 3,300 rows) to reach the last tenth of the
        merged timeline's rows without it. One cut through that timeline would hold out all the
        sessions and train and calibrate on ratings alone; sessions engage less than ratings here
        (the truth's logit − 1), so that candidate was miscalibrated (calibration ratio 1.46) and
        not promoted. Cut per source, each source trains, calibrates and is held out 80 / 10 / 10
        by its own time."""
        rng = np.random.default_rng(13)
        live_from = START + timedelta(days=365)
        window_end = live_from + timedelta(days=3)
        sessions = []
        for number in range(300):
            viewer = world.viewers[number % len(world.viewers)]
            title = world.titles[int(rng.integers(len(world.titles)))]
            logit = np.log(
                world.truth(viewer.pk, title.pk) / (1 - world.truth(viewer.pk, title.pk))
            )
            finished = rng.random() < 1 / (1 + np.exp(1.0 - logit))
            started = live_from + timedelta(seconds=float(rng.uniform(0, 3 * 86400 - 7200)))
            sessions.append(_session(viewer, title, started, finished, rng))
        ViewingSession.objects.bulk_create(sessions)

        version = engagement_model_train(window_end=window_end)
        found = version.metrics
        assert (found["ratings"], found["sessions"]) == (3000, 300)
        assert (version.train_rows, version.holdout_rows) == (2700 + 270, 330)
        assert (found["holdout_ratings"], found["holdout_sessions"]) == (300, 30)
        assert found["calibration_rows"] == 330
        # The held-out rows start with the last tenth of the ratings, not in the sessions' days.
        assert datetime.fromisoformat(found["holdout_start"]) < START + timedelta(days=DAYS)
        assert version.feature_spec["serve_as_session"] is True
        session_rate = sum(session.completed for session in sessions) / len(sessions)
        assert session_rate < Rating.objects.filter(rating__gte=4).count() / 3000 - 0.1
        assert 0.9 <= found["calibration_ratio"] <= 1.1
        assert version.status == "champion"


def _favourite_and_disliked(world: World, viewer) -> tuple[int, int]:
    taste = world.taste[viewer.pk]
    return int(np.argmax(taste)), int(np.argmin(taste))


def test_sessions_are_labelled_by_completion_or_watch_ratio():
    viewer, title = ViewerFactory(), TitleFactory(duration_seconds=6000)
    started = START + timedelta(days=1)

    def session(watched, completed=False, ended=True, abandoned=False):
        return ViewingSession(
            viewer=viewer,
            title=title,
            device="ctv",
            started_at=started,
            ended_at=started + timedelta(hours=2) if ended else None,
            watched_seconds=watched,
            completed=completed,
            abandoned=abandoned,
        )

    ViewingSession.objects.bulk_create(
        [
            session(6000, completed=True),  # finished
            session(5400),  # 90 % watched
            session(3000, abandoned=True),  # half
            session(100, ended=False),  # still running: no outcome yet
        ]
    )
    rows = data.interaction_rows(window_start=None, window_end=WINDOW_END)
    assert list(rows["label"]) == [1, 1, 0]
    assert list(rows["score"]) == [1.0, 1.0, 0.5]
    assert list(rows["session"]) == [1, 1, 1]


def test_a_night_ends_at_midnight_utc_so_reruns_see_the_same_rows():
    late = datetime(2026, 5, 2, 23, 59, tzinfo=UTC)
    assert default_window_end(late) == datetime(2026, 5, 2, tzinfo=UTC)
    assert default_window_end(late.replace(hour=0, minute=1)) == datetime(2026, 5, 2, tzinfo=UTC)


def test_the_beat_schedule_names_the_registered_retraining_task(settings):
    # Beat sends the name only: a task renamed or moved without the schedule would never run.
    name = settings.CELERY_BEAT_SCHEDULE["retrain-engagement-model"]["task"]
    assert celery_app.tasks[name].run is retrain_engagement_model_task.run


@pytest.fixture(autouse=True)
def _fresh_champions():
    serving.champions.reset()
    yield
    serving.champions.reset()


def _session(viewer, title, started: datetime, finished: bool, rng) -> ViewingSession:
    """A session that finished the title, or was abandoned 5–80 % into a 90-minute watch."""
    watched = title.duration_seconds if finished else int(rng.uniform(0.05, 0.8) * 5400)
    return ViewingSession(
        viewer=viewer,
        title=title,
        device=viewer.device,
        started_at=started,
        ended_at=started + timedelta(seconds=watched + 60),
        watched_seconds=watched,
        completed=finished,
        abandoned=not finished,
    )


# The rows below are noise around a drifting rate, without the moments of a history: the
# test is of the calibration alone.
NO_HISTORY = FeatureConfig(history=False)


def _drifting_rows():
    """The rows of the test below: viewers, titles, the training rows (4,000), the calibration
    rows (newest first) and two draws of 2,000 later rows, each the same on every call."""
    rng = np.random.default_rng(0)
    viewers = pd.DataFrame(
        {
            "age_band": rng.choice(["18_24", "25_34", "35_44"], 200),
            "gender": rng.choice(["F", "M"], 200),
            "region": "us_west",
            "device": "ctv",
            "is_kids": False,
        },
        index=np.arange(1, 201),
    )
    titles = pd.DataFrame(
        {"year": 1995.0, "maturity_rating": "PG-13", "genres": [("drama",)] * 50},
        index=np.arange(1, 51),
    )

    def rows(count, rate, start):
        return pd.DataFrame(
            {
                "viewer": rng.integers(1, 201, count),
                "title": rng.integers(1, 51, count),
                "label": (rng.random(count) < rate).astype(int),
                "score": 0.5,
                "at": start + np.arange(count, dtype=float),
            }
        )

    train = rows(4000, 0.5, 0)
    earlier, latest = rows(1000, 0.3, 10_000), rows(1000, 0.8, 20_000)
    calibration = pd.concat([earlier, latest]).iloc[::-1]  # newest first
    later = [rows(2000, 0.8, 30_000)[["viewer", "title"]] for _ in range(2)]
    return viewers, titles, train, calibration, later


@pytest.fixture(scope="module")
def mean_when_calibrated_on_every_row() -> float:
    """The mean prediction on the later rows of a model calibrated on every calibration row:
    the same for each of the test's options, so fitted once."""
    viewers, titles, train, calibration, later = _drifting_rows()
    everything = EngagementModel(
        feature_config=NO_HISTORY, model_config=ModelConfig(calibration_share=1.0)
    )
    everything.fit(train, calibration, viewers, titles)
    return float(everything.predict(later[1], viewers, titles).mean())


@pytest.mark.parametrize(
    "options",
    [
        {"calibration_share": 0.5},
        {"shift_share": 0.5},
        {"calibration_chunks": 4, "shift_share": 0.5},
        {"calibration_method": "isotonic", "calibration_share": 0.5},
        {"calibration_method": "beta", "calibration_share": 0.5},
        {"calibration_method": "beta", "calibration_chunks": 4, "calibration_share": 0.5},
    ],
)
def test_calibration_follows_the_latest_calibration_rows_by_time(
    options, mean_when_calibrated_on_every_row
):
    """The calibration rows' click rate drifts: 30 % in their earlier half, 80 % in the later
    one, and the labels are noise the features cannot explain. Calibrated on the latest
    slice by time (Platt, beta or isotonic), or shifted so that the latest slice's mean is matched,
    the model predicts ~80 % (what comes next), although the rows arrive in reverse time
    order (the slice is chosen by time, not by place in the frame)."""
    viewers, titles, train, calibration, later = _drifting_rows()
    model = EngagementModel(feature_config=NO_HISTORY, model_config=ModelConfig(**options))
    model.fit(train, calibration, viewers, titles)
    predicted = model.predict(later[0], viewers, titles)
    assert predicted.mean() == pytest.approx(0.8, abs=0.05)
    # An isotonic mapping is a step function: no more distinct values than its steps.
    if options.get("calibration_method") == "isotonic":
        assert len(np.unique(predicted)) <= len(model.isotonic.y_thresholds_)
    else:
        assert model.isotonic is None
    assert (model.beta is not None) == (options.get("calibration_method") == "beta")
    # Calibrated on every calibration row instead: their mean, 55 %.
    assert mean_when_calibrated_on_every_row == pytest.approx(0.55, abs=0.05)


def test_beta_calibration_maps_a_raw_score_by_its_three_weights():
    """q = sigmoid(a·ln p − b·ln(1 − p) + c), p = sigmoid(raw), worked by hand for
    (a, b, c) = (2, 0.5, 0.3): raw 0 is p = 1/2, so logit q = −2·ln 2 + 0.5·ln 2 + 0.3 =
    −0.7397, q = 0.3231; raw ln 3 is p = 3/4, logit q = 2·ln 0.75 + 0.5·ln 4 + 0.3 = 0.4178,
    q = 0.6030. With (1, 1, 0) the mapping is the raw score's own sigmoid."""
    model = EngagementModel(beta=(2.0, 0.5, 0.3))
    assert model._calibrated(np.array([0.0, np.log(3.0)])) == pytest.approx(
        [0.3231, 0.6030], abs=1e-4
    )
    raw = np.array([-3.0, -0.5, 0.0, 2.0])
    model.beta = (1.0, 1.0, 0.0)
    assert model._calibrated(raw) == pytest.approx(1 / (1 + np.exp(-raw)))


def test_beta_calibration_recovers_its_weights_and_never_ties_or_reverses_titles():
    """Labels drawn from a known beta mapping give back its weights. Labels whose rate falls
    as the raw score rises at the low end (an unconstrained fit's a < 0) still get a mapping
    rising strictly with the raw score: distinct scores stay distinct, in the same order, so
    a viewer's titles keep their ranking (an isotonic step or a fitted negative weight would
    tie or reverse them)."""
    from engagement.learning.model import _fit_beta

    rng = np.random.default_rng(3)
    raw = rng.normal(0.0, 1.5, 200_000)
    model = EngagementModel(beta=(1.5, 0.6, -0.2))
    labels = (rng.random(len(raw)) < model._calibrated(raw)).astype(float)
    assert _fit_beta(raw, labels) == pytest.approx((1.5, 0.6, -0.2), abs=0.05)

    # A U-shaped rate: high at both ends, lowest in the middle.
    raw = np.linspace(-4.0, 4.0, 4001)
    rate = np.where(raw < 0, 0.4 + 0.1 * -raw, 0.4 + 0.1 * raw)
    labels = (rng.random(len(raw)) < rate).astype(float)
    model.beta = _fit_beta(raw, labels)
    assert min(model.beta[:2]) > 0
    assert np.all(np.diff(model._calibrated(raw)) > 0)


def _rated_rows(count: int = 3000, seed: int = 5):
    """`count` ratings of 60 viewers and 30 titles, one a second, a title's rate its quality."""
    rng = np.random.default_rng(seed)
    viewers = pd.DataFrame(
        {
            "age_band": rng.choice(["18_24", "25_34", "35_44"], 60),
            "gender": rng.choice(["F", "M"], 60),
            "region": "us_west",
            "device": "ctv",
            "is_kids": False,
        },
        index=np.arange(1, 61),
    )
    titles = pd.DataFrame(
        {"year": 1995.0, "maturity_rating": "PG-13", "genres": [("drama",), ("comedy",)] * 15},
        index=np.arange(1, 31),
    )
    title = rng.integers(1, 31, count)
    label = (rng.random(count) < np.linspace(0.2, 0.8, 30)[title - 1]).astype(int)
    rows = pd.DataFrame(
        {
            "viewer": rng.integers(1, 61, count),
            "title": title,
            "label": label,
            "score": label.astype(float),
            "at": np.arange(count, dtype=float),
        }
    )
    return viewers, titles, rows


@pytest.mark.parametrize("time_blocks", [0, 4])
def test_as_of_time_statistics_never_show_a_training_row_a_later_label(time_blocks):
    """FeatureConfig.time_blocks = k > 1: a training row's collaborative statistics are those
    serving would have read at its time, from the blocks before its own: flipping the labels
    of its block and of every later row leaves the features of the third block's rows as they
    were, while flipping a row of the block before moves them (the check can fail). With the
    out-of-fold statistics (0), the later rows' labels do reach the earlier rows."""
    viewers, titles, rows = _rated_rows()
    config = FeatureConfig(history=False, time_blocks=time_blocks)
    names = slice(-len(CollaborativeStats.NAMES), None)
    before = EngagementFeatures(config=config).fit_transform(rows, viewers, titles)[:, names]
    third = slice(1500, 2250)  # the third of four blocks of 750 rows, by time

    def features_with_flipped(positions: np.ndarray) -> np.ndarray:
        label = rows["label"].to_numpy().copy()
        label[positions] = 1 - label[positions]
        flipped = rows.assign(label=label, score=label.astype(float))
        return EngagementFeatures(config=config).fit_transform(flipped, viewers, titles)[:, names]

    later = features_with_flipped(np.arange(1500, 3000))
    earlier = features_with_flipped(np.arange(750, 1500))
    assert not np.allclose(earlier[third], before[third])
    if time_blocks:
        assert np.array_equal(later[third], before[third])
        # The counts are those of the rows before the block too: the third block's titles have
        # been seen about twice as often as the second block's.
        count = list(CollaborativeStats.NAMES).index("title_log_count")
        assert np.expm1(before[third, count]).mean() == pytest.approx(1500 / 30, rel=0.1)
        assert np.expm1(before[750:1500, count]).mean() == pytest.approx(750 / 30, rel=0.1)
    else:
        assert not np.allclose(later[third], before[third])


def _newcomer_rows(seed: int = 11):
    """300 viewers who each rate 30 of 40 titles in a burst, one viewer after another (as
    MovieLens' users do): a viewer engages with probability sigmoid(their propensity, N(0,
    1.5) on the log-odds, + the title's quality, −1 to 1). Rows carry their running history.
    Returns viewers, titles, rows and the propensities (by viewer key − 1)."""
    rng = np.random.default_rng(seed)
    count, title_count = 300, 40
    viewers = pd.DataFrame(
        {
            "age_band": rng.choice(["18_24", "25_34", "35_44"], count),
            "gender": rng.choice(["F", "M"], count),
            "region": "us_west",
            "device": "ctv",
            "is_kids": False,
        },
        index=np.arange(1, count + 1),
    )
    titles = pd.DataFrame(
        {
            "year": 1995.0,
            "maturity_rating": "PG-13",
            "genres": [("drama",), ("comedy",)] * (title_count // 2),
        },
        index=np.arange(1, title_count + 1),
    )
    propensity = rng.normal(0.0, 1.5, count)
    quality = np.linspace(-1.0, 1.0, title_count)
    frames = []
    for viewer in range(1, count + 1):
        title = rng.choice(np.arange(1, title_count + 1), 30, replace=False)
        rate = 1 / (1 + np.exp(-(propensity[viewer - 1] + quality[title - 1])))
        label = (rng.random(30) < rate).astype(int)
        frames.append(
            pd.DataFrame(
                {
                    "viewer": viewer,
                    "title": title,
                    "label": label,
                    "score": label.astype(float),
                    "at": 30.0 * (viewer - 1) + np.arange(30.0),
                }
            )
        )
    rows = pd.concat(frames, ignore_index=True)
    return viewers, titles, history.with_history(rows, rows), propensity


@pytest.fixture(scope="module")
def newcomer_model():
    """`newcomer_model(features, covariates)`: an EngagementModel with these features and
    calibration covariates (ModelConfig's default when None), fitted on `_newcomer_rows`'
    first 200 viewers and calibrated on the next 50. Fitted once for the module, a copy for
    each test (a test may change its model): four tests fit the same few models."""
    viewers, titles, rows, _ = _newcomer_rows()
    train = rows[rows["viewer"] <= 200]
    calibration = rows[rows["viewer"].between(201, 250)]
    fitted: dict[tuple, EngagementModel] = {}

    def model(features: FeatureConfig, covariates: tuple[str, ...] | None) -> EngagementModel:
        if (features, covariates) not in fitted:
            config = (
                ModelConfig()
                if covariates is None
                else ModelConfig(calibration_covariates=covariates)
            )
            fresh = EngagementModel(feature_config=features, model_config=config)
            fresh.fit(train, calibration, viewers, titles)
            fitted[features, covariates] = fresh
        return copy.deepcopy(fitted[features, covariates])

    return model


def test_calibration_covariates_give_a_newcomers_running_rate_its_weight(newcomer_model):
    """ModelConfig.calibration_covariates: the training rows are of viewers the statistics
    know (but a tenth playing newcomers), the calibration rows and the later ones of viewers
    first seen after the training, known by their running history alone. The trees under-use
    that history: plain Platt predicts the most engaged newcomers (propensity > 1) 0.14 below
    their rate and the least engaged (< −1) 0.19 above. With the viewer's recent rate beside
    the raw score, fitted on the calibration rows, its weight is positive and both gaps
    shrink, by 0.03 or more, with a lower log loss; the artifact keeps the weights."""
    viewers, titles, rows, propensity = _newcomer_rows()
    later = rows[rows["viewer"] > 250]
    labels = later["label"].to_numpy()
    engaged = propensity[later["viewer"].to_numpy() - 1]
    high, low = engaged > 1, engaged < -1

    def gaps_and_loss(model: EngagementModel) -> tuple[float, float, float]:
        predicted = model.predict(later.drop(columns=["label", "score"]), viewers, titles)
        return (
            abs(predicted[high].mean() - labels[high].mean()),
            abs(predicted[low].mean() - labels[low].mean()),
            metrics.log_loss(labels, predicted),
        )

    plain = newcomer_model(FeatureConfig(), ())
    assert plain.covariate_weights == ()
    with_history = newcomer_model(FeatureConfig(), ("viewer_recent_rate",))
    (weight,) = with_history.covariate_weights
    assert weight > 0.3
    plain_high, plain_low, plain_loss = gaps_and_loss(plain)
    high_gap, low_gap, loss = gaps_and_loss(with_history)
    assert plain_high > 0.1 and plain_low > 0.1
    assert high_gap < plain_high - 0.03 and low_gap < plain_low - 0.03
    assert loss < plain_loss
    assert "viewer_recent_rate" in with_history.spec()["calibration"]
    served = joblib.load(io.BytesIO(artifact_dumps(with_history)))
    assert served.predict(later.drop(columns=["label", "score"]), viewers, titles) == (
        pytest.approx(with_history.predict(later, viewers, titles))
    )


def test_calibration_covariates_keep_a_viewers_titles_in_the_raw_scores_order():
    """The covariates are the viewer's, the same for every title at one moment: the titles of
    one viewer scored at once (a viewer's home) come out in the raw score's order, every one
    distinct. Only those columns, and only with Platt, are accepted (checked before the
    training). The rates' weights are
    held at 0 or more: fitted free, the two rates, which move together, take opposite
    weights here (running 1.78, recent −1.16); held, running 0.65, recent 0."""
    viewers, titles, rows, _ = _newcomer_rows()
    config = ModelConfig(calibration_covariates=CALIBRATION_COVARIATES)
    model = EngagementModel(model_config=config)
    model.fit(rows[rows["viewer"] <= 200], rows[rows["viewer"] > 200], viewers, titles)
    running, recent, idle = model.covariate_weights
    assert running > 0.3 and recent == 0.0 and idle != 0.0
    # Viewer 280 after 20 of their ratings, asking about every title: one row per title.
    moment = rows[rows["viewer"] == 280].iloc[20]
    home = pd.DataFrame([moment] * 40, index=range(40)).assign(title=np.arange(1, 41))
    home = history.with_history(home.drop(columns=["label", "score"]), rows)
    predicted = model.predict(home, viewers, titles)
    raw = model._raw(model.features.transform(home.assign(session=0.0), viewers, titles))
    assert len(np.unique(raw)) == 40
    assert np.array_equal(np.argsort(predicted), np.argsort(raw))
    for bad in (
        ModelConfig(calibration_covariates=("viewer_recent_rate",), calibration_method="beta"),
        ModelConfig(calibration_covariates=("title_running_rate",)),
    ):
        refused = EngagementModel(model_config=bad)
        with pytest.raises(ValueError, match="Calibration covariates"):
            refused.fit(rows[rows["viewer"] <= 200], rows[rows["viewer"] > 200], viewers, titles)
        assert refused.features is None  # refused before any training


def test_without_the_running_history_the_default_calibration_is_plain_platt(newcomer_model):
    """ModelConfig's default calibration takes the viewer's running history as covariates;
    with FeatureConfig.history off the rows have none: the calibration is Platt on the raw
    score alone, the very model `calibration_covariates=()` fits (beta and isotonic, which
    take no covariates, are accepted there too: test_calibration_follows_...)."""
    viewers, titles, rows, _ = _newcomer_rows()
    later = rows[rows["viewer"] > 250]
    assert ModelConfig().calibration_covariates == CALIBRATION_COVARIATES
    default = newcomer_model(NO_HISTORY, None)
    plain = newcomer_model(NO_HISTORY, ())
    assert default.model_config == ModelConfig()
    assert default.covariate_names == default.covariate_weights == ()
    assert "covariates" not in default.spec()["calibration"]
    assert (default.slope, default.intercept) == (plain.slope, plain.intercept)
    assert np.array_equal(
        default.predict(later, viewers, titles), plain.predict(later, viewers, titles)
    )


@pytest.mark.parametrize("features", [FeatureConfig(), NO_HISTORY], ids=["history", "none"])
def test_a_model_pickled_before_the_calibration_covariates_serves_its_plain_platt(
    features, newcomer_model
):
    """A champion pickled before the covariates existed has no `covariate_names` or
    `covariate_weights`, and its ModelConfig no `calibration_covariates`, which now reads as
    the new default: it loads and scores exactly as it was trained, Platt on the raw score
    (with the running history or without, when its features have no such columns)."""
    viewers, titles, rows, _ = _newcomer_rows()
    later = rows[rows["viewer"] > 250]
    model = newcomer_model(features, ())
    expected = model.predict(later, viewers, titles)
    # What such a pickle holds: none of the fields added since.
    del model.__dict__["covariate_names"], model.__dict__["covariate_weights"]
    object.__delattr__(model.model_config, "calibration_covariates")
    old = joblib.load(io.BytesIO(artifact_dumps(model)))
    assert "covariate_names" not in old.__dict__
    assert old.model_config.calibration_covariates == CALIBRATION_COVARIATES
    assert np.array_equal(old.predict(later, viewers, titles), expected)
