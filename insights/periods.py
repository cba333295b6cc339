"""Periods as advertisers say them ("yesterday", "last week", "in November", "since Monday",
"the last 30 days"), read as account-local days: the same phrase means the same days for the
planner, for the LLM's tool arguments and for the evaluation's expected numbers.

Weeks start on Monday; "last week" is the whole previous week, "this week" Monday to today; a
month named without a year is its latest occurrence not after this month. A period never
reaches past today, and is at most MAX_DAYS long (the dashboards' limit).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

DEFAULT_PHRASE = "last 7 days"
MAX_DAYS = 366  # as the dashboards' date range (analytics.forms)
MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
MONTHS |= {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
WEEKDAYS = {name.lower(): number for number, name in enumerate(calendar.day_name)}
NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "ten": 10,
    "fourteen": 14, "thirty": 30, "ninety": 90, "a": 1,
}  # fmt: skip
UNIT_DAYS = {"day": 1, "week": 7, "month": 30}


class PeriodError(ValueError):
    """A period phrase that names no days we can read (the message says what is understood)."""


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date
    label: str  # how an answer names it: "last week (Nov 23 – Nov 29)"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """As many days, ending the day before this one starts (analytics' comparison)."""
        end = self.start - dt.timedelta(days=1)
        start = end - dt.timedelta(days=self.days - 1)
        return Period(
            start, end, "the day before" if self.days == 1 else f"the {self.days} days before"
        )

    def as_dict(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "label": self.label}


def _span(start: dt.date, end: dt.date) -> str:
    if start == end:
        return f"{start:%a %b} {start.day}, {start.year}"
    return f"{start:%b} {start.day} – {end:%b} {end.day}, {end.year}"


def _period(start: dt.date, end: dt.date, name: str, today: dt.date) -> Period:
    end = min(end, today)
    if start > end:
        raise PeriodError(f"“{name}” has not started yet.")
    if (end - start).days + 1 > MAX_DAYS:
        raise PeriodError(f"Choose at most {MAX_DAYS} days.")
    return Period(start, end, f"{name} ({_span(start, end)})")


def _month(year: int, month: int) -> tuple[dt.date, dt.date]:
    return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])


def _count(word: str) -> int:
    return int(word) if word.isdigit() else NUMBER_WORDS[word]


ISO_DATE = r"(\d{4}-\d{2}-\d{2})"
COUNT = r"(\d+|" + "|".join(NUMBER_WORDS) + r")"
MONTH_NAMES = "|".join(sorted(MONTHS, key=len, reverse=True))
WEEKDAY_NAMES = "|".join(WEEKDAYS)
PATTERNS: list[tuple[str, str]] = [
    ("range", rf"(?:from |between )?{ISO_DATE} *(?:to|until|and|\.\.|–|-) *{ISO_DATE}"),
    ("date", rf"(?:on |since )?{ISO_DATE}"),
    ("today", r"today|so far today"),
    ("yesterday", r"yesterday"),
    ("day_before", r"(?:the )?day before yesterday"),
    (
        "last_n",
        rf"(?:in |over |for |during )?(?:the )?(?:last|past|previous) {COUNT} (day|week|month)s?",
    ),
    ("this_week", r"(?:so far )?this week|week to date"),
    ("week_before_last", r"(?:the )?week before last|(?:the )?week before"),
    ("last_week", r"last week|previous week|past week"),
    ("this_month", r"this month|month to date"),
    ("last_month", r"last month|previous month|past month"),
    ("this_year", r"this year|year to date"),
    ("since_weekday", rf"since (?:last )?({WEEKDAY_NAMES})"),
    ("weekday", rf"(?:on |last )?({WEEKDAY_NAMES})"),
    ("month", rf"(?:in |during |for |over )?({MONTH_NAMES})\.?(?: (\d{{4}}))?"),
]
COMPILED = [(name, re.compile(rf"\b(?:{pattern})\b")) for name, pattern in PATTERNS]


def find_period(text: str, *, today: dt.date) -> tuple[Period, str] | None:
    """The first period phrase in `text` (lowercase) and the text it matched; None if none.
    Tried in PATTERNS' order, so "the day before yesterday" wins over "yesterday"."""
    best: tuple[int, str, re.Match] | None = None
    for name, pattern in COMPILED:
        match = pattern.search(text)
        if match and (
            best is None
            or match.start() < best[0]
            or (match.start() == best[0] and len(match.group(0)) > len(best[2].group(0)))
        ):
            best = (match.start(), name, match)
    if best is None:
        return None
    _, name, match = best
    return _resolve(name, match, today), match.group(0)


def parse_period(phrase: str, *, today: dt.date) -> Period:
    """The period a whole phrase names; PeriodError when it names none."""
    text = " ".join(phrase.lower().split())
    if not text:
        text = DEFAULT_PHRASE
    found = find_period(text, today=today)
    if found is None:
        raise PeriodError(
            f"“{phrase}” is not a period I can read: try “yesterday”, “last week”, “in "
            "November”, “since Monday”, “the last 30 days” or “2026-11-01 to 2026-11-15”."
        )
    return found[0]


def _resolve(name: str, match: re.Match, today: dt.date) -> Period:
    monday = today - dt.timedelta(days=today.weekday())
    if name == "range":
        start, end = (dt.date.fromisoformat(group) for group in match.groups())
        if start > end:
            raise PeriodError("The start date must be on or before the end date.")
        return _period(start, end, f"{start} to {end}", today)
    if name == "date":
        day = dt.date.fromisoformat(match.group(1))
        if match.group(0).startswith("since"):
            return _period(day, today, f"since {day}", today)
        return _period(day, day, str(day), today)
    if name == "today":
        return _period(today, today, "today", today)
    if name == "yesterday":
        day = today - dt.timedelta(days=1)
        return _period(day, day, "yesterday", today)
    if name == "day_before":
        day = today - dt.timedelta(days=2)
        return _period(day, day, "the day before yesterday", today)
    if name == "last_n":
        count, unit = _count(match.group(1)), match.group(2)
        days = count * UNIT_DAYS[unit]
        plural = "s" if count > 1 else ""
        start = today - dt.timedelta(days=days - 1)
        return _period(start, today, f"the last {count} {unit}{plural}", today)
    if name == "this_week":
        return _period(monday, today, "this week", today)
    if name == "last_week":
        start = monday - dt.timedelta(days=7)
        return _period(start, start + dt.timedelta(days=6), "last week", today)
    if name == "week_before_last":
        start = monday - dt.timedelta(days=14)
        return _period(start, start + dt.timedelta(days=6), "the week before last", today)
    if name == "this_month":
        return _period(today.replace(day=1), today, "this month", today)
    if name == "last_month":
        year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
        start, end = _month(year, month)
        return _period(start, end, "last month", today)
    if name == "this_year":
        return _period(dt.date(today.year, 1, 1), today, "this year", today)
    if name in ("since_weekday", "weekday"):
        weekday = WEEKDAYS[match.group(1)]
        back = (today.weekday() - weekday) % 7
        if name == "weekday" and back == 0:
            back = 7  # "on Monday" said on a Monday is last Monday: today has its own words
        day = today - dt.timedelta(days=back)
        label = match.group(1).title()
        if name == "since_weekday":
            return _period(day, today, f"since {label}", today)
        return _period(day, day, label, today)
    # a month, with or without its year
    month = MONTHS[match.group(1)]
    year = int(match.group(2)) if match.group(2) else today.year
    if not match.group(2) and month > today.month:
        year -= 1
    start, end = _month(year, month)
    return _period(start, end, f"{calendar.month_name[month]} {year}", today)
