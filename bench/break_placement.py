"""Ad-break placement, checked against the simulator's truth: abandonment at breaks and ad
minutes before and after applying the recommendations.

    python bench/break_placement.py [--days 7] [--viewers 700] [--titles 40] [--seed 21]

1. Seeds a demo world (`--titles` titles, so each has sessions enough) and simulates `--days`
   days of viewing (the simulator of `demo`, whose truth makes a break in a title's lull, and a
   long pod, lose more viewers: demo/simulation/sessions.py).
2. Runs the nightly analysis (`engagement.services.break_placement_analyse`) on those days and
   applies every title's recommendations (`break_placement_apply`: moves and drops).
3. Forgets the delivery (sessions, ad events, counters) and simulates the same days again with
   the same seed: the same viewers pick the same titles at the same times.
4. Prints, before and after, over the titles analysed and over all: sessions, sessions that
   left at an ad break (per 100 sessions: at any break, and at a mid-roll, the breaks the
   analysis judges and moves; and per 100 mid-roll breaks played), ad impressions,
   ad minutes, title completion; and the goals (abandonment at breaks down ≥ 20 %, ad minutes
   kept ≥ 95 %). `--check-seed` adds the same before/after on another seed, which the analysis
   never saw.
5. Holds the analysis's claim to what happened: its expected change in leaving during a
   mid-roll's ads (per session, summed over the analysed titles) against the measured change
   and its 95 % interval, in each run; and the same per break, by what the recommendation did
   to it (kept, moved, dropped), counted the analysis's way (sessions that started at the
   beginning, the breaks where they are in that run). `--save FILE` keeps the analysed titles'
   sessions, breaks, the catalog line and these per-break counts (pickle), to study the
   expectation without simulating again.

Runs on a throwaway SQLite file (or BENCH_DATABASE_URL), counters in process memory.
"""

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

import _scratch  # noqa: E402  (beside this file)

MOVES_DOWN_GOAL = 0.20
AD_MINUTES_KEPT_GOAL = 0.95


def measure(title_ids: set[int] | None) -> dict:
    """The run's figures from the stored sessions, playback events and ad events."""
    from collections import defaultdict

    from django.db.models import Count, Sum

    from ads.models import AdEvent
    from engagement.models import PlaybackEvent, ViewingSession

    sessions = ViewingSession.objects.all()
    if title_ids is not None:
        sessions = sessions.filter(title_id__in=title_ids)
    ended = sessions.exclude(ended_at=None)
    left_at_break = left_at_mid_roll = 0
    breaks_played = mid_roll_pod_seconds = 0
    last: dict[int, tuple[str, int]] = {}
    mid_roll_leavers: set[int] = set()
    for session_id, kind, position, detail in (
        PlaybackEvent.objects.filter(session__in=sessions, kind__in=("ad_break", "abandon"))
        .order_by("session_id", "at", "id")
        .values_list("session_id", "kind", "position_seconds", "detail")
    ):
        if kind == "ad_break":
            if position > 0 and detail.get("ads"):
                breaks_played += 1
                mid_roll_pod_seconds += detail.get("pod_seconds") or 0
            last[session_id] = (kind, position)
        elif last.get(session_id) == ("ad_break", position):
            left_at_break += 1
            left_at_mid_roll += position > 0
            if position > 0:
                mid_roll_leavers.add(session_id)
    impressions = AdEvent.objects.filter(event_type="impression")
    if title_ids is not None:
        impressions = impressions.filter(title_id__in=title_ids)
    ad_seconds = impressions.aggregate(seconds=Sum("creative__duration_seconds"))["seconds"] or 0
    by_line_item = {
        row["line_item__name"]: (row["count"], row["seconds"])
        for row in impressions.values("line_item__name").annotate(
            count=Count("id"), seconds=Sum("creative__duration_seconds")
        )
    }
    count = ended.count()
    by_kind: dict[str, int] = defaultdict(int)
    by_kind["completed"] = ended.filter(completed=True).count()
    # Each ended session's left-at-a-mid-roll, keyed by who watched what when: the same key
    # in the run before and the one after (same seed) is the same viewing.
    left_by_viewing = {
        (viewer_id, title_id, started_at): session_id in mid_roll_leavers
        for session_id, viewer_id, title_id, started_at in ended.values_list(
            "pk", "viewer_id", "title_id", "started_at"
        )
    }
    return {
        "sessions": count,
        "left_by_viewing": left_by_viewing,
        "left_at_break": left_at_break,
        "per_100_sessions": 100 * left_at_break / max(1, count),
        "mid_roll_per_100_sessions": 100 * left_at_mid_roll / max(1, count),
        "per_100_breaks": 100 * left_at_mid_roll / max(1, breaks_played),
        "breaks_played": breaks_played,
        "seconds_per_mid_roll": mid_roll_pod_seconds / max(1, breaks_played),
        "impressions": impressions.count(),
        "ad_minutes": ad_seconds / 60,
        "by_line_item": by_line_item,
        "completion": by_kind["completed"] / max(1, count),
    }


def creative_mix_held(before: dict, after: dict) -> tuple[float, list[str]]:
    """The after run's ad minutes had each line item played its creatives in the before run's
    mix (its ad seconds per impression then), and the line items whose mix moved. A line item
    with creatives of several lengths serves the one its clicks so far rank first; a few early
    clicks decide which, and any change to the traffic (a moved break) reorders the clicks, so
    a whole line item can switch from its 30 s spot to its 15 s one between two runs. That is
    the ad server's ranking, not the breaks: this separates it from what the placement did."""
    held_seconds = 0.0
    moved = []
    for name, (count, seconds) in after["by_line_item"].items():
        count_before, seconds_before = before["by_line_item"].get(name, (0, 0))
        per_impression = seconds_before / count_before if count_before else seconds / count
        held_seconds += count * per_impression
        if count and abs(seconds / count - per_impression) >= 1:
            moved.append(
                f"{name}: {per_impression:.1f} → {seconds / count:.1f} s per impression "
                f"({count_before:,} → {count:,} impressions, "
                f"{(seconds - count * per_impression) / 60:+,.0f} ad min)"
            )
    return held_seconds / 60, moved


def change_interval(before: dict, after: dict, draws: int = 2000) -> tuple[float, float]:
    """The 95 % interval of the change in leaving at a mid-roll per 100 sessions, from a
    bootstrap over the viewings (paired: a viewing is drawn with both its runs, as the two runs
    share their seed). It is the figure's noise from which viewings happened to pass where:
    what another draw of the same traffic could have shown with the same breaks."""
    import numpy as np

    keys = sorted(set(before["left_by_viewing"]) | set(after["left_by_viewing"]))
    columns = []
    for figures in (before, after):
        by_viewing = figures["left_by_viewing"]
        columns.append([key in by_viewing for key in keys])
        columns.append([bool(by_viewing.get(key)) for key in keys])
    present_before, left_before, present_after, left_after = np.array(columns, dtype=float)
    weights = np.random.default_rng(0).multinomial(
        len(keys), np.full(len(keys), 1 / len(keys)), size=draws
    )
    rate_before = (weights @ left_before) / (weights @ present_before)
    rate_after = (weights @ left_after) / (weights @ present_after)
    changes = rate_after / rate_before - 1
    low, high = np.percentile(changes, [2.5, 97.5])
    return float(low), float(high)


def leavers_by_break(
    title_ids: set[int], start, end, renamed: dict[int, int] | None = None
) -> dict:
    """Each mid-roll's sessions that left while its ads played, where the break is now, counted
    as the analysis counts them (the sessions that started at the beginning and ended in the
    window, a leaver ending at the break's offset); how many such sessions there were; and
    whether each left at a mid-roll, by viewing (as `measure`'s, for the paired interval)."""
    from catalog.models import AdBreak
    from engagement.models import ViewingSession
    from engagement.placement import title_traces

    left: dict[int, int] = {}
    sessions = 0
    leavers: dict[int, bool] = {}
    for title_id in sorted(title_ids):
        traces = title_traces(title_id=title_id, start=start, end=end)
        sessions += len(traces)
        offsets = dict(
            AdBreak.objects.filter(title_id=title_id, offset_seconds__gt=0).values_list(
                "pk", "offset_seconds"
            )
        )
        for break_id, offset in offsets.items():
            left[(renamed or {}).get(break_id, break_id)] = sum(
                1 for t in traces if t.abandoned and t.end_seconds == offset
            )
        for t in traces:
            leavers[t.session_id] = t.abandoned and t.end_seconds in offsets.values()
    keys = {
        pk: (viewer_id, title_id, started_at)
        for pk, viewer_id, title_id, started_at in ViewingSession.objects.filter(
            pk__in=list(leavers)
        ).values_list("pk", "viewer_id", "title_id", "started_at")
    }
    return {
        "left": left,
        "sessions": sessions,
        "left_by_viewing": {keys[pk]: value for pk, value in leavers.items()},
    }


def claim_against_truth(
    label: str,
    claim: dict,
    before: dict,
    after: dict,
    counted_before: dict,
    counted_after: dict,
) -> tuple[float, float, float, float]:
    """Prints the analysis's expected change beside the measured one (the bench's figure, all
    sessions of the analysed titles, with its 95 % interval) and per kind of recommendation
    (the analysis's way of counting); returns (expected, measured, low, high)."""
    expected = claim["expected"] / claim["now"] - 1
    measured = after["mid_roll_per_100_sessions"] / before["mid_roll_per_100_sessions"] - 1
    low, high = change_interval(before, after)
    verdict = "inside" if low <= expected <= high else "OUTSIDE"
    print(
        f"  {label}: leaving during a mid-roll's ads per session, expected {expected:+.1%}, "
        f"measured {measured:+.1%} (95 % interval {low:+.1%} to {high:+.1%}): {verdict}"
    )
    left_before, sessions_before = counted_before["left"], counted_before["sessions"]
    left_after, sessions_after = counted_after["left"], counted_after["sessions"]
    # The analysis's own figure: the sessions it reads (from the beginning), the leavers it
    # counts (ending at a break's offset). The bench's figure above also counts sessions picked
    # up mid-title and leavers at a pod a seek snapped back to, which it never sees.
    own = (sum(left_after.values()) / max(1, sessions_after)) / (
        sum(left_before.values()) / max(1, sessions_before)
    ) - 1
    own_low, own_high = change_interval(counted_before, counted_after)
    own_verdict = "inside" if own_low <= expected <= own_high else "OUTSIDE"
    print(
        f"  {'':4s}counted as the analysis counts: measured {own:+.1%} (95 % interval "
        f"{own_low:+.1%} to {own_high:+.1%}): {own_verdict}"
    )
    print(
        f"  {'':4s}{'breaks':28s} {'left before':>11s} {'expected':>9s} {'left after':>10s} "
        f"(per 100 sessions; {sessions_before:,} → {sessions_after:,} sessions counted)"
    )
    groups = [
        (action, [i for i, kind in claim["actions"].items() if action in (kind, "all")])
        for action in ("keep", "move", "drop", "all")
    ]
    # The same by the truth (which the analysis never sees): a move out of a lull should meet
    # its expectation; one that stays in a lull, or goes into one, loses more than expected.
    groups += [
        (f"  {label}", [i for i, truth in claim["truth"].items() if truth == label])
        for label in sorted(set(claim["truth"].values()))
    ]
    for name, ids in groups:
        was = 100 * sum(left_before.get(i, 0) for i in ids) / max(1, sessions_before)
        hoped = 100 * sum(claim["expected_by_break"][i] for i in ids) / max(1, claim["sessions"])
        now = 100 * sum(left_after.get(i, 0) for i in ids) / max(1, sessions_after)
        print(f"  {'':4s}{name + f' ({len(ids)})':28s} {was:11.2f} {hoped:9.2f} {now:10.2f}")
    return expected, measured, low, high


def simulate(end, days: int, viewers: int, seed: int) -> float:
    began = time.perf_counter()
    _scratch.history_simulate(end=end, days=days, viewers=viewers, seed=seed)
    return time.perf_counter() - began


def table(rows: list[tuple[str, dict, dict]]) -> None:
    print(
        f"  {'':24s} {'sessions':>9s} {'left/100 s.':>11s} {'mid-roll':>9s} {'/100 br.':>9s} "
        f"{'impressions':>11s} {'ad min':>9s} {'completion':>10s}"
    )
    for name, before, after in rows:
        for label, figures in (("before", before), ("after", after)):
            print(
                f"  {name + ' ' + label:24s} {figures['sessions']:9,} "
                f"{figures['per_100_sessions']:11.2f} "
                f"{figures['mid_roll_per_100_sessions']:9.2f} {figures['per_100_breaks']:9.2f} "
                f"{figures['impressions']:11,} {figures['ad_minutes']:9,.0f} "
                f"{figures['completion']:10.1%}"
            )
        held, moved = creative_mix_held(before, after)
        print(
            f"  {name + ' change':24s} {'':9s} "
            f"{after['per_100_sessions'] / before['per_100_sessions'] - 1:+11.1%} "
            f"{after['mid_roll_per_100_sessions'] / before['mid_roll_per_100_sessions'] - 1:+9.1%} "
            f"{after['per_100_breaks'] / before['per_100_breaks'] - 1:+9.1%} "
            f"{after['impressions'] / before['impressions'] - 1:+11.1%} "
            f"{after['ad_minutes'] / before['ad_minutes'] - 1:+9.1%} "
            f"{after['completion'] - before['completion']:+10.1%}"
        )
        low, high = change_interval(before, after)
        print(
            f"  {'':24s} leaving at a mid-roll per 100 sessions: 95 % interval of the change "
            f"{low:+.1%} to {high:+.1%} (paired bootstrap over viewings)"
        )
        # Longer pods lose more viewers wherever they play: a line item switching to its
        # longer spot moves the abandonment figure as well as the ad minutes.
        print(
            f"  {'':24s} seconds a mid-roll pod held its viewers: "
            f"{before['seconds_per_mid_roll']:.1f} → {after['seconds_per_mid_roll']:.1f}"
        )
        print(
            f"  {'':24s} ad minutes with each line item's creatives in the before mix: "
            f"{held:,.0f} ({held / before['ad_minutes'] - 1:+.1%})"
        )
        for line in moved:
            print(f"  {'':26s}{line}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--viewers", type=int, default=700)
    parser.add_argument("--audience", type=int, default=3000, help="viewers in the world")
    parser.add_argument("--titles", type=int, default=40)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--check-seed", type=int, help="also before/after on this seed")
    parser.add_argument("--save", help="pickle the sessions, breaks and counts to this file")
    options = parser.parse_args()
    scratch = tempfile.TemporaryDirectory()
    started = time.perf_counter()
    end = _scratch.simulated_world_setup(
        scratch.name, "break_placement", audience=options.audience, titles=options.titles
    )
    import datetime as dt

    from catalog.models import AdBreak, Title
    from demo.simulation import World
    from demo.simulation.sessions import in_lull
    from engagement import services
    from engagement.models import BreakPlacement

    _scratch.live_campaigns_cover(end - dt.timedelta(days=options.days + 1), options.days * 2)
    print(f"machine: {_scratch.machine_line()}")
    print(_scratch.load_line())

    seconds = simulate(end, options.days, options.viewers, options.seed)
    print(f"before: {options.days} days simulated in {seconds:.0f} s (seed {options.seed})")
    day = (end + dt.timedelta(days=1)).date()
    analysed = services.break_placement_analyse(day=day, window_days=options.days + 2)
    placements = list(BreakPlacement.objects.filter(day=day).select_related("title"))
    if not placements:
        raise SystemExit(
            f"No title had enough sessions to analyse after {options.days} days of "
            f"{options.viewers} viewers: simulate more days or viewers, or fewer titles."
        )
    title_ids = {placement.title_id for placement in placements}
    before = {"analysed": measure(title_ids), "all": measure(None)}
    window_end = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
    window = (window_end - dt.timedelta(days=options.days + 2), window_end)
    counted = {"before": leavers_by_break(title_ids, *window)}
    # What the analysis claims, in sessions: leaving during a mid-roll's ads now and expected,
    # in all and per break, with what the recommendation does to each break.
    claim: dict = {"now": 0.0, "expected": 0.0, "sessions": 0, "actions": {}, "truth": {}}
    claim["expected_by_break"] = {}
    saved: dict = {"titles": {}, "placements": {}}
    if options.save:
        from engagement.placement import BreakSpot, title_traces

        for title in AdBreak.objects.values_list("title", flat=True).distinct():
            saved["titles"][title] = (
                title_traces(title_id=title, start=window[0], end=window[1]),
                [
                    BreakSpot(*row)
                    for row in AdBreak.objects.filter(title_id=title).values_list(
                        "pk", "offset_seconds", "max_pod_duration_seconds"
                    )
                ],
                Title.objects.get(pk=title).duration_seconds,
            )
    actions: dict[str, int] = {"move": 0, "drop": 0, "keep": 0}
    before_breaks: dict[int, list] = {}
    lulls: Counter = Counter()  # (was in a lull, is in one) of each move or drop, by the truth
    kept_in_lull = 0  # breaks kept where they were, in a lull (what the analysis missed)
    expected_before = expected_after = ad_before = ad_after = 0.0
    for placement in placements:
        analysis = placement.analysis
        for recommendation in analysis["recommendations"]:
            actions[recommendation["action"]] += 1
        saved["placements"][placement.title_id] = analysis
        claim["now"] += analysis["abandonment_at_breaks"] * analysis["sessions"]
        claim["expected"] += analysis["expected_abandonment_at_breaks"] * analysis["sessions"]
        claim["sessions"] += analysis["sessions"]
        for recommendation in analysis["recommendations"]:
            claim["actions"][recommendation["break_id"]] = recommendation["action"]
            claim["expected_by_break"][recommendation["break_id"]] = (
                recommendation["during_ads_after"] * analysis["sessions"]
            )
        expected_before += analysis["abandonment_at_breaks"] * analysis["sessions"]
        expected_after += analysis["expected_abandonment_at_breaks"] * analysis["sessions"]
        ad_before += analysis["ad_seconds_per_session"] * analysis["sessions"]
        ad_after += analysis["expected_ad_seconds_per_session"] * analysis["sessions"]
        services.break_placement_apply(placement=placement, break_ids=None, user=None)
        before_breaks[placement.title_id] = placement.changes.get().before
        profile = World.load(seed=options.seed).titles[placement.title_id]
        for recommendation in analysis["recommendations"]:
            was = in_lull(profile, recommendation["offset_seconds"])
            if recommendation["action"] == "keep":
                kept_in_lull += was
                truth = "kept in a lull" if was else "kept calm"
            else:
                now = recommendation["to_offset_seconds"]
                lulls[(was, now is not None and in_lull(profile, now))] += 1
                if now is None:
                    truth = "dropped in a lull" if was else "dropped calm"
                elif in_lull(profile, now):
                    truth = "moved within a lull" if was else "moved into a lull"
                else:
                    truth = "moved out of a lull" if was else "moved calm to calm"
            claim["truth"][recommendation["break_id"]] = truth
    print(
        f"analysis: {analysed} of {AdBreak.objects.values('title').distinct().count()} titles "
        f"had enough sessions; recommendations: {actions['move']} moves, {actions['drop']} "
        f"drops, {actions['keep']} kept; expected: leaving during a mid-roll's ads "
        f"{expected_after / max(expected_before, 1e-9) - 1:+.1%}, ad seconds "
        f"{ad_after / max(ad_before, 1e-9) - 1:+.1%}"
    )
    print(
        "  checked against the simulator's lulls: "
        f"{lulls[(True, False)]} out of a lull, {lulls[(False, True)]} into one, "
        f"{lulls[(True, True)]} within, {lulls[(False, False)]} neither; "
        f"{kept_in_lull} of the {actions['keep']} kept are in a lull"
    )
    _scratch.delivery_forget()
    seconds = simulate(end, options.days, options.viewers, options.seed)
    print(f"after: the same {options.days} days simulated again in {seconds:.0f} s")
    after = {"analysed": measure(title_ids), "all": measure(None)}
    counted["after"] = leavers_by_break(title_ids, *window)
    print("\nSame seed, before and after applying the recommendations")
    table(
        [
            ("analysed titles", before["analysed"], after["analysed"]),
            ("all titles", before["all"], after["all"]),
        ]
    )
    down = (
        1
        - after["analysed"]["mid_roll_per_100_sessions"]
        / before["analysed"]["mid_roll_per_100_sessions"]
    )
    down_all = 1 - after["analysed"]["per_100_sessions"] / before["analysed"]["per_100_sessions"]
    kept = after["analysed"]["ad_minutes"] / before["analysed"]["ad_minutes"]
    kept_held = (
        creative_mix_held(before["analysed"], after["analysed"])[0]
        / (before["analysed"]["ad_minutes"])
    )
    print("\nGoals (analysed titles, same seed)")
    print(
        f"  abandonment at mid-roll breaks down ≥ {MOVES_DOWN_GOAL:.0%}: {down:.1%}  "
        f"{'PASS' if down >= MOVES_DOWN_GOAL else 'MISS'}  (all breaks, the pre-roll's "
        f"unchanged leavers too: {down_all:.1%})"
    )
    print(
        f"  ad minutes kept ≥ {AD_MINUTES_KEPT_GOAL:.0%}: {kept:.1%}  "
        f"{'PASS' if kept >= AD_MINUTES_KEPT_GOAL else 'MISS'}  (each line item's creatives "
        f"in the before mix: {kept_held:.1%})"
    )
    print("\nThe analysis's expectation against what happened (analysed titles)")
    claim_against_truth(
        f"same seed ({options.seed})",
        claim,
        before["analysed"],
        after["analysed"],
        counted["before"],
        counted["after"],
    )

    if options.check_seed is not None:
        from catalog.services import BreakPosition, title_ad_breaks_set

        _scratch.delivery_forget()
        simulate(end, options.days, options.viewers, options.check_seed)
        check_after = measure(title_ids)
        counted["check_after"] = leavers_by_break(title_ids, *window)
        # Back to the breaks as they were (a dropped break comes back as a new one, counted
        # under its old id).
        renamed: dict[int, int] = {}
        for placement in placements:
            existing = set(placement.title.ad_breaks.values_list("pk", flat=True))
            title_ad_breaks_set(
                title=placement.title,
                breaks=[
                    BreakPosition(offset, max_pod, pk if pk in existing else None)
                    for pk, offset, max_pod in before_breaks[placement.title_id]
                ],
            )
            now_at = dict(placement.title.ad_breaks.values_list("offset_seconds", "pk"))
            for pk, offset, _ in before_breaks[placement.title_id]:
                renamed[now_at[offset]] = pk
        _scratch.delivery_forget()
        simulate(end, options.days, options.viewers, options.check_seed)
        check_before = measure(title_ids)
        counted["check_before"] = leavers_by_break(title_ids, *window, renamed)
        print(f"\nAnother seed ({options.check_seed}), which the analysis never saw")
        table([("analysed titles", check_before, check_after)])
        print(f"\nThe analysis's expectation (seed {options.seed}) on seed {options.check_seed}")
        claim_against_truth(
            f"another seed ({options.check_seed})",
            claim,
            check_before,
            check_after,
            counted["check_before"],
            counted["check_after"],
        )
    if options.save:
        import pickle

        saved |= {"claim": claim, "counted": counted, "title_ids": title_ids}
        Path(options.save).write_bytes(pickle.dumps(saved))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
