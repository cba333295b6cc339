"""The ad load policies against each other in the simulator: title completion, ad
impressions and revenue for `none` (full pods), `shorter` (every pod cut) and `engagement`
(pods cut, or breaks skipped, for sessions whose live engagement score says they are at risk).

    python bench/ad_load.py [--seeds 31,32,33] [--days 2] [--viewers 500] [--titles 80]

1. Seeds a demo world and simulates `--train-days` days (seed 30) to train the engagement
   model (the prior) and the live engagement score on, as the nightly tasks do.
2. For each seed and each policy: forgets the delivery (sessions, ad events, counters) and
   simulates the same `--days` days with the same seed, every decision carrying the session's
   live score (HistoryOptions.engagement_scores), AD_LOAD_POLICY set to the policy.
3. Prints per policy the mean over seeds (and the spread across seeds) of title completion
   (of the sessions that started at least SETTLED before the end, the share that finished
   their title), the same over the sessions that started alike under every policy (a viewer's
   next session waits while one runs, so pods of another length change which sessions start,
   and when), impressions and revenue (ad spend; the impressions' (CPM) share apart: the
   clicks' share, a few dozen clicks a run, is what makes revenue noisy), and each against
   `none`; then how each policy's ads reached the sessions (ads and breaks that
   played ads per session, share of breaks left empty) and the goal: matched completion up
   ≥ 5 % (relative) at ≤ 2 % revenue lost.

In the demo's world the frequency caps (two to four ads a day per line item and viewer)
run out: under `none` a viewer's first breaks of the day take every ad the caps allow and
the later ones play nothing, which costs the viewer nothing. Halving pods then spreads
almost the same ads over more breaks, and every break that plays ads costs a chance of
leaving and more for each one before it (demo/simulation/sessions.py), so completion falls.
`--uncapped` lifts every line item's frequency caps, for the policies where pods do not run
dry.

Runs on a throwaway SQLite file (or BENCH_DATABASE_URL), counters in process memory.
"""

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

import _scratch  # noqa: E402  (beside this file)

COMPLETION_GOAL = 0.05
REVENUE_LOSS_GOAL = 0.02
TRAIN_SEED = 30
SETTLED = dt.timedelta(hours=6)  # longer than any title with its pauses and pods


def policies(at_risk_below: list[float]) -> list[tuple[str, dict]]:
    """(name, settings) of each policy run: none, shorter, and engagement at each threshold
    (pods halved below it), plus one that also skips the break below half of it."""
    runs = [("none", {"AD_LOAD_POLICY": "none"}), ("shorter", {"AD_LOAD_POLICY": "shorter"})]
    for threshold in at_risk_below:
        runs.append(
            (
                f"engagement <{threshold:g}",
                {"AD_LOAD_POLICY": "engagement", "AD_LOAD_AT_RISK_BELOW": threshold},
            )
        )
    threshold = at_risk_below[-1]
    runs.append(
        (
            f"engagement <{threshold:g}, skip <{threshold / 2:g}",
            {
                "AD_LOAD_POLICY": "engagement",
                "AD_LOAD_AT_RISK_BELOW": threshold,
                "AD_LOAD_SKIP_BELOW": threshold / 2,
            },
        )
    )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="31,32,33")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--train-days", type=int, default=6)
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--audience", type=int, default=3000, help="viewers in the world")
    parser.add_argument("--titles", type=int, default=80)
    parser.add_argument("--at-risk-below", default="0.3,0.45")
    parser.add_argument(
        "--uncapped", action="store_true", help="lift every line item's frequency caps"
    )
    options = parser.parse_args()
    seeds = [int(seed) for seed in options.seeds.split(",")]
    thresholds = [float(value) for value in options.at_risk_below.split(",")]
    scratch = tempfile.TemporaryDirectory()
    started = time.perf_counter()
    end = _scratch.simulated_world_setup(
        scratch.name, "ad_load", audience=options.audience, titles=options.titles
    )
    from django.conf import settings
    from django.db.models import Sum

    from ads.models import AdEvent, LineItem
    from engagement.learning import engagement_model_train
    from engagement.learning.live_training import live_score_model_train
    from engagement.models import PlaybackEvent, ViewingSession
    from ml import serving
    from ml.services import model_version_promote

    train_end = end - dt.timedelta(days=options.days)
    _scratch.live_campaigns_cover(
        train_end - dt.timedelta(days=options.train_days + 1), 4 * options.days
    )
    if options.uncapped:
        LineItem.objects.update(
            frequency_cap_hour=None, frequency_cap_day=None, frequency_cap_lifetime=None
        )
    print(f"machine: {_scratch.machine_line()}")
    print("frequency caps: " + ("lifted (--uncapped)" if options.uncapped else "as seeded"))
    print(_scratch.load_line())
    _scratch.history_simulate(
        end=train_end, days=options.train_days, viewers=options.viewers, seed=TRAIN_SEED
    )
    serving.champions.reset()
    prior = engagement_model_train(window_end=train_end)
    serving.champions.reset()
    live = live_score_model_train(window_end=train_end)
    # The bench measures the policy, not the promotion rule: a candidate that missed the
    # calibration band on these few days is promoted all the same.
    for version in (prior, live):
        if version.status != "champion":
            model_version_promote(model_version=version, reason="bench/ad_load.py")
    serving.champions.reset()
    print(
        f"trained on {options.train_days} days (seed {TRAIN_SEED}): engagement v{prior.version} "
        f"{prior.status}, live score v{live.version} {live.status} (held-out AUC "
        f"{live.metrics['auc']:.3f} against the prior's {live.metrics['prior_auc']:.3f})"
    )
    # The evaluation days start empty: the training sessions stay out of every figure.
    ViewingSession.objects.all().delete()
    AdEvent.objects.all().delete()

    runs = policies(thresholds)
    figures: dict[str, list[dict]] = {name: [] for name, _ in runs}
    original = {name: getattr(settings, name) for name in runs[-1][1] | runs[2][1]}
    for seed in seeds:
        for name, values in runs:
            _scratch.delivery_forget()
            for key, value in original.items():
                setattr(settings, key, value)
            for key, value in values.items():
                setattr(settings, key, value)
            result = _scratch.history_simulate(
                end=end,
                days=options.days,
                viewers=options.viewers,
                seed=seed,
                engagement_scores=True,
            )
            # Sessions that started at least SETTLED before the end have all ended: counting
            # only ended ones would favour short sessions (shorter pods end more of them).
            settled = ViewingSession.objects.filter(started_at__lt=end - SETTLED)
            spent = dict(
                AdEvent.objects.order_by()
                .values_list("event_type")
                .annotate(spent=Sum("cost_micros"))
            )
            pods = [
                detail.get("ads", 0)
                for detail in PlaybackEvent.objects.filter(
                    session__in=settled, kind="ad_break"
                ).values_list("detail", flat=True)
            ]
            figures[name].append(
                {
                    "sessions": settled.count(),
                    "ads_per_session": sum(pods) / max(1, settled.count()),
                    "filled_per_session": sum(1 for ads in pods if ads) / max(1, settled.count()),
                    "empty_share": sum(1 for ads in pods if not ads) / max(1, len(pods)),
                    "completion": settled.filter(completed=True).count() / max(1, settled.count()),
                    "impressions": result.impressions,
                    "revenue": sum(value or 0 for value in spent.values()) / 1e6,
                    "click_revenue": (spent.get("click") or 0) / 1e6,
                    "impression_revenue": (spent.get("impression") or 0) / 1e6,
                    # A viewer's next session waits while one runs, so pods of another length
                    # change which sessions start (and when): the matched completion below
                    # counts only the sessions every policy's run started at the same moment.
                    "outcomes": {
                        (viewer, title, started): completed
                        for viewer, title, started, completed in settled.values_list(
                            "viewer_id", "title_id", "started_at", "completed"
                        )
                    },
                }
            )
            print(
                f"  seed {seed} {name:28s} completion {figures[name][-1]['completion']:.2%} "
                f"of {figures[name][-1]['sessions']:,} sessions, impressions "
                f"{result.impressions:,}, revenue {figures[name][-1]['revenue']:,.0f} (clicks "
                f"{figures[name][-1]['click_revenue']:,.0f}); per session "
                f"{figures[name][-1]['ads_per_session']:.2f} ads in "
                f"{figures[name][-1]['filled_per_session']:.2f} breaks, "
                f"{figures[name][-1]['empty_share']:.0%} of breaks empty "
                f"({result.seconds:.0f} s)",
                flush=True,
            )
        same = set.intersection(*(set(figures[name][-1]["outcomes"]) for name, _ in runs))
        for name, _ in runs:
            outcomes = figures[name][-1].pop("outcomes")
            figures[name][-1]["matched"] = sum(outcomes[key] for key in same) / max(1, len(same))
        print(f"  seed {seed}: {len(same):,} sessions started alike under every policy", flush=True)
    for key, value in original.items():
        setattr(settings, key, value)

    def mean(name: str, key: str) -> float:
        return statistics.mean(run[key] for run in figures[name])

    def relative(name: str, key: str) -> list[float]:
        return [
            run[key] / base[key] - 1
            for run, base in zip(figures[name], figures["none"], strict=True)
        ]

    print(f"\nMean over seeds {seeds} ({options.days} days each); change against none per seed")
    print(
        f"  {'policy':30s} {'completion':>10s} {'Δ (rel.)':>16s} {'matched':>10s} "
        f"{'Δ (rel.)':>16s} {'impressions':>11s} {'Δ':>16s} {'revenue':>11s} {'Δ':>16s} "
        f"{'of it CPM':>11s} {'Δ':>16s}"
    )
    for name, _ in runs:
        cells = []
        for key in ("completion", "matched", "impressions", "revenue", "impression_revenue"):
            changes = relative(name, key)
            spread = f"{statistics.mean(changes):+.1%} ±{statistics.pstdev(changes):.1%}"
            value = mean(name, key)
            cells.append(
                (f"{value:10.2%}" if key in ("completion", "matched") else f"{value:11,.0f}")
                + f" {spread:>16s}"
            )
        print(f"  {name:30s} {' '.join(cells)}")
    print(
        "\nHow the ads reached the sessions (settled sessions, mean over seeds): ads and breaks "
        "that played ads per session, breaks left empty (frequency caps spent, kids' profiles, "
        "breaks the policy skipped)"
    )
    for name, _ in runs:
        print(
            f"  {name:30s} {mean(name, 'ads_per_session'):5.2f} ads in "
            f"{mean(name, 'filled_per_session'):4.2f} breaks, "
            f"{mean(name, 'empty_share'):4.0%} of breaks empty"
        )
    print(
        "\nGoal: completion (of the sessions started alike) up ≥ 5 % (relative) at ≤ 2 % "
        "revenue lost"
    )
    for name, _ in runs[1:]:
        up = statistics.mean(relative(name, "matched"))
        lost = -statistics.mean(relative(name, "revenue"))
        verdict = "PASS" if up >= COMPLETION_GOAL and lost <= REVENUE_LOSS_GOAL else "MISS"
        print(f"  {name:30s} completion {up:+.1%}, revenue lost {lost:.1%}  {verdict}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
