"""The CTR model's features: the viewer's clock, out-of-fold history, the serving rows that must
equal the training rows, the calibrators, and what an artifact of an older layout does."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from ads.decisioning.index import CreativeEntry
from ads.decisioning.scoring import ctr_champion
from ads.learning import features, training
from ads.learning.features import History, beta_strength, history_columns, viewer_clock
from ml.models import ModelVersion
from tests.ads.test_ctr_model import history  # noqa: F401 - the seed-4 history world


def test_the_viewers_clock_is_the_one_of_the_requests_region():
    at = dt.datetime(2026, 11, 28, 3, 30, tzinfo=dt.UTC)  # a Saturday in UTC
    # 19:30 on Friday in Los Angeles, 03:30 on Saturday in London.
    assert viewer_clock("us_west", at) == ("primetime", 19.0, 0.0)
    assert viewer_clock("intl", at) == ("late_night", 3.0, 1.0)
    assert viewer_clock("us_northeast", at) == ("primetime", 22.0, 0.0)  # 22:30 in New York
    assert viewer_clock("unknown_region", at) == ("late_night", 3.0, 1.0)  # UTC


def test_prior_strength_is_estimated_from_the_spread_of_the_rates():
    impressions = np.array([1000, 1000, 1000, 1000])
    # Rates 0.5 %, 1 %, 1.5 %, 2 % around 1.25 %: far more spread than binomial noise.
    clicks = np.array([5, 10, 15, 20])
    prior = clicks.sum() / impressions.sum()
    spread = (impressions * (clicks / impressions - prior) ** 2).sum()
    between = (spread - 3 * prior * (1 - prior)) / (4000 - 4 * 1000**2 / 4000)
    assert beta_strength(impressions, clicks, prior) == pytest.approx(
        prior * (1 - prior) / between - 1
    )
    assert 400 < beta_strength(impressions, clicks, prior) < 440  # about 420 impressions
    # Identical rates: no between-key variance, the prior wins (the upper bound).
    same = np.array([10, 10, 10, 10])
    assert beta_strength(impressions, same, 0.01) == features.MAX_STRENGTH


def _rows(viewers, labels, start=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)):
    return pd.DataFrame(
        {
            "occurred_at": [start + dt.timedelta(minutes=n) for n in range(len(viewers))],
            "viewer_id": viewers,
            "creative": 1,
            "line_item": 1,
            "advertiser": 1,
            "label": labels,
        }
    )


def test_a_training_rows_history_never_holds_its_own_click():
    # One viewer, eight impressions in four time blocks of two; clicks only in block 0.
    frame = _rows([7] * 8, [1, 1, 0, 0, 0, 0, 0, 0])
    fitted = History.fit(frame)
    fitted.strength["viewer"] = 10.0
    columns = history_columns(frame, fitted)
    prior = fitted.prior  # 2 / 8
    scale = 4 / 3  # the other three blocks stand for the whole window
    # Block 0's rows see the other blocks: six impressions, no click.
    no_click = (0 + 10 * prior) / (6 * scale + 10) / prior
    assert columns["viewer_lift"][:2] == pytest.approx([no_click, no_click])
    # Later blocks see block 0's two clicks among six impressions.
    with_clicks = (2 * scale + 10 * prior) / (6 * scale + 10) / prior
    assert columns["viewer_lift"][2:] == pytest.approx([with_clicks] * 6)
    assert columns["viewer_impressions"] == pytest.approx([np.log1p(8)] * 8)
    # Held-out rows and decisions see the window's totals: 2 clicks in 8.
    lift, count = fitted.lookup("viewer", [7, 99])
    assert lift == pytest.approx([(2 + 10 * prior) / (8 + 10) / prior, 1.0])
    assert count == pytest.approx([np.log1p(8), 0.0])


def test_history_columns_are_checked_and_off_by_default():
    assert features.HISTORY == []
    plain = features.CtrFeatures(genres=["drama"])
    assert plain.columns == [*features.CATEGORICAL, *features.NUMERIC, "genre_drama"]
    with_history = features.CtrFeatures(genres=["drama"], history_columns=["viewer_lift"])
    assert with_history.columns[-2:] == ["viewer_lift", "genre_drama"]
    with pytest.raises(ValueError, match="viewer_ctr"):
        features.CtrFeatures(history_columns=["viewer_ctr"])


def test_platt_and_isotonic_calibrators_apply_what_they_fitted():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.001, 0.2, 5000)
    labels = (rng.random(5000) < raw * 0.5).astype(int)
    platt = training.PlattCalibrator().fit(raw, labels)
    logit = np.log(raw / (1 - raw)).reshape(-1, 1)
    reference = LogisticRegression(C=1e4).fit(logit, labels).predict_proba(logit)[:, 1]
    assert platt.predict(raw) == pytest.approx(reference, rel=1e-6)
    # The raw scores are twice the truth: both calibrations halve them on average.
    assert platt.predict(raw).mean() == pytest.approx(labels.mean(), rel=0.02)
    isotonic = training.IsotonicCalibrator().fit(raw, labels)
    assert isotonic.predict(raw).mean() == pytest.approx(labels.mean(), rel=0.02)
    assert np.all(np.diff(isotonic.predict(np.sort(raw))) >= 0)


def _entry(creative_id, line_item_id, advertiser_id, category, duration):
    return CreativeEntry(
        creative_id, line_item_id, advertiser_id, "ad", duration, "https://m", "https://c", category
    )


@pytest.mark.django_db
def test_serving_rows_equal_the_training_encoding_of_the_same_impression(history):  # noqa: F811
    end, _ = history
    frame = training.training_frame(start=end - dt.timedelta(days=4), end=end)
    fit, calibrate, holdout = training.split_by_time(frame, end - dt.timedelta(days=1))
    history = ["viewer_lift", "viewer_impressions", "creative_lift", "line_item_impressions"]
    model = training.fit_models(fit, calibrate, history=history)[1]
    assert model.features.columns[-len(model.features.genres) - 4 :][:4] == history
    sample = holdout.iloc[[0, 100, 2000]].copy()
    sample["position"] = 1  # ranking happens before the pod is built
    expected = model.features.matrix(sample)
    for row, want in zip(sample.itertuples(), expected, strict=True):
        context = {
            "age_band": row.age_band,
            "gender": row.gender,
            "region": row.region,
            "device": row.device,
            "maturity": row.maturity,
            "year": row.year,
            "break_minutes": row.break_minutes,
            "is_preroll": row.is_preroll,
            "genres": row.genres,
        }
        creative = _entry(row.creative, row.line_item, row.advertiser, row.category, row.duration)
        unknown = _entry(10**9, 10**9, 10**9, "x", 15)
        got = model.serving.matrix(context, row.viewer_id, [creative, unknown], row.occurred_at)
        np.testing.assert_array_equal(got[0], want)
        # A creative the model never saw: its codes are unknown (NaN), the context is shared.
        columns = model.features.columns
        for name in ("creative", "advertiser", "category"):
            assert np.isnan(got[1, columns.index(name)])
        # ... and it has no history: the prior's lift (1) and no impressions.
        assert got[1, columns.index("creative_lift")] == 1.0
        assert got[1, columns.index("line_item_impressions")] == 0.0
        assert got[1, columns.index("viewer_lift")] == want[columns.index("viewer_lift")]
    # The viewer's history is the training window's: the viewer who clicked most often there
    # is lifted above a stranger (1.0), the one who clicked least is below.
    rates = pd.concat([fit, calibrate]).groupby("viewer_id")["label"].mean()
    ids = [rates.idxmax(), 10**9, rates.idxmin()]
    lifts = model.features.history.lookup("viewer", ids)[0]
    assert lifts[0] > 1.0 == lifts[1] > lifts[2]
    # A creative edited in place (same id, new duration) is not served its old columns.
    row = sample.iloc[0]
    first = _entry(row.creative, row.line_item, row.advertiser, row.category, 15)
    edited = _entry(row.creative, row.line_item, row.advertiser, row.category, 60)
    context = {name: row[name] for name in ("age_band", "gender", "region", "device")}
    context |= {name: row[name] for name in ("maturity", "year", "break_minutes", "is_preroll")}
    context["genres"] = row.genres
    got = model.serving.matrix(context, row.viewer_id, [first, edited], row.occurred_at)
    assert got[:, model.features.columns.index("duration")].tolist() == [15.0, 60.0]


@pytest.mark.django_db
def test_a_champion_of_an_older_layout_is_not_served_and_not_compared(history):  # noqa: F811
    end, _ = history
    training.ctr_models_register(window_end=end, window_days=4)
    current = ctr_champion()
    assert current is not None
    current.model.format_version = 1  # as unpickled from an artifact made before layout 2
    assert ctr_champion() is None  # the engine keeps its Beta posteriors
    assert training.ctr_drift_measure(day=(end - dt.timedelta(days=1)).date()) is None
    old = ModelVersion.objects.get(status="champion")
    versions = training.ctr_models_register(window_end=end, window_days=4)
    # Without a comparable champion, the calibrated baseline is promoted on calibration alone
    # (then the trees must beat it as usual).
    assert versions[0].decision == "The first model of its kind, calibrated."
    assert versions[0].challenged == old
    assert ModelVersion.objects.get(status="champion") in versions
