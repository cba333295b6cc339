import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ads import services


class Command(BaseCommand):
    help = (
        "Recompute spend and click-through counters from the AdEvent table, e.g. after Redis "
        "lost its data. Safe to run at any time and twice."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=2, help="Daily spend for this many recent days."
        )

    def handle(self, *args, days: int, **options) -> None:
        if days < 1:
            raise CommandError("--days must be at least 1.")
        started = time.perf_counter()
        written = services.counters_rebuild(since=timezone.now() - timedelta(days=days))
        services.index_changed()
        self.stdout.write(
            f"Rebuilt {written:,} counters from the event table in "
            f"{time.perf_counter() - started:.1f} s."
        )
