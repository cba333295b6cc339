import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics import services
from config.progress import progress


class Command(BaseCommand):
    help = (
        "Rebuild the daily rollups of the last N days (each account's local days), or of one "
        "day with --day. Safe to run twice: the same events give the same rows."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=2, help="How many days back from today.")
        parser.add_argument("--day", help="One day, YYYY-MM-DD, instead of --days.")

    def handle(self, *args, days: int, day: str | None, **options) -> None:
        started = time.perf_counter()
        if day:
            try:
                days_to_roll = [dt.date.fromisoformat(day)]
            except ValueError:
                raise CommandError(f"--day must be a date, YYYY-MM-DD (got {day!r}).") from None
        else:
            if not 1 <= days <= 366:
                raise CommandError("--days must be between 1 and 366.")
            today = timezone.now().date()
            # Through tomorrow (UTC): accounts east of UTC may already be on it.
            days_to_roll = [today - dt.timedelta(days=n) for n in range(days, -2, -1)]
        rows, kept = 0, []
        for each in progress(days_to_roll, desc="rollup", unit="days"):
            try:
                rows += services.rollup_day(day=each).delivery_rows
            except services.EventsRetired as retired:
                kept.append(retired)
        if day and kept:
            raise CommandError(str(kept[0]))
        rolled = len(days_to_roll) - len(kept)
        self.stdout.write(
            f"Rolled up {rolled} days into {rows:,} delivery rows in "
            f"{time.perf_counter() - started:.1f} s."
        )
        if kept:
            self.stdout.write(
                f"Kept {len(kept)} days as they are ({kept[0].day} to {kept[-1].day}): "
                f"retention dropped their events through {kept[-1].retired_through}."
            )
