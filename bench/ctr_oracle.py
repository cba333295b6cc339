"""The CTR model against the truth: simulate traffic whose true click probabilities are known
(the simulator's --truth-out), train on it, and score the held-out last day three ways: the
oracle (the true probabilities), the champion candidate (LightGBM + calibration) and the
baseline (one-hot logistic regression). Also times pCTR scoring of 100 candidates.

    python bench/ctr_oracle.py [--days 4] [--viewers 3000] [--seed 11]

Runs on a throwaway SQLite file (or BENCH_DATABASE_URL). Goals (issue 4): AUC within 0.005 of
the oracle, calibration ratio 1.00 ± 0.05, scoring ≤ 1 ms for 100 candidates.
"""

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--viewers", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=11)
    options = parser.parse_args()
    scratch = tempfile.TemporaryDirectory()
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", f"sqlite:///{scratch.name}/oracle.sqlite3"
    )
    os.environ.pop("REDIS_URL", None)  # counters in process: the bench owns its world
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

    import django

    django.setup()
    import datetime as dt

    import numpy as np
    from django.core.management import call_command
    from django.utils import timezone

    from ads.decisioning.engine import DecisionRequest, _resolve
    from ads.decisioning.index import current_index
    from ads.learning import training
    from ads.learning.scoring import predict_ctr
    from ml import metrics

    quiet = open(os.devnull, "w")  # noqa: SIM115 - closed with the scratch folder
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    call_command("seed_demo", viewers=5000, titles=400, no_progress=True, stdout=quiet)
    end = timezone.now().replace(microsecond=0)
    truth_path = Path(scratch.name) / "truth.csv"
    call_command(
        "simulate_traffic",
        days=options.days,
        viewers=options.viewers,
        seed=options.seed,
        end=end.isoformat(),
        truth_out=truth_path,
        no_progress=True,
        stdout=quiet,
    )
    print(f"world: simulated {options.days} days in {time.perf_counter() - started:.0f} s")

    frame = training.training_frame(start=end - dt.timedelta(days=options.days), end=end)
    fit, calibrate, holdout = training.split_by_time(frame, end - dt.timedelta(days=1))
    truth = {}
    with truth_path.open() as file:
        for row in csv.DictReader(file):
            truth[(row["decision_id"].replace("-", ""), int(row["creative_id"]))] = float(
                row["p_click"]
            )
    oracle = np.array(
        [
            truth[(d.hex, c)]
            for d, c in zip(holdout["decision_id"], holdout["creative"], strict=True)
        ]
    )
    y = holdout["label"].to_numpy()
    training_clicks = int(fit["label"].sum() + calibrate["label"].sum())
    print(
        f"rows: {len(fit) + len(calibrate):,} training ({training_clicks:,} clicks), "
        f"{len(holdout):,} held out ({int(y.sum()):,} clicks, CTR {y.mean():.3%})"
    )
    fitted = time.perf_counter()
    baseline, trees = training.fit_models(fit, calibrate)
    print(f"training: {time.perf_counter() - fitted:.1f} s")

    rows = [("oracle (true p)", oracle)] + [
        (model.algorithm, model.predict_frame(holdout)) for model in (trees, baseline)
    ]
    oracle_auc = metrics.auc(y, oracle)
    print(
        f"\n{'held-out day':38s} {'AUC':>7s} {'gap':>7s} {'log loss':>9s} {'NE':>6s} {'calib':>6s}"
    )
    for name, scores in rows:
        auc = metrics.auc(y, scores)
        entropy = metrics.normalized_entropy(y, scores)
        print(
            f"{name:38s} {auc:7.4f} {auc - oracle_auc:+7.4f} {metrics.log_loss(y, scores):9.5f} "
            f"{entropy:6.3f} {metrics.calibration_ratio(y, scores):6.3f}"
        )
    tree_scores = rows[1][1]
    gap = oracle_auc - metrics.auc(y, tree_scores)
    ratio = metrics.calibration_ratio(y, tree_scores)
    print(f"goal AUC within 0.005 of the oracle: {'PASS' if gap <= 0.005 else 'MISS'} ({gap:.4f})")
    verdict = "PASS" if abs(ratio - 1) <= 0.05 else "MISS"
    print(f"goal calibration ratio 1.00 ± 0.05:  {verdict} ({ratio:.3f})")

    # Scoring cost inside a decision: 100 candidate creatives, one batched call.
    index = current_index()
    creatives = list(index.creatives.values())
    creatives = (creatives * (100 // len(creatives) + 1))[:100]
    viewer = next(iter(index.viewers.values()))
    ad_break = next(iter(index.breaks.values()))
    context = _resolve(
        index,
        DecisionRequest(
            viewer_id=viewer.external_id,
            title_id=ad_break.title_id,
            ad_break_id=ad_break.id,
            device="ctv",
        ),
        end,
    )
    timings = []
    for _ in range(2_000):
        began = time.perf_counter()
        predict_ctr(trees, index, context, creatives, end)
        timings.append((time.perf_counter() - began) * 1000)
    timings.sort()
    p50, p99 = statistics.median(timings), timings[int(len(timings) * 0.99)]
    print(
        f"pCTR of 100 candidates: p50 {p50:.3f} ms, p99 {p99:.3f} ms "
        f"({'PASS' if p99 <= 1 else 'MISS'} ≤ 1 ms)"
    )
    scratch.cleanup()


if __name__ == "__main__":
    main()
