"""The live engagement score against the prior alone, on held-out simulated sessions.

    python bench/live_score.py [--days 6] [--viewers 600] [--seed 13] [--world DIR]

Seeds the demo world, simulates `--days` days of viewing (the simulator of `demo`), and holds
out the sessions of the last day: the engagement model (the prior) and the live score are both
trained on the days before it (the nightly tasks' code, `window_end` at the held-out day's
start), so neither has seen a held-out session. Each held-out session is cut at the moments
of `CUT_MINUTES` while it was open, as in training, and scored by the live score and by the
prior alone: as served (the engagement model's probability of engaging) and recalibrated to
finishing (Platt scaling on the live score's calibration rows: the fair baseline). Prints AUC,
log loss, calibration ratio and ECE of each, the AUC at each cut, the AUC's sampling error,
and the time to score a session.

Runs on a throwaway SQLite file (or BENCH_DATABASE_URL); with --world DIR the simulated world
is kept in DIR and reused by later runs with the same options.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))


def machine_reference() -> str:
    """The machine, and the shared reference workloads (bench/_scratch.machine_reference)."""
    import platform

    from _scratch import cpu_model
    from _scratch import machine_reference as reference

    return (
        f"{os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}; {reference()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--viewers", type=int, default=600)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--world", type=Path, help="keep (and reuse) the simulated world here")
    options = parser.parse_args()
    scratch = tempfile.TemporaryDirectory()
    folder = Path(scratch.name)
    if options.world is not None:
        folder = options.world / f"d{options.days}-v{options.viewers}-s{options.seed}"
        folder.mkdir(parents=True, exist_ok=True)
    reuse = (folder / "end.txt").exists()
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", f"sqlite:///{folder}/live_score.sqlite3"
    )
    os.environ.pop("REDIS_URL", None)  # the bench owns its world
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

    import django

    django.setup()
    import datetime as dt

    from ctr_oracle import _cover_the_window, hanley_mcneil_sd
    from django.core.management import call_command
    from django.utils import timezone

    from engagement.learning import engagement_model_train
    from engagement.learning.live_training import (
        finished_sessions,
        live_score_model_train,
        prefix_rows,
        split_sessions,
    )
    from ml import metrics, serving
    from ml.models import ModelKind

    quiet = open(os.devnull, "w")  # noqa: SIM115 - closed with the scratch folder
    started = time.perf_counter()
    if reuse:
        end = dt.datetime.fromisoformat((folder / "end.txt").read_text().strip())
        print(f"world: reused {folder}")
    else:
        call_command("migrate", verbosity=0)
        call_command("seed_demo", viewers=3000, titles=300, no_progress=True, stdout=quiet)
        end = timezone.now().replace(microsecond=0, second=0, minute=0)
        _cover_the_window(end - dt.timedelta(days=options.days + 1), options.days)
        call_command(
            "simulate_traffic",
            days=options.days,
            viewers=options.viewers,
            seed=options.seed,
            end=end.isoformat(),
            no_progress=True,
            stdout=quiet,
        )
        (folder / "end.txt").write_text(end.isoformat())
        print(f"world: simulated {options.days} days in {time.perf_counter() - started:.0f} s")
    print(f"machine: {machine_reference()}")

    holdout_start = end - dt.timedelta(days=1)
    serving.champions.reset()
    engagement = engagement_model_train(window_end=holdout_start)
    print(
        f"engagement model (the prior): v{engagement.version} {engagement.status}, held-out AUC "
        f"{engagement.metrics['auc']:.4f} ({engagement.decision})"
    )
    serving.champions.reset()
    began = time.process_time()
    live = live_score_model_train(window_end=holdout_start)
    print(
        f"live score: v{live.version} {live.status} in {time.process_time() - began:.1f} s CPU, "
        f"{live.train_rows:,} rows ({live.metrics['sessions']:,} sessions); its own held-out "
        f"AUC {live.metrics['auc']:.4f} against the prior's {live.metrics['prior_auc']:.4f}"
    )
    serving.champions.reset()
    model = serving.champion(ModelKind.LIVE_ENGAGEMENT).model

    # The held-out day: sessions that started in it (and had time to end) and ended.
    sessions = finished_sessions(window_start=holdout_start, window_end=end)
    rows = prefix_rows(sessions)
    _, calibration_sessions, _ = split_sessions(
        finished_sessions(window_start=None, window_end=holdout_start)
    )
    calibration = prefix_rows(calibration_sessions)
    began = time.process_time()
    scores = model.predict(rows.x)
    per_row_ms = (time.process_time() - began) * 1000 / max(1, len(rows.y))
    from sklearn.linear_model import LogisticRegression

    platt = LogisticRegression(C=1e6).fit(calibration.x[:, :1], calibration.y)
    recalibrated = platt.predict_proba(rows.x[:, :1])[:, 1]

    positives = int(rows.y.sum())
    negatives = len(rows.y) - positives
    print(
        f"\nheld out: {len(sessions):,} sessions of the last day, {len(rows.y):,} rows "
        f"(cut at {sorted(set(rows.cut_minutes.tolist()))} minutes while open), "
        f"{rows.y.mean():.1%} of them in sessions that finished"
    )
    print(f"{'':28s} {'AUC':>7s} {'log loss':>9s} {'calib.':>7s} {'ECE':>7s}")
    for name, values in (
        ("live score", scores),
        ("prior alone, as served", rows.priors),
        ("prior alone, recalibrated", recalibrated),
    ):
        found = metrics.summary(rows.y, values)
        print(
            f"{name:28s} {found['auc']:7.4f} {found['log_loss']:9.4f} "
            f"{found['calibration_ratio']:7.3f} {found['ece']:7.4f}"
        )
    live_auc = metrics.auc(rows.y, scores)
    print(
        f"AUC sampling sd ≈ {hanley_mcneil_sd(live_auc, positives, negatives):.4f} per figure "
        "(rows, not sessions: rows of a session are correlated, so the true error is larger)"
    )
    print("\nAUC by cut (minutes after the start): live score / prior")
    for minutes in sorted(set(rows.cut_minutes.tolist())):
        mask = rows.cut_minutes == minutes
        if 0 < rows.y[mask].sum() < mask.sum():
            live_auc = metrics.auc(rows.y[mask], scores[mask])
            prior_auc = metrics.auc(rows.y[mask], rows.priors[mask])
            print(f"  {minutes:4d} min  {mask.sum():6,} rows  {live_auc:.4f} / {prior_auc:.4f}")
    print("\nreliability of the live score (equal-width bins)")
    for row in metrics.reliability_table(rows.y, scores):
        print(
            f"  {row['low']:.1f}–{row['high']:.1f}  {row['count']:6,} rows  predicted "
            f"{row['predicted']:.3f}  observed {row['observed']:.3f}"
        )
    print(f"\nscoring: {per_row_ms:.3f} ms CPU per session (in batches of {len(rows.y):,})")


if __name__ == "__main__":
    main()
