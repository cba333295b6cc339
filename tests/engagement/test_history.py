"""The engagement model's running history features: a row sees only the events known strictly
before its moment, and serving reads the same tallies from the database as training computes
from the rows."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from engagement.learning import (
    FeatureConfig,
    data,
    engagement_model_train,
    engagement_predict,
    history,
)
from engagement.models import Rating, ViewingSession
from ml import serving
from tests.factories import TitleFactory, ViewerFactory

START = datetime(2026, 5, 1, tzinfo=UTC)


def _events(count: int = 2000, seed: int = 3) -> pd.DataFrame:
    """Events of 15 viewers and 25 titles, at whole seconds (many share a moment), each known
    0–40 s after it happened (a session is known when it ends)."""
    rng = np.random.default_rng(seed)
    at = rng.integers(0, 600, count).astype(float)
    return pd.DataFrame(
        {
            "viewer": rng.integers(1, 16, count),
            "title": rng.integers(1, 26, count),
            "label": rng.integers(0, 2, count),
            "at": at,
            "known_at": at + rng.integers(0, 41, count),
        }
    )


def _brute_force(row: pd.Series, events: pd.DataFrame) -> dict[str, float]:
    before = events[events["known_at"] < row["at"]]
    viewer = before[before["viewer"] == row["viewer"]].sort_values("known_at", kind="stable")
    title = before[before["title"] == row["title"]]
    return {
        "viewer_seen": len(viewer),
        "viewer_engaged": viewer["label"].sum(),
        "viewer_last_known": viewer["known_at"].max() if len(viewer) else np.nan,
        "title_seen": len(title),
        "title_engaged": title["label"].sum(),
    }


def test_a_rows_tallies_count_the_events_known_strictly_before_it():
    events = _events()
    rows = events.sample(300, random_state=1)

    tallies = history.history_tallies(rows, events)

    for index, row in rows.iterrows():
        expected = _brute_force(row, events)
        found = tallies.loc[index]
        for column, value in expected.items():
            assert found[column] == pytest.approx(value, nan_ok=True), (index, column)


def test_the_recent_tally_counts_the_viewers_latest_events():
    # One viewer, distinct moments: the latest RECENT_EVENTS known before each row.
    count = 3 * history.RECENT_EVENTS
    rng = np.random.default_rng(5)
    events = pd.DataFrame(
        {
            "viewer": 1,
            "title": np.arange(count),
            "label": rng.integers(0, 2, count),
            "at": np.arange(count, dtype=float) * 10,
        }
    )
    tallies = history.history_tallies(events, events)
    labels = events["label"].to_numpy()
    for position in range(count):
        latest = labels[max(0, position - history.RECENT_EVENTS) : position]
        assert tallies["viewer_recent_engaged"].iloc[position] == latest.sum()
        assert tallies["viewer_seen"].iloc[position] == position


def test_a_rows_features_ignore_its_own_and_later_events():
    """Every event scored as a row of the history it belongs to (as training does): flipping
    the labels of a row's own event and of every event not known before it changes none of
    its features; flipping one known before it does (so the check can fail)."""
    events = _events()
    config = FeatureConfig()
    features = history.history_columns(
        history.with_history(events, events), base_rate=0.5, config=config
    )
    rng = np.random.default_rng(2)
    for position in rng.choice(len(events), 40, replace=False):
        moment = events["at"].iloc[position]
        unknown = np.array(events["known_at"] >= moment)
        unknown[position] = True
        flipped = events.assign(label=np.where(unknown, 1 - events["label"], events["label"]))
        again = history.history_columns(
            history.with_history(flipped, flipped), base_rate=0.5, config=config
        )
        assert np.array_equal(again[position], features[position])

    # The control: a row whose viewer had a known event; flipping that event moves the rate.
    rows = history.with_history(events, events)
    position = int(np.flatnonzero(rows["viewer_seen"].to_numpy() > 0)[0])
    viewer, moment = events["viewer"].iloc[position], events["at"].iloc[position]
    earlier = np.flatnonzero(
        (events["viewer"] == viewer).to_numpy() & (events["known_at"] < moment).to_numpy()
    )[0]
    flipped = events.copy()
    flipped.loc[flipped.index[earlier], "label"] = 1 - flipped["label"].iloc[earlier]
    again = history.history_columns(
        history.with_history(flipped, flipped), base_rate=0.5, config=config
    )
    assert again[position, 0] != features[position, 0]


def test_a_session_counts_once_it_has_ended():
    events = pd.DataFrame(
        {"viewer": [1], "title": [1], "label": [1], "at": [100.0], "known_at": [200.0]}
    )
    rows = pd.DataFrame({"viewer": [1, 1, 1], "title": [2, 2, 2], "at": [150.0, 200.0, 201.0]})

    tallies = history.history_tallies(rows, events)

    assert tallies["viewer_seen"].tolist() == [0, 0, 1]
    assert tallies["viewer_engaged"].tolist() == [0, 0, 1]


def test_the_rows_must_carry_their_tallies():
    with pytest.raises(ValueError, match="history tallies"):
        history.history_columns(
            pd.DataFrame({"viewer": [1], "title": [1], "at": [0.0]}),
            base_rate=0.5,
            config=FeatureConfig(),
        )


# -- serving against training, on the database


def _stored_history(viewers, titles, moment: datetime) -> None:
    """Ratings and finished sessions of these viewers and titles before and after `moment`,
    more than RECENT_EVENTS for the first viewer, one rating exactly at `moment` (not known
    before it) and one session that started before it but ends after it."""
    rng = np.random.default_rng(9)
    ratings, sessions = [], []

    def when() -> datetime:
        return moment + timedelta(seconds=float(rng.uniform(-30 * 86400, 86400)))

    for viewer in viewers:  # a rating at most once per viewer and title
        for title in titles[1:]:
            if rng.random() < 0.7:
                rating = int(rng.integers(1, 6))
                ratings.append(Rating(viewer=viewer, title=title, rating=rating, rated_at=when()))
    for number in range(60):
        viewer = viewers[number % len(viewers)]
        title = titles[int(rng.integers(0, len(titles)))]
        started = when()
        finished = bool(rng.random() < 0.5)
        watched = title.duration_seconds if finished else title.duration_seconds // 3
        sessions.append(
            ViewingSession(
                viewer=viewer,
                title=title,
                device=viewer.device,
                started_at=started,
                ended_at=started + timedelta(seconds=watched),
                watched_seconds=watched,
                completed=finished,
                abandoned=not finished,
            )
        )
    ratings.append(Rating(viewer=viewers[0], title=titles[0], rating=5, rated_at=moment))
    sessions.append(
        ViewingSession(
            viewer=viewers[0],
            title=titles[1],
            device=viewers[0].device,
            started_at=moment - timedelta(minutes=10),
            ended_at=moment + timedelta(minutes=50),
            watched_seconds=3600,
            completed=True,
        )
    )
    Rating.objects.bulk_create(ratings)
    ViewingSession.objects.bulk_create(sessions)


def _training_rows(viewer, titles, moment: datetime) -> pd.DataFrame:
    """Rows of (viewer, each title) at `moment`, with the tallies training gives them: from
    every stored interaction, whatever came after."""
    rows = pd.DataFrame(
        {"viewer": viewer.pk, "title": [title.pk for title in titles], "at": moment}
    )
    later = moment + timedelta(days=400)
    return history.with_history(rows, data.interaction_rows(window_start=None, window_end=later))


@pytest.mark.django_db
def test_serving_reads_the_tallies_training_computes(django_assert_max_num_queries):
    viewers = [ViewerFactory() for _ in range(3)]
    titles = [TitleFactory() for _ in range(40)]
    moment = START + timedelta(days=40)
    _stored_history(viewers, titles, moment)
    title_ids = [title.pk for title in titles]

    for viewer in viewers:
        trained = _training_rows(viewer, titles, moment)
        with django_assert_max_num_queries(2):
            served = data.served_history_tallies(
                viewer_id=viewer.pk, title_ids=title_ids, at=moment
            )
        for column in history.TALLY_COLUMNS:
            assert served[column].to_numpy() == pytest.approx(
                trained[column].to_numpy(), nan_ok=True
            ), (viewer.pk, column)
    first = _training_rows(viewers[0], titles, moment)
    assert first["viewer_seen"].iloc[0] > history.RECENT_EVENTS
    assert first["title_seen"].sum() > 0


@pytest.mark.django_db
def test_the_champion_serves_a_viewer_as_training_scores_them():
    """A champion trained with the running history: `engagement_predict` at a moment gives
    the probabilities the model gives the rows training builds for that moment."""
    serving.champions.reset()
    viewers = [ViewerFactory() for _ in range(80)]
    titles = [TitleFactory() for _ in range(25)]
    rng = np.random.default_rng(4)
    taste = {viewer.pk: rng.normal(0, 1.5) for viewer in viewers}
    Rating.objects.bulk_create(
        Rating(
            viewer=viewer,
            title=title,
            rating=5 if rng.random() < 1 / (1 + np.exp(-taste[viewer.pk])) else 2,
            rated_at=START + timedelta(seconds=float(rng.uniform(0, 30 * 86400))),
        )
        for viewer in viewers
        for title in titles
    )
    version = engagement_model_train(window_end=START + timedelta(days=31))
    assert "viewer_running_rate" in version.feature_spec["features"]
    model = serving.champions.get(version.kind).model  # type: ignore[union-attr]
    moment = START + timedelta(days=20)

    for viewer in viewers[:3]:
        served = engagement_predict(viewer=viewer, titles=titles, at=moment)
        rows = _training_rows(viewer, titles, moment)
        expected = model.predict(rows, data.all_viewers_frame(), data.all_titles_frame())
        assert list(served.values()) == pytest.approx(list(expected), abs=1e-12)
    serving.champions.reset()
