"""Period phrases read in the account's days: Wednesday 2 December 2026 is "today"."""

import datetime as dt

import pytest

from insights.periods import PeriodError, parse_period

TODAY = dt.date(2026, 12, 2)  # a Wednesday


@pytest.mark.parametrize(
    ("phrase", "start", "end"),
    [
        ("today", "2026-12-02", "2026-12-02"),
        ("yesterday", "2026-12-01", "2026-12-01"),
        ("the day before yesterday", "2026-11-30", "2026-11-30"),
        ("last week", "2026-11-23", "2026-11-29"),
        ("the week before last", "2026-11-16", "2026-11-22"),
        ("this week", "2026-11-30", "2026-12-02"),
        ("since Monday", "2026-11-30", "2026-12-02"),
        ("since Thursday", "2026-11-26", "2026-12-02"),
        ("on Monday", "2026-11-30", "2026-11-30"),
        ("in November", "2026-11-01", "2026-11-30"),
        ("in Dec", "2026-12-01", "2026-12-02"),
        ("in March", "2026-03-01", "2026-03-31"),  # the latest March, this year's
        ("in January 2026", "2026-01-01", "2026-01-31"),
        ("last month", "2026-11-01", "2026-11-30"),
        ("this month", "2026-12-01", "2026-12-02"),
        ("the last 30 days", "2026-11-03", "2026-12-02"),
        ("past two weeks", "2026-11-19", "2026-12-02"),
        ("2026-11-10 to 2026-11-12", "2026-11-10", "2026-11-12"),
        ("since 2026-11-28", "2026-11-28", "2026-12-02"),
    ],
)
def test_phrases(phrase, start, end):
    period = parse_period(phrase, today=TODAY)
    assert (period.start.isoformat(), period.end.isoformat()) == (start, end)


def test_the_previous_period_is_as_long_and_just_before():
    previous = parse_period("last week", today=TODAY).previous()
    assert (previous.start, previous.end) == (dt.date(2026, 11, 16), dt.date(2026, 11, 22))


@pytest.mark.parametrize(
    ("phrase", "message"),
    [
        ("whenever", "not a period I can read"),
        ("the last 400 days", "at most 366 days"),
        ("2026-11-12 to 2026-11-10", "on or before"),
        ("2027-01-01", "has not started yet"),
    ],
)
def test_what_is_not_a_period_says_why(phrase, message):
    with pytest.raises(PeriodError, match=message):
        parse_period(phrase, today=TODAY)
