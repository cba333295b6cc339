"""The date range of a dashboard page: a GET form of two dates in the account's time zone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS

DEFAULT_DAYS = 7
MAX_DAYS = 366  # a leap year: enough for a year-over-year look, small enough to stay fast
PRESETS = [("Today", 1), ("7 days", 7), ("30 days", 30)]
# Far-off dates are typos, and near the ends of the calendar a day's UTC bounds overflow.
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2099, 12, 31)


@dataclass(frozen=True)
class DateRange:
    start: dt.date
    end: dt.date
    today: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def query(self) -> str:
        """The range as a URL query: "start=…&end=…"."""
        return urlencode({"start": self.start.isoformat(), "end": self.end.isoformat()})

    @property
    def includes_today(self) -> bool:
        return self.start <= self.today <= self.end

    @classmethod
    def last(cls, days: int, *, today: dt.date) -> DateRange:
        """The `days` days ending today."""
        return cls(start=today - dt.timedelta(days=days - 1), end=today, today=today)


class DateRangeForm(forms.Form):
    """`start` and `end`, both included. A missing `end` is today, a missing `start` is the
    week ending at `end`; a reversed or too long range is an error, never a silent fix."""

    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data, *, today: dt.date) -> None:
        super().__init__(data)
        self.today = today

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:  # a date that does not parse: its own message says which field
            return cleaned
        end = cleaned.get("end") or self.today
        start = cleaned.get("start") or end - dt.timedelta(days=DEFAULT_DAYS - 1)
        if not (EARLIEST <= start <= LATEST and EARLIEST <= end <= LATEST):
            raise forms.ValidationError(
                f"Choose dates between {EARLIEST} and {LATEST}.", code="out_of_bounds"
            )
        if start > end:
            raise forms.ValidationError(
                "The start date must be on or before the end date.", code="reversed"
            )
        if (end - start).days + 1 > MAX_DAYS:
            raise forms.ValidationError(
                f"Choose at most {MAX_DAYS} days.", code="too_long", params={"max": MAX_DAYS}
            )
        cleaned["start"], cleaned["end"] = start, end
        return cleaned

    def date_range(self) -> DateRange:
        """The range to show: the valid input, or the default week when the input is wrong."""
        if self.is_valid():
            data = self.cleaned_data
            return DateRange(start=data["start"], end=data["end"], today=self.today)
        return DateRange.last(DEFAULT_DAYS, today=self.today)

    def error_messages(self) -> list[str]:
        """Every error as one sentence that names its field."""
        messages = []
        for field, errors in self.errors.items():
            label = "" if field == NON_FIELD_ERRORS else f"{field.title()} date: "
            messages.extend(f"{label}{error}" for error in errors)
        return messages
