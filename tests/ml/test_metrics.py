"""Metrics against values computed by hand."""

import math

import numpy as np
import pytest

from ml import metrics

Y = [0, 0, 1, 1]
P = [0.1, 0.4, 0.35, 0.8]


def test_auc_counts_correctly_ordered_pairs():
    # Pairs (negative, positive): (0.1,0.35) ok, (0.1,0.8) ok, (0.4,0.35) wrong, (0.4,0.8) ok.
    assert metrics.auc(Y, P) == pytest.approx(3 / 4)


def test_auc_counts_ties_as_half():
    assert metrics.auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert metrics.auc([0, 0, 1], [0.2, 0.6, 0.6]) == pytest.approx((1 + 0.5) / 2)


def test_auc_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        metrics.auc([1, 1], [0.2, 0.3])


def test_log_loss_and_normalized_entropy():
    expected = -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    assert metrics.log_loss(Y, P) == pytest.approx(expected)
    assert metrics.entropy(0.5) == pytest.approx(math.log(2))
    assert metrics.normalized_entropy(Y, P) == pytest.approx(expected / math.log(2))


def test_calibration_ratio():
    assert metrics.calibration_ratio(Y, P) == pytest.approx((1.65 / 4) / 0.5)


def test_reliability_table_and_ece():
    table = metrics.reliability_table(Y, P, bins=2)
    assert table == [
        {
            "low": 0.0,
            "high": 0.5,
            "count": 3,
            "predicted": pytest.approx(0.85 / 3),
            "observed": pytest.approx(1 / 3),
        },
        {"low": 0.5, "high": 1.0, "count": 1, "predicted": 0.8, "observed": 1.0},
    ]
    expected = (3 * abs(0.85 / 3 - 1 / 3) + 1 * abs(0.8 - 1.0)) / 4
    assert metrics.expected_calibration_error(Y, P, bins=2) == pytest.approx(expected)


def test_psi_is_zero_for_the_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(0)
    reference = rng.beta(2, 50, 20_000)
    assert metrics.psi(reference, reference) == pytest.approx(0.0, abs=1e-9)
    assert metrics.psi(reference, rng.beta(2, 50, 20_000)) < 0.01
    shifted = metrics.psi(reference, rng.beta(4, 50, 20_000))
    assert shifted > 0.25
    assert metrics.psi_band(shifted) == "significant"
    assert [metrics.psi_band(v) for v in (0.05, 0.1, 0.2, 0.3)] == [
        "none",
        "moderate",
        "moderate",
        "significant",
    ]


def test_psi_by_hand_on_two_bins():
    # Reference split at its median 0.5: shares (0.5, 0.5); current: (0.25, 0.75).
    value = metrics.psi([0.2, 0.4, 0.6, 0.8], [0.1, 0.7, 0.9, 0.95], bins=2)
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert value == pytest.approx(expected)


def test_summary_holds_each_metrics_value():
    # Y, P by hand: log loss −(ln 0.9 + ln 0.6 + ln 0.35 + ln 0.8) / 4 = 0.472288; over the
    # base rate's entropy ln 2 = 0.681368; mean prediction 1.65 / 4 = 0.4125 over 0.5 = 0.825.
    # Ten bins of 0.1: each prediction alone in its bin, so ECE is the mean of |p − y|:
    # (0.1 + 0.4 + 0.65 + 0.2) / 4 = 0.3375. Predictions ≥ 0.5 are "engaged": 0.1, 0.4 and 0.8
    # are right, 0.35 is wrong.
    reliability = [
        {"low": 0.1, "high": 0.2, "count": 1, "predicted": 0.1, "observed": 0.0},
        {"low": 0.3, "high": 0.4, "count": 1, "predicted": 0.35, "observed": 1.0},
        {"low": 0.4, "high": 0.5, "count": 1, "predicted": 0.4, "observed": 0.0},
        {"low": 0.8, "high": 0.9, "count": 1, "predicted": 0.8, "observed": 1.0},
    ]
    assert metrics.summary(Y, P) == {
        "rows": 4,
        "base_rate": 0.5,
        "auc": pytest.approx(0.75),
        "log_loss": pytest.approx(0.472288, abs=1e-6),
        "normalized_entropy": pytest.approx(0.681368, abs=1e-6),
        "calibration_ratio": pytest.approx(0.825),
        "ece": pytest.approx(0.3375),
        "accuracy": pytest.approx(0.75),
        # The bin edges come from linspace (0.30000000000000004): approx on every row.
        "reliability": [pytest.approx(row) for row in reliability],
        # Four rows in ten groups: one row a group, highest prediction first; base rate 0.5.
        "lift": [
            {
                "group": 1,
                "count": 1,
                "predicted": 0.8,
                "observed": 1.0,
                "lift": 2.0,
                "captured": 0.5,
            },
            {
                "group": 2,
                "count": 1,
                "predicted": 0.4,
                "observed": 0.0,
                "lift": 0.0,
                "captured": 0.5,
            },
            {
                "group": 3,
                "count": 1,
                "predicted": 0.35,
                "observed": 1.0,
                "lift": 2.0,
                "captured": 1,
            },
            {"group": 4, "count": 1, "predicted": 0.1, "observed": 0.0, "lift": 0.0, "captured": 1},
        ],
    }


def test_lift_table_ranks_rows_and_compares_each_group_with_the_base_rate():
    # Ranked by prediction: 0.8 (y=1), 0.4 (y=0), 0.35 (y=1), 0.1 (y=0); base rate 0.5.
    assert metrics.lift_table(Y, P, groups=2) == [
        {
            "group": 1,
            "count": 2,
            "predicted": pytest.approx(0.6),
            "observed": 0.5,
            "lift": 1.0,
            "captured": 0.5,
        },
        {
            "group": 2,
            "count": 2,
            "predicted": pytest.approx(0.225),
            "observed": 0.5,
            "lift": 1.0,
            "captured": 1.0,
        },
    ]
    assert metrics.lift_table(Y, P, groups=4) == [
        {"group": 1, "count": 1, "predicted": 0.8, "observed": 1.0, "lift": 2.0, "captured": 0.5},
        {"group": 2, "count": 1, "predicted": 0.4, "observed": 0.0, "lift": 0.0, "captured": 0.5},
        {"group": 3, "count": 1, "predicted": 0.35, "observed": 1.0, "lift": 2.0, "captured": 1.0},
        {"group": 4, "count": 1, "predicted": 0.1, "observed": 0.0, "lift": 0.0, "captured": 1.0},
    ]


def test_lift_table_fills_every_group_when_predictions_are_all_small():
    # 1,000 rows at 0.5 %–1.5 %: equal-width bins would hold them all in one bin of ten.
    rng = np.random.default_rng(3)
    p = np.sort(rng.uniform(0.005, 0.015, 1000))
    y = np.zeros(1000)
    y[-30:] = 1  # the 30 highest predictions click: all in the top group
    table = metrics.lift_table(y, p)
    assert [row["count"] for row in table] == [100] * 10
    assert table[0]["observed"] == pytest.approx(0.3)
    assert table[0]["lift"] == pytest.approx(0.3 / 0.03)
    assert table[0]["captured"] == 1.0 and table[-1]["captured"] == 1.0
    assert len(metrics.reliability_table(y, p)) == 1
