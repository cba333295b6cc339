"""Drop-off and break placement (engagement.placement): the retention curve and each break's
abandonment on a hand-built set of sessions, a break moved off a drop-off point, a break that
costs more ads than it plays dropped, the nightly analysis stored once per day, and applying it
to the title's ad breaks (moved in place, recorded)."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from catalog.models import AdBreak
from engagement import placement, selectors, services
from engagement.models import AdBreakChange, BreakPlacement
from engagement.placement import BreakSpot, SessionTrace, analyse, retention_curve
from engagement.tasks import break_placement_task
from tests.factories import AdBreakFactory, TitleFactory, UserFactory, ViewerFactory

DAY = dt.date(2026, 5, 10)
T0 = dt.datetime(2026, 5, 8, 20, 0, tzinfo=dt.UTC)
BREAKS = [BreakSpot(1, 0, 90), BreakSpot(2, 1200, 120), BreakSpot(3, 2400, 120)]


def hand_built() -> list[tuple[int, bool]]:
    """200 sessions of a 60-minute title as (where it ended, completed): 100 finish; one
    leaves in the middle of each minute 1 to 59; a lull from minute 36 to 41 loses four more
    a minute; 10 leave at the break at 20:00 and 7 at the break at 40:00 (in the lull)."""
    ends = [(3600, True)] * 100
    ends += [(minute * 60 + 30, False) for minute in range(1, 60)]
    ends += [(minute * 60 + 10, False) for minute in range(36, 42) for _ in range(4)]
    ends += [(1200, False)] * 10 + [(2400, False)] * 7
    return ends


def traces() -> list[SessionTrace]:
    return [
        SessionTrace(
            end_seconds=end,
            abandoned=not completed,
            pods={b.id: 60 for b in BREAKS if b.offset_seconds <= end},
        )
        for end, completed in hand_built()
    ]


def test_the_retention_curve_is_the_share_still_watching_at_each_minute():
    curve = retention_curve(traces(), 3600)
    assert len(curve) == 61
    assert curve[0] == 1.0
    assert curve[1] == 1.0  # the first to leave leaves at 1:30
    assert curve[2] == 199 / 200
    assert curve[20] == 181 / 200  # 19 gone before 20:00; the 10 at 20:00 still count
    assert curve[21] == 170 / 200
    assert curve[40] == 200 / 200 - (39 + 16 + 10) / 200  # 39 one a minute, 4 lull minutes
    assert curve[60] == 100 / 200


def test_each_break_against_the_curves_baseline_and_a_move_off_the_lull():
    analysis = analyse(traces(), BREAKS, 3600)
    first, second = analysis.breaks  # the pre-roll is not judged
    assert (first.offset_seconds, first.reached, first.left) == (1200, 181, 11)
    assert first.abandonment == pytest.approx(11 / 181, abs=1e-5)
    # The baseline: one a minute out of those watching, about 0.6 % around minute 20.
    assert 0.005 < first.baseline < 0.0075
    assert first.excess == pytest.approx(first.abandonment - first.baseline, abs=1e-5)
    # The 7 at 40:00, the 4 of the lull's minute 40 and the one at 40:30; 65 left before.
    assert (second.offset_seconds, second.reached, second.left) == (2400, 135, 12)
    assert second.baseline > 2 * first.baseline  # the lull's minutes are in its baseline
    assert second.content_dropoff > 3 * first.content_dropoff  # the lull

    actions = {r.break_id: r for r in analysis.recommendations}
    assert actions[2].action == "keep"  # minute 20 is no worse than its neighbours
    move = actions[3]
    assert move.action == "move"
    # The calm minutes before the lull (32:00, its neighbours calm too) rather than those after
    # it: more viewers watch there, so their drop-off is known more surely.
    assert move.to_offset_seconds == 32 * 60
    # At or just after 32:00 it should lose what the content loses there (one of the 160,
    # 159 and 158 watching at minutes 31 to 33 in each) and what the title's other mid-roll
    # loses during its ads (10 of its 181): 0.63 % + 5.52 %, against 8.89 % at 40:00.
    assert move.abandonment_after == pytest.approx(3 / 477 + 10 / 181, abs=1e-5)
    assert move.abandonment_after < move.abandonment_before == pytest.approx(12 / 135, abs=1e-5)
    # The title's figure: sessions that left during a mid-roll's ads, 10 + 7 of 200. At 32:00
    # the break loses 10 / 181 of the 159 that watch that far: more than the 7 it loses at
    # 40:00, where fewer reach it and its ads lose no more of them than the other break's.
    # The move's gain is the lull's minutes, not the ads: no fewer expected to leave at them.
    assert analysis.abandonment_at_breaks == pytest.approx(17 / 200)
    assert move.during_ads_before == pytest.approx(7 / 200)
    assert move.during_ads_after == pytest.approx(159 * 10 / 181 / 200, abs=1e-5)
    assert analysis.expected_abandonment_at_breaks == pytest.approx(
        (10 + 159 * 10 / 181) / 200, abs=1e-5
    )


def test_a_break_that_costs_more_ads_than_it_plays_is_dropped():
    # The same sessions, but the break at 20:00 plays 15 s and the one at 40:00 a long 600 s:
    # the 5.5 % the first drives away would each have seen 600 s × 135 / 181 later, 24.6 s
    # per session at 20:00: more than the 15 s it plays.
    sessions = [
        SessionTrace(
            t.end_seconds,
            t.abandoned,
            {2: 15, 3: 600} if t.end_seconds >= 2400 else {2: 15} if t.end_seconds >= 1200 else {},
        )
        for t in traces()
    ]
    actions = {r.break_id: r for r in analyse(sessions, BREAKS, 3600).recommendations}
    assert actions[2].action == "drop"
    assert actions[2].ad_seconds_change > 0


def test_a_break_that_a_move_would_fix_moves_rather_than_goes():
    # Break 2 (15 s) sits in a stretch losing four more viewers a minute (16:00 to 21:59) and
    # 10 leave at it; break 3 plays 600 s. The viewers break 2 drives away would have seen more
    # later ads than it plays (the drop rule), but calm minutes lie four to eight minutes
    # before it: moved there it keeps its 15 s and most of the viewers it lost.
    ends = [(3600, True)] * 100
    ends += [(minute * 60 + 30, False) for minute in range(1, 60)]
    ends += [(minute * 60 + 10, False) for minute in range(16, 22) for _ in range(4)]
    ends += [(1200, False)] * 10 + [(2400, False)] * 3
    sessions = [
        SessionTrace(
            end,
            not completed,
            {2: 15, 3: 600} if end >= 2400 else {2: 15} if end >= 1200 else {},
        )
        for end, completed in ends
    ]
    analysis = analyse(sessions, BREAKS, 3600)
    first, second = analysis.breaks
    later_seconds = 600 * second.reached / first.reached
    assert first.excess * later_seconds > first.pod_seconds == 15  # the drop rule holds
    move = analysis.recommendations[0]
    assert (move.action, move.to_offset_seconds) == ("move", 12 * 60)
    assert move.abandonment_after < first.baseline + first.excess / 2
    # Per session that started the title: the break's 15 s at minute 12 (more viewers reach
    # it) and the later ads of those it no longer drives away; a drop would gain less.
    drop_gain = 0.805 * (first.excess * later_seconds - 15)
    assert move.ad_seconds_change > drop_gain > 0


def noisy_stretch(times: int) -> list[SessionTrace]:
    """`times` copies of 64 sessions of a 60-minute title: 30 finish; one leaves in the
    middle of each minute 1 to 59; two more at each of minutes 19 and 21 (a steeper stretch
    around the break at 20:00, or chance); 3 leave at 20:00 and 2 at 40:00, about as many of
    those who reach each break."""
    ends = [(3600, True)] * 60
    ends += [(minute * 60 + 30, False) for minute in range(1, 60)]
    ends += [(minute * 60 + 10, False) for minute in (19, 21) for _ in range(2)]
    ends += [(1200, False)] * 3 + [(2400, False)] * 2
    return [
        SessionTrace(end, not completed, {b.id: 60 for b in BREAKS if b.offset_seconds <= end})
        for end, completed in ends * times
    ]


def test_a_move_is_made_only_when_its_gain_exceeds_its_noise():
    # The same shape: with 128 sessions the steeper stretch around 20:00 is within the noise
    # of so few stops (the point estimates alone would move it to 12:00); with twice as many
    # sessions it is not, and the break moves.
    few = analyse(noisy_stretch(1), BREAKS, 3600)
    assert few.sessions == 128
    assert [r.action for r in few.recommendations] == ["keep", "keep"]
    assert few.expected_abandonment_at_breaks == few.abandonment_at_breaks
    more = analyse(noisy_stretch(2), BREAKS, 3600)
    assert [(r.action, r.to_offset_seconds) for r in more.recommendations] == [
        ("move", 12 * 60),
        ("keep", None),
    ]
    # Neither break loses markedly more of its viewers than the other: only the content's
    # drop-off speaks here.
    first, second = more.breaks
    assert first.left / first.reached == pytest.approx(8 / 214)
    assert second.left / second.reached == pytest.approx(6 / 164)


def test_a_break_that_loses_far_more_of_its_viewers_than_the_others_moves():
    # 185 sessions: 100 finish, one leaves in the middle of each minute, one more at 39 and at
    # 41 (the content barely steeper there: within its noise); 6 leave at 20:00 but 18 at
    # 40:00, far more of those who reach it than at 20:00 (19/139 against 7/166, ~3 standard
    # errors). The break's own witness moves it, to calm minutes before it.
    ends = [(3600, True)] * 100
    ends += [(minute * 60 + 30, False) for minute in range(1, 60)]
    ends += [(minute * 60 + 10, False) for minute in (39, 41)]
    ends += [(1200, False)] * 6 + [(2400, False)] * 18
    sessions = [
        SessionTrace(end, not completed, {b.id: 60 for b in BREAKS if b.offset_seconds <= end})
        for end, completed in ends
    ]
    analysis = analyse(sessions, BREAKS, 3600)
    first, second = analysis.breaks
    assert (first.reached, first.left, second.reached, second.left) == (166, 7, 139, 19)
    assert [(r.action, r.to_offset_seconds) for r in analysis.recommendations] == [
        ("keep", None),
        ("move", 32 * 60),
    ]
    move = analysis.recommendations[1]
    assert move.abandonment_after < move.abandonment_before


def witnesses(extra_content: int, at_break: int) -> list[SessionTrace]:
    """A 60-minute title: 100 sessions finish, one leaves in the middle of each minute,
    `extra_content` more at minutes 39 and 41 each (the content a little steeper around the
    break at 40:00), 8 at the break at 20:00 and `at_break` at the one at 40:00."""
    ends = [(3600, True)] * 100
    ends += [(minute * 60 + 30, False) for minute in range(1, 60)]
    ends += [(minute * 60 + 10, False) for minute in (39, 41) for _ in range(extra_content)]
    ends += [(1200, False)] * 8 + [(2400, False)] * at_break
    return [
        SessionTrace(end, not completed, {b.id: 60 for b in BREAKS if b.offset_seconds <= end})
        for end, completed in ends
    ]


def test_two_witnesses_each_short_of_sure_move_a_break_together(monkeypatch):
    # The content around 40:00 loses about twice the title's median minute, 1.00 standard
    # errors above 32:00's; the break loses 13 of the 133 who reach it against 9 of 162 at
    # 20:00, 1.57 standard errors. Neither alone clears 1.64; together (1.00 + 1.57) / √2 =
    # 1.82 do.
    sessions = witnesses(extra_content=1, at_break=12)
    together = analyse(sessions, BREAKS, 3600)
    assert [(b.reached, b.left) for b in together.breaks] == [(162, 9), (133, 13)]
    assert [(r.action, r.to_offset_seconds) for r in together.recommendations] == [
        ("keep", None),
        ("move", 32 * 60),
    ]
    monkeypatch.setattr(placement, "COMBINED_EVIDENCE", False)
    alone = analyse(sessions, BREAKS, 3600)
    assert [r.action for r in alone.recommendations] == ["keep", "keep"]
    monkeypatch.undo()
    # Two fewer at the break (1.02 standard errors): (0.99 + 1.02) / √2 = 1.42, kept. A plain
    # sum (2.01) would have moved it.
    weaker = analyse(witnesses(extra_content=1, at_break=10), BREAKS, 3600)
    assert [r.action for r in weaker.recommendations] == ["keep", "keep"]


def catalog_title(at_20: int, at_40: int, pod_20: int = 60, pod_40: int = 60) -> list[SessionTrace]:
    """200 sessions of a 60-minute title whose content loses one viewer in the middle of each
    minute (flat: the content's witness has nothing to say), `at_20` and `at_40` of them
    leaving during the pods at 20:00 and 40:00 (which play `pod_20` and `pod_40` seconds after
    a 30 s pre-roll), the rest finishing. A viewer who leaves during a pod reports only the
    10 s it held them, as the player does."""
    ends = [(minute * 60 + 30, False) for minute in range(1, 60)]
    ends += [(1200, False)] * at_20 + [(2400, False)] * at_40
    ends += [(3600, True)] * (200 - len(ends))
    pods = {1: 30, 2: pod_20, 3: pod_40}
    return [
        SessionTrace(
            end,
            not completed,
            {
                b.id: 10
                if (end == b.offset_seconds and b.offset_seconds and not completed)
                else pods[b.id]
                for b in BREAKS
                if b.offset_seconds <= end
            },
        )
        for end, completed in ends
    ]


def test_a_break_losing_what_the_catalogs_ordinary_spots_lose_thrice_moves():
    # Both mid-rolls of a title lose about three times what twelve other titles' breaks lose
    # with the same pods: against each other they look alike (kept), against the catalog's
    # ordinary spot (its pod risk) both are beyond noise, and they move to calm minutes.
    catalog = [(catalog_title(8, 7), BREAKS) for _ in range(12)]
    slow = catalog_title(24, 20)
    risk = placement.pod_risk_fit([*catalog, (slow, BREAKS)])
    assert risk is not None
    # The median break loses its sessions' share at the line: 7 or 8 of ~180 each, and the
    # slow title's two pull the line up a little.
    assert 0.85 < risk.calm < 1.0
    alone = analyse(slow, BREAKS, 3600)
    assert [r.action for r in alone.recommendations] == ["keep", "keep"]
    pooled = analyse(slow, BREAKS, 3600, risk)
    assert [(r.action, r.to_offset_seconds) for r in pooled.recommendations] == [
        ("move", 12 * 60),
        ("move", 32 * 60),
    ]
    assert (
        "24 of the 181 who played its ads left during them, where an ordinary spot would "
        "lose 8.0 of them" in pooled.recommendations[0].reason
    )
    # An ordinary title of the same catalog keeps its breaks.
    ordinary = analyse(catalog[0][0], BREAKS, 3600, risk)
    assert [r.action for r in ordinary.recommendations] == ["keep", "keep"]


def test_a_moved_break_is_expected_to_lose_an_ordinary_pods_viewers_on_top_of_the_content():
    # A catalog whose ordinary break loses 4 % of the sessions that play its ads, whatever the
    # pod (a line drawn by hand). The title's breaks lose 24 of 181 and 20 of 137 during their
    # ads; both move, to 12:00 and 32:00. There each is expected to lose the content's
    # drop-off (one of the 190, 189 and 188 watching at minutes 11 to 13 in each) and 4 % of
    # those who reach it: at 12:00 the 189 watching that far; at 32:00 the 145 watching that
    # far and the viewers 20:00 no longer loses (24 − 7.56), as many of them as of the 157
    # who sat through its ads watch to 32:00.
    risk = placement.PodRisk(base=0.04, per_break_before=0.0, per_pod_second=0.0, calm=1.0)
    analysis = analyse(catalog_title(24, 20), BREAKS, 3600, risk)
    first, second = analysis.recommendations
    assert [(r.action, r.to_offset_seconds) for r in (first, second)] == [
        ("move", 12 * 60),
        ("move", 32 * 60),
    ]
    assert first.abandonment_after == pytest.approx(3 / 567 + 0.04, abs=1e-5)
    assert first.during_ads_after == pytest.approx(0.04 * 189 / 200, abs=1e-5)
    flowed_on = (24 - 0.04 * 189) * 145 / 157
    assert second.during_ads_after == pytest.approx(0.04 * (145 + flowed_on) / 200, abs=1e-5)
    assert analysis.abandonment_at_breaks == pytest.approx(44 / 200)
    assert analysis.expected_abandonment_at_breaks == pytest.approx(
        (0.04 * 189 + 0.04 * (145 + flowed_on)) / 200, abs=1e-5
    )


def test_a_dropped_break_is_expected_to_lose_no_one_at_its_ads_and_the_next_more():
    # Flat content; the break at 20:00 plays 15 s and 8 of its 181 leave during them, the
    # one at 40:00 plays 600 s and 6 of its 153 leave: the first goes (the drop rule), the
    # second stays. At 20:00 the content alone is expected to lose what it loses anyway
    # (its minute bridged by its neighbours': one stop each among 183, 182, 172 and 171
    # watching, over minutes 19 to 21); the 8 it no longer loses go on, 153 of every 173 who
    # sat through its ads to 40:00, where they leave as its sessions do (6 of 153).
    analysis = analyse(catalog_title(8, 6, 15, 600), BREAKS, 3600)
    dropped, kept = analysis.recommendations
    assert (dropped.action, kept.action) == ("drop", "keep")
    bridged = 181 * 4 / (183 + 182 + 172 + 171)
    assert dropped.abandonment_after == pytest.approx((1 + bridged + 1) / 535, abs=1e-5)
    assert (dropped.during_ads_before, dropped.during_ads_after) == (8 / 200, 0.0)
    assert kept.abandonment_after == kept.abandonment_before == pytest.approx(7 / 153, abs=1e-5)
    reaching = 153 + 8 * 153 / 173
    assert kept.during_ads_after == pytest.approx(6 / 153 * reaching / 200, abs=1e-5)
    assert analysis.abandonment_at_breaks == pytest.approx(14 / 200)
    assert analysis.expected_abandonment_at_breaks == pytest.approx(
        6 / 153 * reaching / 200, abs=1e-5
    )


def test_a_long_pod_is_weighed_against_what_long_pods_lose_everywhere():
    # Half the catalog plays 120 s pods and loses 16 viewers at each break, half 40 s pods and
    # 6. A title with a 40 s pod at 20:00 (6 leave) and a 120 s one at 40:00 (16 leave) loses
    # at 40:00 far more than at 20:00 (2.3 standard errors against its other mid-roll), but
    # just what a pod that long loses anywhere: kept.
    catalog = [(catalog_title(16, 16, 120, 120), BREAKS) for _ in range(6)]
    catalog += [(catalog_title(6, 6, 40, 40), BREAKS) for _ in range(6)]
    title = catalog_title(6, 16, 40, 120)
    risk = placement.pod_risk_fit([*catalog, (title, BREAKS)])
    assert risk is not None
    # Leavers report 10 s of their pod; weighed at that, long pods would look harmless.
    assert risk.per_pod_second == pytest.approx(10 / 160 / 80, rel=0.25)
    assert [r.action for r in analyse(title, BREAKS, 3600).recommendations] == ["keep", "move"]
    assert [r.action for r in analyse(title, BREAKS, 3600, risk).recommendations] == [
        "keep",
        "keep",
    ]


def test_too_few_sessions_are_not_analysed():
    assert analyse(traces()[:49], BREAKS, 3600) is None
    assert analyse(traces()[:50], BREAKS, 3600) is not None


@pytest.fixture
def title_with_sessions(db):
    """The hand-built sessions, stored as the player would report them."""
    title = TitleFactory(duration_seconds=3600)
    breaks = [
        AdBreakFactory(title=title, offset_seconds=offset, max_pod_duration_seconds=pod)
        for offset, pod in ((0, 90), (1200, 120), (2400, 120))
    ]
    viewer = ViewerFactory()
    specs = []
    for number, (end, completed) in enumerate(hand_built()):
        start = T0 + dt.timedelta(minutes=number)
        events = [services.PlaybackSpec("play", 0, start)]
        for ad_break in breaks:
            if ad_break.offset_seconds <= end:
                events.append(
                    services.PlaybackSpec(
                        "ad_break",
                        ad_break.offset_seconds,
                        start + dt.timedelta(seconds=ad_break.offset_seconds),
                        {"ad_break_id": ad_break.pk, "ads": 2, "pod_seconds": 60},
                    )
                )
        ended = start + dt.timedelta(seconds=end + 120)
        events.append(services.PlaybackSpec("complete" if completed else "abandon", end, ended))
        specs.append(
            services.SessionSpec(
                viewer_id=viewer.pk,
                title_id=title.pk,
                device="ctv",
                started_at=start,
                ended_at=ended,
                watched_seconds=end,
                completed=completed,
                abandoned=not completed,
                events=events,
            )
        )
    # A session picked up at 30:00 says nothing about the minutes before: left out.
    specs.append(
        services.SessionSpec(
            viewer_id=viewer.pk,
            title_id=title.pk,
            device="ctv",
            started_at=T0,
            ended_at=T0 + dt.timedelta(minutes=5),
            watched_seconds=60,
            completed=False,
            abandoned=True,
            events=[
                services.PlaybackSpec("play", 1800, T0, {"resumed": True}),
                services.PlaybackSpec("abandon", 1860, T0 + dt.timedelta(minutes=5)),
            ],
        )
    )
    services.viewing_sessions_record(sessions=specs)
    return title, breaks


def test_the_nightly_analysis_is_stored_once_per_title_and_day(title_with_sessions):
    title, breaks = title_with_sessions
    assert break_placement_task.apply(kwargs={"day_iso": DAY.isoformat()}).get() == {
        "day": DAY.isoformat(),
        "titles": 1,
    }
    assert services.break_placement_analyse(day=DAY) == 1  # again: the same row, replaced
    placement = BreakPlacement.objects.get()
    assert (placement.title, placement.day, placement.sessions) == (title, DAY, 200)
    stored = {b["id"]: b for b in placement.analysis["breaks"]}
    assert (stored[breaks[1].pk]["reached"], stored[breaks[1].pk]["left"]) == (181, 11)
    assert placement.worst_excess == pytest.approx(
        max(b["excess"] for b in placement.analysis["breaks"])
    )
    assert selectors.break_placement_latest(title_id=title.pk) == placement
    worst = selectors.worst_breaks(limit=1)
    assert [(row["title_id"], row["offset_seconds"], row["action"]) for row in worst] == [
        (title.pk, 2400, "move")
    ]
    # Sessions that ended on or after the day are not in that day's analysis.
    assert services.break_placement_analyse(day=T0.date()) == 0


def test_applying_moves_breaks_in_place_and_records_who_and_what(title_with_sessions):
    title, breaks = title_with_sessions
    services.break_placement_analyse(day=DAY)
    placement = BreakPlacement.objects.get()
    staff = UserFactory(is_staff=True)
    change = services.break_placement_apply(placement=placement, break_ids=None, user=staff)
    after = list(AdBreak.objects.filter(title=title).values_list("pk", "offset_seconds"))
    assert after == [(breaks[0].pk, 0), (breaks[1].pk, 1200), (breaks[2].pk, 32 * 60)]
    assert change.changed_by == staff
    assert change.before == [[b.pk, b.offset_seconds, b.max_pod_duration_seconds] for b in breaks]
    assert change.after == [
        [b, offset, pod] for (b, offset), pod in zip(after, (90, 120, 120), strict=True)
    ]
    assert list(selectors.ad_break_changes(title_id=title.pk)) == [change]
    # The breaks moved since the analysis: applying it again would move the wrong ones.
    with pytest.raises(ValidationError, match="changed since this analysis"):
        services.break_placement_apply(placement=placement, break_ids=None, user=staff)
    assert AdBreakChange.objects.count() == 1


def test_the_catalogs_ordinary_spot_is_the_median_of_enough_breaks():
    """Ten played mid-rolls, but only one with the expected leavers the ordinary spot's median
    is taken over (one losing 30 % of its viewers): no catalog line, rather than that break
    taken for the ordinary spot (and judged ordinary against itself)."""
    titles = []
    for number in range(placement.MIN_RISK_BREAKS - 1):
        spot = BreakSpot(number + 1, 600, 60)
        titles.append(([SessionTrace(3600, False, {spot.id: 30}) for _ in range(5)], [spot]))
    bad = BreakSpot(100, 600, 60)
    sessions = [SessionTrace(600, True, {bad.id: 10}) for _ in range(60)]
    sessions += [SessionTrace(3600, False, {bad.id: 30}) for _ in range(140)]
    titles.append((sessions, [bad]))
    assert placement.pod_risk_fit(titles) is None
