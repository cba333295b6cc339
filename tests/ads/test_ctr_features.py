"""The CTR model's features: the viewer's clock, out-of-fold history, the calibrators. The
serving rows that must equal the training rows, and what an artifact of an older layout does,
are tested in test_ctr_model.py, on its history (built once there)."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ads.learning import features, training
from ads.learning.features import (
    History,
    beta_strength,
    history_columns,
    viewer_clock,
    viewer_clocks,
)


def test_the_viewers_clock_is_the_one_of_the_requests_region():
    at = dt.datetime(2026, 11, 28, 3, 30, tzinfo=dt.UTC)  # a Saturday in UTC
    # 19:30 on Friday in Los Angeles, 03:30 on Saturday in London.
    assert viewer_clock("us_west", at) == ("primetime", 19.0, 0.0)
    assert viewer_clock("intl", at) == ("late_night", 3.0, 1.0)
    assert viewer_clock("us_northeast", at) == ("primetime", 22.0, 0.0)  # 22:30 in New York
    assert viewer_clock("unknown_region", at) == ("late_night", 3.0, 1.0)  # UTC


def test_a_windows_clocks_are_each_rows_own_across_a_change_of_summer_time():
    """Training works the clocks out once per region and quarter hour; each row must still
    get its own: every 7 minutes of two days around New York's and Chicago's change of
    2026-11-01, in every region (and one unknown), as pandas hands them over."""
    start = pd.Timestamp("2026-10-31 00:00", tz="UTC")
    times = [start + pd.Timedelta(minutes=7 * n) for n in range(2 * 24 * 60 // 7)]
    regions = ["us_northeast", "us_south", "us_west", "intl", "unknown_region"]
    rows = [(region, at) for at in times for region in regions]
    clocks = viewer_clocks([region for region, _ in rows], [at for _, at in rows])
    assert clocks == [viewer_clock(region, at) for region, at in rows]
    assert len(set(clocks)) >= 24  # every hour, on weekdays and at the weekend


def test_prior_strength_is_estimated_from_the_spread_of_the_rates():
    impressions = np.array([1000, 1000, 1000, 1000])
    # Rates 0.5 %, 1 %, 1.5 %, 2 % around 1.25 %: far more spread than binomial noise.
    clicks = np.array([5, 10, 15, 20])
    # By hand: prior 50 / 4000 = 0.0125; spread Σ n (rate − prior)² = 1000 × (2 × 0.0075² +
    # 2 × 0.0025²) = 0.125; binomial noise explains (4 − 1) × 0.0125 × 0.9875 = 0.03703125;
    # between-key variance (0.125 − 0.03703125) / (4000 − 4 × 1000² / 4000) = 2.9322917e-5;
    # strength 0.0125 × 0.9875 / 2.9322917e-5 − 1 = 419.959.
    assert beta_strength(impressions, clicks, 0.0125) == pytest.approx(419.959, abs=1e-3)
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


def test_history_and_fatigue_columns_are_checked_and_off_by_default():
    assert features.HISTORY == []
    assert features.FATIGUE_BY_DEFAULT is False
    plain = features.CtrFeatures(genres=["drama"])
    assert plain.columns == [*features.CATEGORICAL, *features.NUMERIC, "genre_drama"]
    tired = features.CtrFeatures(genres=["drama"], fatigue=True)
    assert tired.columns == [
        *features.CATEGORICAL,
        *features.NUMERIC,
        *features.FATIGUE,
        "genre_drama",
    ]
    with_history = features.CtrFeatures(genres=["drama"], history_columns=["viewer_lift"])
    assert with_history.columns[-2:] == ["viewer_lift", "genre_drama"]
    with pytest.raises(ValueError, match="viewer_ctr"):
        features.CtrFeatures(history_columns=["viewer_ctr"])


def test_platt_calibration_passes_through_the_rates_of_two_score_groups():
    # Two raw scores, 1,000 rows each: 0.1 clicked 5 % of the time, 0.2 clicked 10 %. Two
    # groups and two parameters: the fit passes through both rates, so by hand
    # slope = (logit 0.1 − logit 0.05) / (logit 0.2 − logit 0.1) = 0.92143 and
    # intercept = logit 0.05 − slope × logit 0.1 = −0.91985, and a raw 0.4 maps to
    # sigmoid(0.92143 × logit 0.4 − 0.91985) = 0.21527.
    raw = np.repeat([0.1, 0.2], 1000)
    labels = np.concatenate([np.arange(1000) < 50, np.arange(1000) < 100]).astype(int)
    platt = training.PlattCalibrator().fit(raw, labels)
    # Its fit is penalised a little (C = 10⁴, so ½ slope² / 10⁴ added to the loss): close to
    # the exact solution, not equal to it.
    assert (platt.slope, platt.intercept) == pytest.approx((0.92143, -0.91985), abs=0.01)
    assert platt.predict(np.array([0.1, 0.2, 0.4])) == pytest.approx(
        [0.05, 0.10, 0.21527], abs=1e-3
    )


def test_isotonic_calibration_pools_rates_that_run_backwards():
    # Ten rows at each raw score; click rates 20 %, 10 %, 50 %. The first two run backwards,
    # so they pool: 3 clicks in 20 rows = 0.15. Between the steps it interpolates (0.25 is
    # halfway from 0.15 to 0.5), outside them it holds the end values.
    raw = np.repeat([0.1, 0.2, 0.3], 10)
    labels = np.concatenate([np.arange(10) < 2, np.arange(10) < 1, np.arange(10) < 5]).astype(int)
    isotonic = training.IsotonicCalibrator().fit(raw, labels)
    assert isotonic.predict(np.array([0.05, 0.1, 0.2, 0.25, 0.3, 0.9])) == pytest.approx(
        [0.15, 0.15, 0.15, 0.325, 0.5, 0.5]
    )
