"""Drop-off and ad-break placement per title, from its finished sessions: the analysis
(`analyse`, pure), the nightly run that stores it (`break_placement_analyse`, one
BreakPlacement per title and day) and applying its recommendations (`break_placement_apply`).
Other apps reach these through `engagement.services` and `engagement.selectors`.

1. The retention curve: for each minute m of the title, the share of sessions (those that
   started at the beginning and ended) still watching at m, i.e. that ended at or after m.
2. Each break's abandonment: of the sessions that reached the break, the share that ended in
   the AFTER_BREAK_SECONDS from its offset ("at and just after" it), against the baseline: the
   curve's own per-minute drop-off (hazard) around the break, minutes with a break excluded.
   The difference is what the break costs beyond what the content loses anyway.
3. The content's drop-off at each minute (viewers who stopped over those watching, break minutes
   bridged by their neighbours' rate, over SMOOTH_MINUTES either side) with its sampling error
   (Poisson: √stops / watching). Viewers leave at an ad most where the story already loses
   them, so a break is recommended to move to the minute within MOVE_WINDOW_MINUTES whose
   drop-off's upper bound is lowest, when one of two witnesses says its spot is bad beyond
   noise: the content there loses HIGH_DROPOFF times the title's median minute or more, at
   most MOVE_IF_BELOW as much at the destination, and more than there by CONFIDENCE_Z standard
   errors of the difference; or the break itself loses more viewers during its pod than its
   sessions would lose at an ordinary spot (the catalog's PodRisk: their pods' length and the
   breaks they sat through before, pooled over every title analysed), by CATALOG_CONFIDENCE_Z
   standard errors (Poisson), and the destination loses at most HIGH_DROPOFF times the median
   minute; or both witnesses lean that way and their standard errors together (Stouffer's sum
   over √2: the break's own minute is bridged out of the content's drop-off, so the two are
   nearly independent) clear it, to a destination no worse than that and calmer than here.
   Without a catalog line (fewer than MIN_RISK_BREAKS played mid-rolls), the break's witness
   is its abandonment against the title's other mid-rolls (their median rate, binomial), held
   to CONFIDENCE_Z. Destinations are at least MIN_MOVE_MINUTES away: a shorter move stays in
   the stretch it leaves. Without the bound, half the moves on titles with 100–300 sessions
   chased noise between calm minutes.
   A moved break is expected to lose, at or just after its new place, what the content
   loses there plus what an ordinary break loses during a pod like its own (the catalog's
   PodRisk at its calm level; without one, the title's other mid-rolls' median).
4. A break that cannot move is recommended to go when the ad seconds it costs (the viewers it
   drives away, times the ads they would have seen at the later breaks) exceed the ad seconds
   it plays. Moving comes first: a moved break keeps its pod and sheds most of what it cost,
   where a dropped one gives up its pod for good.

Every recommendation carries its expected change in abandonment at breaks and in ad seconds
per session that starts the title. The title's figure is the sessions that leave while a
mid-roll's ads play, per session: now, and expected with the recommendations (a kept break
keeps its share, a moved one loses the ordinary share of the sessions that reach its new
place, a dropped one none, and the viewers they no longer lose go on to the breaks after).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from dataclasses import asdict, dataclass

import numpy as np
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from catalog.models import AdBreak, Title
from catalog.services import BreakPosition, title_ad_breaks_set
from engagement.models import AdBreakChange, BreakPlacement, PlaybackEvent, ViewingSession

AFTER_BREAK_SECONDS = 60
BASELINE_MINUTES = 10  # the curve's hazard either side of a break, for its baseline
SMOOTH_MINUTES = 1  # lulls are minutes long: a wider window blurs where they end
MOVE_WINDOW_MINUTES = 8
MOVE_IF_BELOW = 0.5  # move when the content's drop-off there is at most half the break's
# ...and only a break in a stretch that loses viewers markedly faster than the title's median
# minute: elsewhere the minute-to-minute differences are mostly noise, and chasing them moves
# breaks for nothing.
HIGH_DROPOFF = 1.5
# How sure a move must be: its gain (the drop-off here above the destination's) must exceed
# CONFIDENCE_Z standard errors of that difference (one-sided, about 95 %).
CONFIDENCE_Z = 1.64
# The break's own witness against the catalog's ordinary spot (PodRisk), alone or with the
# content's, is held to one-sided 90 %: a break wrongly judged bad moves between two ordinary
# minutes, which costs next to nothing, while one wrongly judged ordinary goes on losing its
# viewers. Against the title's other mid-rolls (no catalog line), whose median is itself a
# noisy reference of two or three breaks, it stays at CONFIDENCE_Z.
CATALOG_CONFIDENCE_Z = 1.28
# Step 3's other witnesses: the break's own abandonment, and both witnesses together.
BREAK_EVIDENCE = True
COMBINED_EVIDENCE = True
# A move of a few minutes stays in the stretch it leaves: lulls last minutes, and late in a
# title the content's few stops cannot say where one ends. Checked offline against the
# simulator's lulls on seeds 22 to 24 (the recommender never sees them): four minutes took one
# break more out of its lull than three, and moved none into one; five moved two into one.
MIN_MOVE_MINUTES = 4
MIN_GAP_MINUTES = 5  # between two breaks, after moves
NO_BREAK_BEFORE_END_MINUTES = 10  # as catalog's ad_break_plan
MIN_SESSIONS = 50  # below this a title is not analysed
WINDOW_DAYS = 14  # the nightly analysis reads the sessions of the last two weeks
# The catalog's pod risk (PodRisk) needs this many played mid-rolls, and a break this many
# expected leavers, to stand for what an ordinary break loses.
MIN_RISK_BREAKS = 10
MIN_EXPECTED_LEFT = 2.0


@dataclass(frozen=True)
class SessionTrace:
    """What the analysis needs of one finished session that started at the beginning."""

    end_seconds: int  # where in the title it ended (the duration when completed)
    abandoned: bool
    pods: dict[int, int]  # ad break id → seconds of ads it played there
    session_id: int = 0  # the ViewingSession's (bench/break_placement.py pairs runs by it)


@dataclass(frozen=True)
class BreakSpot:
    id: int
    offset_seconds: int
    max_pod_duration_seconds: int


@dataclass
class BreakFigures:
    id: int
    offset_seconds: int
    reached: int  # sessions that reached it
    left: int  # of those, ended at or just after it
    abandonment: float  # left / reached
    baseline: float  # the curve's drop-off over as long a span elsewhere nearby
    excess: float  # abandonment − baseline
    pod_seconds: float  # ads played there per session that reached it
    content_dropoff: float  # the smoothed content hazard at its minute
    left_during_ads: int = 0  # of `left`, those who left while its ads played


@dataclass
class Recommendation:
    break_id: int
    action: str  # keep | move | drop
    offset_seconds: int
    to_offset_seconds: int | None
    abandonment_before: float
    # Expected: leaving at or just after the break where it will be (none where it goes: the
    # content's own drop-off there), of the sessions that reach it, as `abandonment_before`.
    abandonment_after: float
    ad_seconds_change: float  # expected, per session that started the title
    reason: str
    # Sessions that leave while its ads play, per session that started the title: now, and
    # expected (the title's `abandonment_at_breaks` sums them).
    during_ads_before: float = 0.0
    during_ads_after: float = 0.0


@dataclass
class Analysis:
    sessions: int
    duration_seconds: int
    curve: list[float]  # share still watching at each minute, from minute 0
    content_dropoff: list[float]  # smoothed per-minute hazard, break minutes bridged
    breaks: list[BreakFigures]
    recommendations: list[Recommendation]
    # Sessions that left while a mid-roll's ads played, per session that started: what a break
    # costs (the content's own drop-off in the minute after it is not the break's doing), the
    # figure bench/break_placement.py measures in the simulator.
    abandonment_at_breaks: float
    expected_abandonment_at_breaks: float  # the same expected after the recommendations
    ad_seconds_per_session: float
    expected_ad_seconds_per_session: float

    def as_json(self) -> dict:
        return asdict(self)


def _still_watching(traces: list[SessionTrace], duration_seconds: int) -> list[int]:
    """For each whole minute m of the title, the sessions that ended at m or later."""
    minutes = duration_seconds // 60
    counts = [0] * (minutes + 2)
    for trace in traces:
        counts[min(trace.end_seconds // 60, minutes + 1)] += 1
    still, running = [0] * (minutes + 1), 0
    for minute in range(minutes + 1, -1, -1):
        running += counts[minute]
        if minute <= minutes:
            still[minute] = running
    return still


def retention_curve(traces: list[SessionTrace], duration_seconds: int) -> list[float]:
    """The share of sessions still watching at each whole minute (minute 0 is 1.0)."""
    total = len(traces)
    return [
        round(value / total, 5) if total else 0.0
        for value in _still_watching(traces, duration_seconds)
    ]


def _hazards(curve: list[float]) -> list[float]:
    """The drop-off in each minute: the share of those watching at m who stop before m + 1."""
    return [
        (curve[m] - curve[m + 1]) / curve[m] if curve[m] > 0 else 0.0 for m in range(len(curve) - 1)
    ]


@dataclass(frozen=True)
class ContentDropoff:
    """The content's own drop-off at each minute, with its sampling error: viewers who stopped
    over those at risk in the minutes around it (SMOOTH_MINUTES either side), the minutes
    with a break bridged by their neighbours' rate."""

    rate: list[float]
    error: list[float]  # the rate's standard error (Poisson: √stops / at risk)

    def upper(self, minute: int) -> float:
        return self.rate[minute] + CONFIDENCE_Z * self.error[minute]


def _content_dropoff(still: list[int], break_minutes: set[int]) -> ContentDropoff:
    minutes = len(still) - 1
    stops = [float(still[m] - still[m + 1]) for m in range(minutes)]
    at_risk = [float(still[m]) for m in range(minutes)]
    for minute in sorted(break_minutes):
        if 0 <= minute < minutes:
            around = [
                m
                for m in (minute - 2, minute - 1, minute + 1, minute + 2)
                if 0 <= m < minutes and m not in break_minutes
            ]
            neighbours_at_risk = sum(at_risk[m] for m in around)
            if neighbours_at_risk > 0:
                stops[minute] = at_risk[minute] * sum(stops[m] for m in around) / neighbours_at_risk
    rate, error = [], []
    for minute in range(minutes):
        window = range(max(0, minute - SMOOTH_MINUTES), min(minutes, minute + SMOOTH_MINUTES + 1))
        watching = sum(at_risk[m] for m in window)
        stopped = sum(stops[m] for m in window)
        rate.append(stopped / watching if watching else 0.0)
        # At least one stop's worth of error: a window where nobody stopped is not known to
        # lose nobody.
        error.append(math.sqrt(max(stopped, 1.0)) / watching if watching else 1.0)
    return ContentDropoff(rate, error)


def _above_the_others(item: BreakFigures, others: list[BreakFigures]) -> float:
    """How many standard errors of the difference (binomial) the break's abandonment lies
    above the title's other mid-rolls' (0 without others). The others' median rate is the
    reference: one other break in a bad spot would lift a pooled rate."""
    others = [other for other in others if other.reached]
    if not others or not item.reached:
        return 0.0
    reference = statistics.median(other.left / other.reached for other in others)
    reached = statistics.median(other.reached for other in others)
    error = math.sqrt(max(reference * (1 - reference), 1e-6) * (1 / item.reached + 1 / reached))
    return (item.left / item.reached - reference) / error


@dataclass(frozen=True)
class PodRisk:
    """The chance that a viewer leaves during a pod anywhere in the catalog, by what differs
    from pod to pod whatever the spot: the breaks with ads the session sat through before it
    and the pod's length (a least-squares line over every played mid-roll of the titles
    fitted), and `calm`, the median break's leavers over that line's expectation: what a break
    in an ordinary spot loses. A break's own leavers are then weighed against what its
    sessions, with their pods and their breaks before, would lose at an ordinary spot: pooled
    over the catalog, where a title's two or three other mid-rolls are too few to say what
    ordinary is (and may sit in slow stretches themselves), and fair to a break whose pods run
    long or that comes late, where every spot loses more."""

    base: float
    per_break_before: float
    per_pod_second: float
    calm: float

    def chance(self, breaks_before: int, pod_seconds: float) -> float:
        fitted = self.base + self.per_break_before * breaks_before
        return max(fitted + self.per_pod_second * pod_seconds, 1e-4)


@dataclass(frozen=True)
class _PodRow:
    """A session that played ads at a mid-roll: the breaks with ads it sat through before,
    the pod's seconds, and whether it left during the pod."""

    breaks_before: int
    pod_seconds: float
    left: bool


def _pod_rows(traces: list[SessionTrace], breaks: list[BreakSpot]) -> dict[int, list[_PodRow]]:
    """Each mid-roll's sessions that played ads there. A viewer who leaves during a pod
    records only the seconds it held them, so a leaver is given the pod its break's stayers
    saw: its length is what the viewer faced, not what they sat through."""
    offsets = {spot.id: spot.offset_seconds for spot in breaks}
    rows = {}
    for spot in breaks:
        if spot.offset_seconds <= 0:
            continue
        played = [t for t in traces if t.pods.get(spot.id, 0) > 0]
        stayed = [t.pods[spot.id] for t in played if not _left_at(t, spot.offset_seconds)]
        full_pod = sum(stayed) / len(stayed) if stayed else 0.0
        rows[spot.id] = [
            _PodRow(
                breaks_before=sum(
                    1
                    for other, seconds in t.pods.items()
                    if seconds > 0 and offsets.get(other, spot.offset_seconds) < spot.offset_seconds
                ),
                pod_seconds=full_pod if left else float(t.pods[spot.id]),
                left=left,
            )
            for t in played
            for left in (_left_at(t, spot.offset_seconds),)
        ]
    return rows


def _left_at(trace: SessionTrace, offset_seconds: int) -> bool:
    """The session ended during the pod at `offset_seconds` (the player stays at the break's
    position while its ads play)."""
    return trace.abandoned and trace.end_seconds == offset_seconds


def pod_risk_fit(titles: list[tuple[list[SessionTrace], list[BreakSpot]]]) -> PodRisk | None:
    """The catalog's PodRisk from each title's traces and breaks (None: fewer than
    MIN_RISK_BREAKS played mid-rolls, too few to say what an ordinary one loses)."""
    per_break = [
        rows for traces, breaks in titles for rows in _pod_rows(traces, breaks).values() if rows
    ]
    if len(per_break) < MIN_RISK_BREAKS:
        return None
    every = [row for rows in per_break for row in rows]
    design = np.array([(1.0, row.breaks_before, row.pod_seconds) for row in every])
    left = np.array([float(row.left) for row in every])
    base, per_break_before, per_pod_second = np.linalg.lstsq(design, left, rcond=None)[0]
    line = PodRisk(float(base), float(per_break_before), float(per_pod_second), calm=1.0)
    ratios = [
        sum(row.left for row in rows) / expected
        for rows in per_break
        if (expected := _expected_left(line, rows)) >= MIN_EXPECTED_LEFT
    ]
    # The ordinary spot is the median of the breaks it is taken over: as many as the line
    # needs, or one bad break could be it; one that loses nobody leaves no break to weigh.
    calm = statistics.median(ratios) if len(ratios) >= MIN_RISK_BREAKS else 0.0
    if calm <= 0:
        return None
    return PodRisk(line.base, line.per_break_before, line.per_pod_second, calm)


def _expected_left(risk: PodRisk, rows: list[_PodRow]) -> float:
    """The leavers the line expects of these sessions."""
    return sum(risk.chance(row.breaks_before, row.pod_seconds) for row in rows)


def _beyond_calm(risk: PodRisk, rows: list[_PodRow]) -> float:
    """How many standard errors (Poisson) the break's leavers lie above what its sessions
    would lose at an ordinary spot (0 when none played ads there)."""
    expected = risk.calm * _expected_left(risk, rows)
    if expected <= 0:
        return 0.0
    return (sum(row.left for row in rows) - expected) / math.sqrt(expected)


def _pod_witness(risk: PodRisk, rows: list[_PodRow]) -> str:
    """The break's own witness, for the recommendation's reason."""
    expected = risk.calm * _expected_left(risk, rows)
    left = sum(row.left for row in rows)
    return (
        f"; {left} of the {len(rows)} who played its ads left during them, where an ordinary "
        f"spot would lose {expected:.1f} of them"
    )


def _calm_during_ads(risk: PodRisk, rows: list[_PodRow], reached: int) -> float:
    """The share of the break's `reached` sessions that an ordinary spot would lose during its
    ads: the catalog's calm level for the sessions that played them, with their pods and the
    breaks they sat through before."""
    return risk.calm * _expected_left(risk, rows) / reached if reached else 0.0


def _others_during_ads(item: BreakFigures, figures: list[BreakFigures]) -> float:
    """Without a catalog line: the share the title's other mid-rolls lose during their ads
    (their median), or the break's own without others."""
    rates = [f.left_during_ads / f.reached for f in figures if f is not item and f.reached]
    if rates:
        return statistics.median(rates)
    return item.left_during_ads / item.reached if item.reached else 0.0


def _expected_during_ads(
    traces: list[SessionTrace],
    figures: list[BreakFigures],
    plan: dict[int, tuple[int, float]],
) -> dict[int, float]:
    """Each break's expected leavers during its ads once `plan` (its place, and the share of
    the sessions reaching it there that leave during its ads) is applied. In the order of the
    places:

    1. The sessions reaching a break's place: those that watched that far now, and the viewers
       that the breaks before it no longer lose (fewer leaving there than now), as many of them
       still watching here as of those who watch now from there to here (a break moved
       later counts its own former leavers so).
    2. Its expected leavers: that many sessions at its share (more than now at a kept break
       behind a moved or dropped one: the viewers saved there sit through its ads too. In the
       simulator the kept breaks lost 0.8 to 1.2 more per 100 sessions in three of four runs,
       where this expects 0.4: the viewers saved are the restless ones, quicker to leave).
    3. What it no longer loses (its leavers now less those expected; negative when it loses
       more) flows on to the breaks after it."""

    def watching(seconds: int) -> int:
        return sum(1 for t in traces if t.end_seconds >= seconds)

    # Where viewers were saved (a break's offset now), its leavers now, how many were saved.
    saved: list[tuple[int, int, float]] = []
    expected: dict[int, float] = {}
    for item in sorted(figures, key=lambda f: plan[f.id][0]):
        place, share = plan[item.id]
        there = watching(place)
        reaching = float(there)
        for origin, left_there, viewers in [
            *saved,
            (item.offset_seconds, item.left_during_ads, float(item.left_during_ads)),
        ]:
            sat_through = watching(origin) - left_there
            if origin < place and sat_through > 0:
                reaching += viewers * min(1.0, there / sat_through)
        expected[item.id] = share * reaching
        saved.append(
            (item.offset_seconds, item.left_during_ads, item.left_during_ads - expected[item.id])
        )
    return expected


def analyse(
    traces: list[SessionTrace],
    breaks: list[BreakSpot],
    duration_seconds: int,
    risk: PodRisk | None = None,
) -> Analysis | None:
    """The title's curve, its breaks' figures and the recommendations (None: too few
    sessions). Only mid-rolls are judged: nothing comes before a pre-roll to compare with.
    With the catalog's `risk`, a break's own witness is its leavers against what an ordinary
    spot would lose of its sessions; without, against the title's other mid-rolls."""
    if len(traces) < MIN_SESSIONS:
        return None
    total = len(traces)
    still = _still_watching(traces, duration_seconds)
    curve = [round(value / total, 5) for value in still]
    hazards = _hazards(curve)
    mid_rolls = sorted((b for b in breaks if b.offset_seconds > 0), key=lambda b: b.offset_seconds)
    break_minutes = {b.offset_seconds // 60 for b in mid_rolls}
    dropoff = _content_dropoff(still, break_minutes)
    content = dropoff.rate

    figures: list[BreakFigures] = []
    for spot in mid_rolls:
        minute = spot.offset_seconds // 60
        reached = [t for t in traces if t.end_seconds >= spot.offset_seconds]
        left = sum(
            1
            for t in reached
            if t.abandoned and t.end_seconds < spot.offset_seconds + AFTER_BREAK_SECONDS
        )
        around = [
            hazards[m]
            for m in range(minute - BASELINE_MINUTES, minute + BASELINE_MINUTES + 1)
            if 0 <= m < len(hazards) and m not in break_minutes
        ]
        baseline = sum(around) / len(around) if around else 0.0
        abandonment = left / len(reached) if reached else 0.0
        left_during_ads = sum(1 for t in reached if _left_at(t, spot.offset_seconds))
        figures.append(
            BreakFigures(
                id=spot.id,
                offset_seconds=spot.offset_seconds,
                reached=len(reached),
                left=left,
                abandonment=round(abandonment, 5),
                baseline=round(baseline, 5),
                excess=round(abandonment - baseline, 5),
                pod_seconds=round(sum(t.pods.get(spot.id, 0) for t in reached) / len(reached), 2)
                if reached
                else 0.0,
                content_dropoff=round(content[minute] if minute < len(content) else 0.0, 5),
                left_during_ads=left_during_ads,
            )
        )

    def reach(seconds: int) -> float:
        return curve[min(seconds // 60, len(curve) - 1)]

    pod_rows = _pod_rows(traces, breaks)
    recommendations: list[Recommendation] = []
    # Each break's place after the recommendations and the share of the sessions reaching it
    # there expected to leave during its ads.
    plan: dict[int, tuple[int, float]] = {}
    typical = statistics.median(content) if content else 0.0
    taken = [b.offset_seconds // 60 for b in mid_rolls]
    last_minute = duration_seconds // 60 - NO_BREAK_BEFORE_END_MINUTES
    for number, item in enumerate(figures):
        minute = item.offset_seconds // 60
        later = figures[number + 1 :]
        # Ad seconds a session that stays past this break goes on to see, per session here.
        later_ad_seconds = sum(
            other.pod_seconds * other.reached / item.reached for other in later if item.reached
        )
        share_here = reach(item.offset_seconds)
        cost = max(item.excess, 0.0) * later_ad_seconds
        others = [m for n, m in enumerate(taken) if n != number]
        candidates = [
            m
            for m in range(minute - MOVE_WINDOW_MINUTES, minute + MOVE_WINDOW_MINUTES + 1)
            if 1 <= m <= last_minute
            and m < len(content)
            and abs(m - minute) >= MIN_MOVE_MINUTES
            and all(abs(m - other) >= MIN_GAP_MINUTES for other in others)
        ]
        # The destination judged pessimistically (its drop-off's upper bound), so that a
        # minute that merely looks calm by chance, among the dozen looked at, is not preferred.
        best = min(candidates, key=lambda m: (dropoff.upper(m), abs(m - minute)), default=minute)
        here = content[minute] if minute < len(content) else 0.0
        # The move's gain must exceed its noise: the content's drop-off here above the
        # destination's by more than CONFIDENCE_Z standard errors of the difference.
        noise = (
            math.hypot(dropoff.error[minute], dropoff.error[best])
            if minute < len(content)
            else math.inf
        )
        # The content's witness, in standard errors of the difference: its drop-off here
        # above the destination's.
        content_z = (here - content[best]) / noise if math.isfinite(noise) else 0.0
        steep_here = (
            here >= HIGH_DROPOFF * typical
            and content[best] <= MOVE_IF_BELOW * here
            and content_z > CONFIDENCE_Z
        )
        # The break's own abandonment is the other witness: well above the title's other
        # mid-rolls (by more than its noise) says the spot is bad, and the destination need
        # only look calmer than here and no worse than the title's usual minute.
        if risk is not None:
            break_z = _beyond_calm(risk, pod_rows[item.id])
            sure = CATALOG_CONFIDENCE_Z
        else:
            break_z = _above_the_others(item, [f for f in figures if f is not item])
            sure = CONFIDENCE_Z
        calm_there = content[best] <= HIGH_DROPOFF * typical
        lost_here = BREAK_EVIDENCE and break_z > sure and calm_there
        # The content leaning bad, and neither witness sure alone but the two together: they
        # are nearly independent (the break's own minute is bridged out of the content's
        # drop-off), so their sum over √2 is again a standard normal under "no worse than
        # elsewhere" (Stouffer), held to the same z (a break witness below zero asks more of
        # the content's).
        together = (
            COMBINED_EVIDENCE
            and calm_there
            and content[best] < here
            and (content_z + break_z) / math.sqrt(2) > sure
        )
        if (
            best != minute
            and item.excess > 0
            and ((here > 0 and steep_here) or lost_here or together)
        ):
            # There it loses what an ordinary break loses during a pod like its own (the
            # catalog's calm level, or the title's other mid-rolls'), on top of what the
            # content loses there anyway. Not less: a calm minute of content keeps the viewers
            # who would stop watching, not those who leave at ads (an earlier version took the
            # content's ratio of the two minutes for the break's too, and expected a moved
            # break to lose next to nothing; the simulator measured half the gain it claimed).
            if risk is not None:
                during_ads = _calm_during_ads(risk, pod_rows[item.id], item.reached)
            else:
                during_ads = _others_during_ads(item, figures)
            after = content[best] + during_ads
            saved = item.abandonment - after
            to_offset = best * 60
            plan[item.id] = (to_offset, during_ads)
            change = item.pod_seconds * (reach(to_offset) - share_here) + (
                share_here * saved * later_ad_seconds
            )
            recommendations.append(
                Recommendation(
                    break_id=item.id,
                    action="move",
                    offset_seconds=item.offset_seconds,
                    to_offset_seconds=to_offset,
                    abandonment_before=item.abandonment,
                    abandonment_after=round(after, 5),
                    ad_seconds_change=round(change, 2),
                    reason=(
                        f"The content loses {here:.2%} of viewers a minute here and "
                        f"{content[best]:.2%} at minute {best} (± {noise:.2%})"
                        + (_pod_witness(risk, pod_rows[item.id]) if risk is not None else "")
                        + f": a break there should lose {after:.1%} instead of "
                        f"{item.abandonment:.1%}."
                    ),
                )
            )
            taken[number] = best
        elif later and cost > item.pod_seconds:
            # No calmer place near: the break goes when the viewers it drives away would
            # have seen more seconds of later ads than it plays.
            recommendations.append(
                Recommendation(
                    break_id=item.id,
                    action="drop",
                    offset_seconds=item.offset_seconds,
                    to_offset_seconds=None,
                    abandonment_before=item.abandonment,
                    # No break, no ads to leave at: what the content loses there anyway.
                    abandonment_after=round(here, 5),
                    ad_seconds_change=round(share_here * (cost - item.pod_seconds), 2),
                    reason=(
                        f"It drives away {max(item.excess, 0):.1%} of its viewers, who would "
                        f"have seen {later_ad_seconds:.0f} s of later ads each: more than the "
                        f"{item.pod_seconds:.0f} s it plays."
                    ),
                )
            )
            taken[number] = -10_000
            plan[item.id] = (item.offset_seconds, 0.0)
        else:
            recommendations.append(
                Recommendation(
                    break_id=item.id,
                    action="keep",
                    offset_seconds=item.offset_seconds,
                    to_offset_seconds=None,
                    abandonment_before=item.abandonment,
                    abandonment_after=item.abandonment,
                    ad_seconds_change=0.0,
                    reason="No nearby minute loses markedly fewer viewers.",
                )
            )
            plan[item.id] = (item.offset_seconds, item.left_during_ads / max(item.reached, 1))

    expected_during_ads = _expected_during_ads(traces, figures, plan)
    by_id = {item.id: item for item in figures}
    for recommendation in recommendations:
        recommendation.during_ads_before = round(
            by_id[recommendation.break_id].left_during_ads / total, 5
        )
        recommendation.during_ads_after = round(
            expected_during_ads[recommendation.break_id] / total, 5
        )
    left_at_breaks = sum(item.left_during_ads for item in figures) / total
    expected_left = sum(expected_during_ads.values()) / total
    ad_seconds = sum(sum(t.pods.values()) for t in traces) / total
    return Analysis(
        sessions=total,
        duration_seconds=duration_seconds,
        curve=curve,
        content_dropoff=[round(value, 5) for value in content],
        breaks=figures,
        recommendations=recommendations,
        abandonment_at_breaks=round(left_at_breaks, 5),
        expected_abandonment_at_breaks=round(expected_left, 5),
        ad_seconds_per_session=round(ad_seconds, 2),
        expected_ad_seconds_per_session=round(
            ad_seconds + sum(r.ad_seconds_change for r in recommendations), 2
        ),
    )


def breaks_after(
    breaks: list[BreakSpot], recommendations: list[dict]
) -> list[tuple[int, int, int]]:
    """The title's breaks once `recommendations` (as stored) are applied: (id, offset, max pod)
    for each break kept or moved, by offset."""
    actions = {r["break_id"]: r for r in recommendations}
    result = []
    for spot in breaks:
        action = actions.get(spot.id)
        if action is not None and action["action"] == "drop":
            continue
        offset = spot.offset_seconds
        if action is not None and action["action"] == "move":
            offset = action["to_offset_seconds"]
        result.append((spot.id, offset, spot.max_pod_duration_seconds))
    return sorted(result, key=lambda item: item[1])


# -- the titles' sessions and the stored analyses (engagement.services / selectors) ----------


def title_traces(
    *, title_id: int, start: dt.datetime | None, end: dt.datetime
) -> list[SessionTrace]:
    """The title's sessions that ended in [start, end) and started at the beginning (two
    queries). A session picked up mid-title says nothing about the minutes before it."""
    sessions = ViewingSession.objects.filter(title_id=title_id, ended_at__lt=end)
    if start is not None:
        sessions = sessions.filter(ended_at__gte=start)
    summaries = {
        pk: (completed, abandoned, duration)
        for pk, completed, abandoned, duration in sessions.values_list(
            "pk", "completed", "abandoned", "title__duration_seconds"
        )
    }
    ends: dict[int, int] = {}
    pods: dict[int, dict[int, int]] = {}
    resumed: set[int] = set()
    for session_id, kind, position, detail in (
        PlaybackEvent.objects.filter(
            session__in=sessions, kind__in=("play", "ad_break", "abandon", "complete")
        )
        .order_by("session_id", "at", "id")
        .values_list("session_id", "kind", "position_seconds", "detail")
    ):
        if kind == "play":
            if detail.get("resumed") or position > 0:
                resumed.add(session_id)
        elif kind == "ad_break":
            break_id = detail.get("ad_break_id")
            if isinstance(break_id, int):
                pods.setdefault(session_id, {}).setdefault(
                    break_id, int(detail.get("pod_seconds") or 0)
                )
        else:
            ends[session_id] = position
    traces = []
    for pk, (completed, abandoned, duration) in summaries.items():
        if pk in resumed:
            continue
        traces.append(
            SessionTrace(
                end_seconds=duration if completed else ends.get(pk, 0),
                abandoned=abandoned,
                pods=pods.get(pk, {}),
                session_id=pk,
            )
        )
    return traces


def break_placement_analyse(
    *, day: dt.date, window_days: int = WINDOW_DAYS, title_ids: list[int] | None = None
) -> int:
    """Analyse every title with at least MIN_SESSIONS sessions that ended in the `window_days`
    before `day` (midnight UTC) and store one BreakPlacement per title for `day`, replacing
    that day's row (idempotent). Returns how many titles were analysed."""
    end = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
    start = end - dt.timedelta(days=window_days)
    busy = (
        ViewingSession.objects.filter(ended_at__gte=start, ended_at__lt=end)
        .values("title_id")
        .annotate(sessions=Count("id"))
        .filter(sessions__gte=MIN_SESSIONS)
    )
    if title_ids is not None:
        busy = busy.filter(title_id__in=title_ids)
    titles = {}
    for title_id in sorted(row["title_id"] for row in busy):
        spots = [
            BreakSpot(pk, offset, max_pod)
            for pk, offset, max_pod in AdBreak.objects.filter(title_id=title_id).values_list(
                "pk", "offset_seconds", "max_pod_duration_seconds"
            )
        ]
        titles[title_id] = (title_traces(title_id=title_id, start=start, end=end), spots)
    # One line for the whole catalog (the titles analysed): what an ordinary spot loses.
    risk = pod_risk_fit(list(titles.values()))
    analysed = 0
    for title_id, (traces, spots) in titles.items():
        title = Title.objects.get(pk=title_id)
        analysis = analyse(traces, spots, title.duration_seconds, risk)
        if analysis is None:
            continue
        BreakPlacement.objects.update_or_create(
            title=title,
            day=day,
            defaults={
                "computed_at": timezone.now(),
                "window_days": window_days,
                "sessions": analysis.sessions,
                "analysis": analysis.as_json(),
                "worst_excess": max((b.excess for b in analysis.breaks), default=0.0),
            },
        )
        analysed += 1
    return analysed


def break_placement_apply(
    *, placement: BreakPlacement, break_ids: set[int] | None, user: User | None
) -> AdBreakChange:
    """Apply the placement's move and drop recommendations (those of `break_ids`, or all) to
    its title's ad breaks through catalog's `title_ad_breaks_set`, and record the change (who,
    when, before, after). Raises ValidationError when the title's breaks changed since the
    analysis (it would move breaks that are no longer where it saw them)."""
    title = placement.title
    with transaction.atomic():
        current = [
            BreakSpot(pk, offset, max_pod)
            for pk, offset, max_pod in AdBreak.objects.select_for_update()
            .filter(title=title)
            .order_by("offset_seconds")
            .values_list("pk", "offset_seconds", "max_pod_duration_seconds")
        ]
        seen = {(b["id"], b["offset_seconds"]) for b in placement.analysis["breaks"]}
        now_mid_rolls = {(b.id, b.offset_seconds) for b in current if b.offset_seconds > 0}
        if seen != now_mid_rolls:
            raise ValidationError(
                "The title's ad breaks changed since this analysis: wait for the next one."
            )
        chosen = [
            r
            for r in placement.analysis["recommendations"]
            if r["action"] != "keep" and (break_ids is None or r["break_id"] in break_ids)
        ]
        after = breaks_after(current, chosen)
        title_ad_breaks_set(
            title=title,
            breaks=[BreakPosition(offset, max_pod, pk) for pk, offset, max_pod in after],
        )
        return AdBreakChange.objects.create(
            title=title,
            changed_by=user,
            changed_at=timezone.now(),
            placement=placement,
            before=[[b.id, b.offset_seconds, b.max_pod_duration_seconds] for b in current],
            after=[list(item) for item in after],
        )
