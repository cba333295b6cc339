"""The live engagement score: features from a prefix of a session only, training and
promotion on simulated sessions (against the prior alone), scoring open sessions through
`sessions_touched`, the nightly task and the train_models step."""

import io
import random
from datetime import UTC, datetime, timedelta
from io import StringIO

import joblib
import numpy as np
import pytest
from django.core.management import call_command
from django.db import transaction

from demo.simulation import HistoryOptions, World, simulate_history
from engagement import services
from engagement.learning.live_features import FEATURES, Playback, feature_row, session_state
from engagement.learning.live_training import (
    LiveScoreTrainingError,
    finished_sessions,
    live_score_model_train,
    prefix_rows,
)
from engagement.learning.training import default_window_end
from engagement.live import HISTORY_POINTS, sessions_touched
from engagement.models import PlaybackEvent, ViewingSession
from engagement.tasks import retrain_live_score_model_task
from ml import metrics as ml_metrics
from ml.models import ModelKind, ModelVersion, TrainingRun
from tests.conftest import world_once
from tests.demo.test_simulation import build_small_world
from tests.factories import TitleFactory, ViewerFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 4, 20, 0, tzinfo=UTC)


def event(kind, position, seconds, **detail) -> Playback:
    return Playback(kind, position, T0 + timedelta(seconds=seconds), detail)


# -- features from a prefix ------------------------------------------------------------------


def test_the_replay_runs_while_playing_and_stands_still_when_paused_or_in_an_ad_break():
    events = [
        event("play", 0, 0),
        event("pause", 100, 100),
        event("resume", 100, 400),  # five minutes paused
        event("ad_break", 200, 500, ads=2, pod_seconds=45),
        event("seek", 300, 645, **{"from": 300, "to": 240}),  # back a minute
        event("skip", 340, 745, **{"from": 340, "to": 370}),
    ]
    state = session_state(events, duration_seconds=3600, at=T0 + timedelta(seconds=845))
    assert state.position == 470  # 370 at the skip, then 100 s of play
    assert state.played_seconds == 100 + 100 + 100 + 100 + 100  # 500 s of content
    assert (state.pauses, state.paused_seconds) == (1, 300)
    assert (state.seeks_back, state.seek_back_seconds) == (1, 60)
    assert (state.skips, state.skipped_seconds) == (1, 30)
    assert (state.breaks_sat, state.ads_sat, state.state) == (1, 2, "playing")
    # In the middle of the pod, and in the middle of the pause: standing still.
    assert session_state(events, duration_seconds=3600, at=T0 + timedelta(seconds=520)).state == (
        "ad"
    )
    paused = session_state(events, duration_seconds=3600, at=T0 + timedelta(seconds=250))
    assert (paused.position, paused.paused_seconds, paused.state) == (100, 150, "paused")


def test_the_replay_reads_the_web_players_ads_one_by_one_and_its_speed():
    events = [
        event("play", 0, 0),
        event("ad_break", 60, 60, ads=2, pod_seconds=45),
        event("ad_start", 60, 60, ad=1, ads=2),
        event("ad_end", 60, 75, ad=1, ads=2),
        event("ad_start", 60, 75, ad=2, ads=2),
        event("ad_end", 60, 90, ad=2, ads=2),  # the pod ended 15 s before its planned 45 s
        event("speed", 100, 100, rate=2, **{"from": 1}),
    ]
    during = session_state(events, duration_seconds=3600, at=T0 + timedelta(seconds=80))
    assert (during.state, during.position) == ("ad", 60)
    state = session_state(events, duration_seconds=3600, at=T0 + timedelta(seconds=110))
    assert (state.breaks_sat, state.ads_sat, state.state) == (1, 2, "playing")
    assert state.position == 100 + 2 * 10  # double speed since 100 s
    # Ads reported without an ad_break: the break lasts until the last one ends.
    alone = [event("play", 0, 0), event("ad_start", 30, 30, ad=1, ads=1)]
    waiting = session_state(alone, duration_seconds=3600, at=T0 + timedelta(seconds=300))
    assert (waiting.state, waiting.position, waiting.ads_sat) == ("ad", 30, 0)


def test_features_see_nothing_after_the_moment_and_never_the_ending():
    events = [event("play", 0, 0), event("pause", 60, 60)]
    later = [event("resume", 60, 600), event("skip", 100, 640, **{"from": 100, "to": 900})]
    at = T0 + timedelta(seconds=300)
    row = feature_row(events, started_at=T0, duration_seconds=1800, prior=0.7, at=at)
    assert len(row) == len(FEATURES)
    for ending in ("abandon", "complete"):
        with_future = events + later + [event(ending, 900, 700)]
        assert feature_row(with_future, started_at=T0, duration_seconds=1800, prior=0.7, at=at) == (
            row
        )
    named = dict(zip(FEATURES, row, strict=True))
    assert named["elapsed_minutes"] == 5
    assert named["position_share"] == pytest.approx(60 / 1800)
    assert (named["pauses"], named["paused_now"], named["paused_minutes"]) == (1, 1.0, 4.0)
    assert named["prior_logit"] == pytest.approx(np.log(0.7 / 0.3))


def test_training_rows_are_prefixes_cut_before_each_session_ended(db):
    viewer, title = ViewerFactory(), TitleFactory(duration_seconds=3600)
    services.viewing_sessions_record(
        sessions=[
            services.SessionSpec(
                viewer_id=viewer.pk,
                title_id=title.pk,
                device="ctv",
                started_at=T0,
                ended_at=T0 + timedelta(minutes=12),
                watched_seconds=700,
                completed=False,
                abandoned=True,
                events=[
                    services.PlaybackSpec("play", 0, T0),
                    services.PlaybackSpec("skip", 600, T0 + timedelta(minutes=10), {"to": 640}),
                    services.PlaybackSpec("abandon", 700, T0 + timedelta(minutes=12)),
                ],
            )
        ]
    )
    rows = prefix_rows(finished_sessions(window_start=None, window_end=T0 + timedelta(days=1)))
    assert rows.cut_minutes.tolist() == [1, 3, 5, 10]  # the session ended before 15 minutes
    assert rows.y.tolist() == [0, 0, 0, 0]
    skips = rows.x[:, FEATURES.index("skips")]
    assert skips.tolist() == [0, 0, 0, 1]  # the skip at 10 minutes, seen from that cut on


# -- training on simulated sessions ----------------------------------------------------------


def fourteen_simulated_days():
    """Fourteen seeded days of the simulator on the small world (about 2,000 sessions), up to
    today's midnight (UTC); returns the end of the simulated time. Up to the minute instead, the
    clock chose which evening sessions the training window's held-out tail held: at 11:38 UTC
    on 2026-12-06 its calibration came out 0.898, outside the promotion's 0.9-1.1, and at the
    seven other hours tried it did not (session 16)."""
    build_small_world()
    end = default_window_end()  # the training's own night: today's midnight, UTC
    simulate_history(
        World.load(seed=5),
        HistoryOptions(end=end, days=14, viewers=48, seed=5, sessions_per_viewer=3),
    )
    return end + timedelta(seconds=1)


# Class-scoped: only the class below asks for it, and the module's other tests need a database
# without it.
_simulated_days = world_once(fourteen_simulated_days, scope="class")


class TestOnFourteenSimulatedDays:
    """The tests that train on the simulated days, which are built once for them."""

    @pytest.fixture
    def simulated_days(self, _simulated_days, db):
        return _simulated_days

    def test_the_live_score_beats_the_prior_alone_on_later_days(self, simulated_days):
        """Trained on the first ten days (its own held-out sessions are the last of those), then
        judged on the four days after them, which neither it nor its calibration saw."""
        train_end = simulated_days - timedelta(days=4)
        version = live_score_model_train(window_end=train_end)
        metrics = version.metrics
        assert version.kind == ModelKind.LIVE_ENGAGEMENT
        assert version.status == ModelVersion.Status.CHAMPION
        assert metrics["holdout_sessions"] > 200
        assert metrics["prior_recalibrated_auc"] == pytest.approx(metrics["prior_auc"])
        assert 0.9 <= metrics["calibration_ratio"] <= 1.1
        assert TrainingRun.objects.get(kind=ModelKind.LIVE_ENGAGEMENT).outcome == "promoted"

        later = prefix_rows(finished_sessions(window_start=train_end, window_end=simulated_days))
        model = joblib.load(io.BytesIO(bytes(version.artifact)))
        scores = model.predict(later.x)
        live, prior = ml_metrics.summary(later.y, scores), ml_metrics.summary(later.y, later.priors)
        # Measured over four orders of the suite (the world's ids, and so its traffic, differ):
        # AUC 0.677, 0.683, 0.693, 0.677 against the prior's 0.606, 0.606, 0.675, 0.640. No
        # log-loss comparison: without an engagement champion the prior is each title's rate
        # over every finished session, these four days' included, which flatters it. The gain
        # was as small as 0.011 in one world: better than the prior, without a margin to flake on.
        assert live["auc"] > prior["auc"]
        # Calibrated on the training window, judged on later days whose finishing rate differs:
        # the ratio measured 1.11 alone and 1.19 in one order of the suite on PostgreSQL.
        assert 0.8 <= live["calibration_ratio"] <= 1.25

        # The same window again: an equivalent candidate, not promoted (its log loss ties).
        again = live_score_model_train(window_end=train_end)
        assert again.metrics["auc"] == metrics["auc"]
        assert again.status == ModelVersion.Status.CANDIDATE

    def test_train_models_trains_the_live_score_after_the_engagement_model(self, simulated_days):
        out = StringIO()
        call_command("train_models", stdout=out)
        text = out.getvalue()
        # Trained (promoted or not: the small world's last evening decides its calibration).
        assert text.index("engagement: ") < text.index("live_engagement: v1 ")


def test_too_few_sessions_is_a_recorded_failure(db):
    with pytest.raises(LiveScoreTrainingError, match="Not enough finished sessions"):
        live_score_model_train(window_end=T0)
    assert retrain_live_score_model_task.apply(kwargs={"window_end_iso": T0.isoformat()}).get()[
        "outcome"
    ] == ("failed")
    runs = TrainingRun.objects.filter(kind=ModelKind.LIVE_ENGAGEMENT)
    assert [run.outcome for run in runs] == ["failed", "failed"]


# -- a world where behaviour says who will leave ---------------------------------------------


def disengaged_world(sessions: int = 700, seed: int = 3):
    """Sessions of one 60-minute title whose outcome is decided at the start: a viewer who
    will leave (40 %) pauses in the first minutes and skips every few minutes, then leaves
    somewhere in the title; one who stays rarely does either. The rule the live score should
    learn, and the simulator of `demo` does not have (its pauses and skips are the same for
    both)."""
    rng = random.Random(seed)
    title = TitleFactory(duration_seconds=3600)
    viewers = [ViewerFactory() for _ in range(20)]
    specs = []
    for number in range(sessions):
        start = T0 - timedelta(days=30) + timedelta(hours=number)
        leaves = rng.random() < 0.4
        end_minute = rng.uniform(8, 55) if leaves else 60
        events = [services.PlaybackSpec("play", 0, start)]
        position, clock = 0, start
        minute = 0.0
        if rng.random() < (0.8 if leaves else 0.1):  # an early pause
            minute = rng.uniform(0.5, 3)
            position = int(minute * 60)
            clock = start + timedelta(minutes=minute)
            events.append(services.PlaybackSpec("pause", position, clock))
            clock += timedelta(minutes=rng.uniform(1, 4))
            events.append(services.PlaybackSpec("resume", position, clock))
        skip_every = 3 if leaves else 40
        while True:
            gap = rng.expovariate(1 / skip_every)
            if position + gap * 60 >= end_minute * 60:
                break
            clock += timedelta(minutes=gap)
            position += int(gap * 60)
            events.append(
                services.PlaybackSpec(
                    "skip", position, clock, {"from": position, "to": position + 30}
                )
            )
            position += 30
        clock += timedelta(seconds=max(0, end_minute * 60 - position))
        events.append(services.PlaybackSpec("abandon" if leaves else "complete", 0, clock))
        specs.append(
            services.SessionSpec(
                viewer_id=viewers[number % len(viewers)].pk,
                title_id=title.pk,
                device="ctv",
                started_at=start,
                ended_at=clock,
                watched_seconds=int(end_minute * 60),
                completed=not leaves,
                abandoned=leaves,
                events=events,
            )
        )
    services.viewing_sessions_record(sessions=specs)
    return viewers[0], title


def test_skips_and_an_early_pause_score_lower_than_watching_straight_through(
    db, django_capture_on_commit_callbacks
):
    viewer, title = disengaged_world()
    version = live_score_model_train(window_end=T0)
    assert version.status == ModelVersion.Status.CHAMPION
    assert version.metrics["auc"] > version.metrics["prior_auc"] + 0.2

    now = T0 + timedelta(days=1)
    with django_capture_on_commit_callbacks(execute=True):
        straight = services.viewing_session_start(
            viewer_id=viewer.pk, title_id=title.pk, device="ctv", started_at=now
        )
        fidgety = services.viewing_session_start(
            viewer_id=viewer.pk, title_id=title.pk, device="ctv", started_at=now
        )
    PlaybackEvent.objects.create(session=straight, kind="play", position_seconds=0, at=now)
    fidgety_events = [("play", 0, 0, {}), ("pause", 60, 60, {}), ("resume", 60, 180, {})]
    for number in range(4):  # a 30-second skip every two minutes from minute 5
        at, position = 300 + 120 * number, 180 + 150 * number
        fidgety_events.append(("skip", position, at, {"from": position, "to": position + 30}))
    for kind, position, seconds, detail in fidgety_events:
        PlaybackEvent.objects.create(
            session=fidgety,
            kind=kind,
            position_seconds=position,
            at=now + timedelta(seconds=seconds),
            detail=detail,
        )
    sessions_touched(session_ids=[straight.pk, fidgety.pk], at=now + timedelta(minutes=15))
    straight.refresh_from_db()
    fidgety.refresh_from_db()
    assert straight.engagement_prior == fidgety.engagement_prior  # the same viewer × title
    assert fidgety.engagement_score < straight.engagement_score - 0.3
    assert straight.engagement_score > 0.8


# -- scoring open sessions -------------------------------------------------------------------


def test_sessions_touched_keeps_a_short_history_and_leaves_ended_sessions_alone(
    db, django_capture_on_commit_callbacks
):
    viewer, title = ViewerFactory(), TitleFactory(duration_seconds=3600)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        session = services.viewing_session_start(
            viewer_id=viewer.pk, title_id=title.pk, device="ctv", started_at=T0
        )
    assert len(callbacks) == 1  # scored when the start committed
    session.refresh_from_db()
    # No model of either kind: the prior is the title's fallback rate (no data: 0.5), and the
    # score is the prior.
    assert (session.engagement_prior, session.engagement_score) == (0.5, 0.5)
    for minute in range(1, HISTORY_POINTS + 5):
        sessions_touched(session_ids=[session.pk], at=T0 + timedelta(minutes=minute))
    session.refresh_from_db()
    assert len(session.score_history) == HISTORY_POINTS
    assert session.score_history[-1] == [int((T0 + timedelta(minutes=44)).timestamp()), 0.5]
    assert session.score_updated_at == T0 + timedelta(minutes=44)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.viewing_session_finish(
            session=session,
            ended_at=T0 + timedelta(minutes=50),
            watched_seconds=3000,
            completed=False,
            abandoned=True,
        )
    assert len(callbacks) == 1
    session.refresh_from_db()
    assert session.score_updated_at == T0 + timedelta(minutes=44)  # not rescored once ended
    sessions_touched(session_ids=[session.pk, 10**9])  # an unknown id is skipped
    assert ViewingSession.objects.get(pk=session.pk).score_history == session.score_history


def test_a_rolled_back_start_is_never_scored(db, django_capture_on_commit_callbacks):
    viewer, title = ViewerFactory(), TitleFactory()
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.viewing_session_start(
            viewer_id=viewer.pk, title_id=title.pk, device="ctv", started_at=T0
        )
        raise RuntimeError("the request failed after the start")
    assert callbacks == []
