"""Evaluation metrics for probabilistic classifiers, in plain numpy.

All take `y` (0/1 labels) and `p` (predicted probabilities) as array-likes.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-15


def _arrays(y, p) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype=float)
    p_arr = np.asarray(p, dtype=float)
    if y_arr.shape != p_arr.shape or y_arr.ndim != 1 or len(y_arr) == 0:
        raise ValueError("y and p must be non-empty 1-d arrays of the same length.")
    return y_arr, p_arr


def auc(y, p) -> float:
    """Area under the ROC curve: the probability that a random positive outranks a random
    negative (ties count half), from average ranks (Mann–Whitney U)."""
    y_arr, p_arr = _arrays(y, p)
    positives = int(y_arr.sum())
    negatives = len(y_arr) - positives
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs both classes.")
    order = np.argsort(p_arr, kind="mergesort")
    sorted_p = p_arr[order]
    ranks = np.empty(len(p_arr))
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_p, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    rank_sum = ranks[y_arr == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def log_loss(y, p) -> float:
    y_arr, p_arr = _arrays(y, p)
    p_arr = np.clip(p_arr, EPSILON, 1 - EPSILON)
    return float(-np.mean(y_arr * np.log(p_arr) + (1 - y_arr) * np.log(1 - p_arr)))


def entropy(base_rate: float) -> float:
    base_rate = min(max(base_rate, EPSILON), 1 - EPSILON)
    return float(-(base_rate * np.log(base_rate) + (1 - base_rate) * np.log(1 - base_rate)))


def normalized_entropy(y, p) -> float:
    """Log loss divided by the entropy of the base rate: below 1 means better than always
    predicting the average."""
    y_arr, _ = _arrays(y, p)
    return log_loss(y, p) / entropy(float(y_arr.mean()))


def calibration_ratio(y, p) -> float:
    """Mean prediction over the observed rate: 1.0 is calibrated on average."""
    y_arr, p_arr = _arrays(y, p)
    observed = y_arr.mean()
    if observed == 0:
        raise ValueError("The calibration ratio needs at least one positive.")
    return float(p_arr.mean() / observed)


def reliability_table(y, p, bins: int = 10) -> list[dict[str, float]]:
    """Equal-width bins of the prediction: count, mean prediction and observed rate of each
    non-empty bin."""
    y_arr, p_arr = _arrays(y, p)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p_arr, edges[1:-1], right=False), 0, bins - 1)
    table = []
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        if count:
            table.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "count": count,
                    "predicted": float(p_arr[mask].mean()),
                    "observed": float(y_arr[mask].mean()),
                }
            )
    return table


def lift_table(y, p, groups: int = 10) -> list[dict[str, float]]:
    """The rows ranked by prediction (highest first, ties in their given order) and cut into
    `groups` groups of equal size (sizes differ by one at most): each group's count, mean
    prediction and observed rate, its lift (observed rate over the overall rate) and the share
    of all positives found down to it. Unlike equal-width bins, every group holds rows even
    when all predictions are near 1 %, so a rare-event model's ranking and calibration show."""
    y_arr, p_arr = _arrays(y, p)
    overall, positives = float(y_arr.mean()), float(y_arr.sum())
    order = np.argsort(-p_arr, kind="stable")
    table, found = [], 0.0
    for number, rows in enumerate(np.array_split(order, groups), start=1):
        if not len(rows):
            continue
        observed = float(y_arr[rows].mean())
        found += float(y_arr[rows].sum())
        table.append(
            {
                "group": number,
                "count": len(rows),
                "predicted": float(p_arr[rows].mean()),
                "observed": observed,
                "lift": observed / overall if overall else 0.0,
                "captured": found / positives if positives else 0.0,
            }
        )
    return table


def expected_calibration_error(y, p, bins: int = 10) -> float:
    """The count-weighted mean gap between prediction and observation over the bins."""
    y_arr, _ = _arrays(y, p)
    table = reliability_table(y, p, bins)
    return float(
        sum(row["count"] * abs(row["predicted"] - row["observed"]) for row in table) / len(y_arr)
    )


def psi(expected, actual, bins: int = 10) -> float:
    """Population stability index of a score between a reference sample (`expected`, e.g. the
    training window) and a new one (`actual`, e.g. the last day), over the reference's
    deciles. Conventional reading: < 0.1 no shift, 0.1–0.25 moderate, > 0.25 significant."""
    reference = np.asarray(expected, dtype=float)
    current = np.asarray(actual, dtype=float)
    if len(reference) == 0 or len(current) == 0:
        raise ValueError("PSI needs two non-empty samples.")
    inner_edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected_share = np.bincount(
        np.searchsorted(inner_edges, reference, side="right"), minlength=len(inner_edges) + 1
    ) / len(reference)
    actual_share = np.bincount(
        np.searchsorted(inner_edges, current, side="right"), minlength=len(inner_edges) + 1
    ) / len(current)
    expected_share = np.clip(expected_share, 1e-4, None)
    actual_share = np.clip(actual_share, 1e-4, None)
    return float(np.sum((actual_share - expected_share) * np.log(actual_share / expected_share)))


def psi_band(value: float) -> str:
    if value < 0.1:
        return "none"
    if value <= 0.25:
        return "moderate"
    return "significant"


def summary(y, p) -> dict:
    """Every metric of a held-out evaluation, for ModelVersion.metrics."""
    y_arr, p_arr = _arrays(y, p)
    return {
        "rows": len(y_arr),
        "base_rate": float(y_arr.mean()),
        "auc": auc(y_arr, p_arr),
        "log_loss": log_loss(y_arr, p_arr),
        "normalized_entropy": normalized_entropy(y_arr, p_arr),
        "calibration_ratio": calibration_ratio(y_arr, p_arr),
        "ece": expected_calibration_error(y_arr, p_arr),
        "accuracy": float(((p_arr >= 0.5) == (y_arr == 1)).mean()),
        "reliability": reliability_table(y_arr, p_arr),
        "lift": lift_table(y_arr, p_arr),
    }
