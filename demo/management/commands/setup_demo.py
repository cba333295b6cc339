"""``manage.py setup_demo``: what ``make demo`` does before it serves, in one process.

Migrate, seed the world (``seed_demo``: MovieLens when ``MOVIELENS_PATH`` names a folder),
simulate ``--days`` days of history for ``--viewers`` viewers a day (``simulate_traffic``),
after ``--backfill-days`` thinner days before them (an eighth of the viewers: enough for
"last week against the week before" to have numbers in every account, for little time),
roll the days up (``rollup``) and train the models once (``train_models``): the commands a
person can run one by one, called here in one process so Django, the engine and the models are
imported once rather than five times. Each step says when it starts and what it did; a table of
each step's seconds and the total ends the set-up, and the logins (``seed_demo``'s table)
follow it, also written to ``--logins-out``.
"""

import io
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

STEP_WIDTH = 18


class Command(BaseCommand):
    help = (
        "Set the demo up in one process: migrate, seed_demo, simulate_traffic, rollup and "
        "train_models, with each step's time and the total at the end."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=3, help="Days of simulated history.")
        parser.add_argument("--viewers", type=int, default=600, help="Viewers a simulated day.")
        parser.add_argument(
            "--backfill-days",
            type=int,
            default=14,
            help="Thinner days of history before those (0: none).",
        )
        parser.add_argument("--seed", type=int, default=7, help="The simulation's seed.")
        parser.add_argument(
            "--since",
            type=float,
            metavar="EPOCH",
            help="When the set-up began (Unix time, e.g. make's start): the time before this "
            "process (installing, starting Python) is a step of the summary.",
        )
        parser.add_argument(
            "--logins-out", type=Path, help="Also write the logins table to this file."
        )

    def handle(self, *args, **options) -> None:
        if options["days"] < 1 or options["viewers"] < 1:
            raise CommandError("--days and --viewers must be at least 1.")
        if options["backfill_days"] < 0:
            raise CommandError("--backfill-days cannot be negative.")
        started = time.perf_counter()
        timings: list[tuple[str, float]] = []
        if options["since"] is not None:
            timings.append(("before (install)", max(0.0, time.time() - options["since"])))
        logins = io.StringIO()
        steps: list[tuple[str, Callable[[], None]]] = [
            ("migrate", lambda: call_command("migrate", interactive=False, verbosity=0)),
            ("seed_demo", lambda: call_command("seed_demo", stdout=logins)),
            ("simulate_traffic", lambda: self._simulate(options)),
            # Every simulated day, today and tomorrow (UTC) for accounts east of UTC.
            (
                "rollup",
                lambda: call_command(
                    "rollup",
                    days=options["backfill_days"] + options["days"] + 1,
                    stdout=self.stdout,
                ),
            ),
            ("train_models", lambda: call_command("train_models", stdout=self.stdout)),
        ]
        for name, run in steps:
            self.stdout.write(f"== {name}")
            self.stdout.flush()
            step_started = time.perf_counter()
            run()
            timings.append((name, time.perf_counter() - step_started))
            if name == "seed_demo":
                self.stdout.write(logins.getvalue().strip().splitlines()[-1])
        if options["since"] is not None:
            total = time.time() - options["since"]
        else:
            total = time.perf_counter() - started
        self.stdout.write("")
        self.stdout.write("Set-up times (s):")
        for name, seconds in timings:
            self.stdout.write(f"  {name:<{STEP_WIDTH}} {seconds:6.1f}")
        self.stdout.write(f"  {'total':<{STEP_WIDTH}} {total:6.1f}")
        self.stdout.write("")
        self.stdout.write(logins.getvalue().strip())
        if options["logins_out"] is not None:
            options["logins_out"].write_text(logins.getvalue())

    def _simulate(self, options) -> None:
        """The thin backfill first, ending where the full days begin, then the full days."""
        if options["backfill_days"]:
            recent_start = timezone.now() - timedelta(days=options["days"])
            call_command(
                "simulate_traffic",
                days=options["backfill_days"],
                viewers=max(1, options["viewers"] // 8),
                seed=options["seed"] + 1,
                end=recent_start.isoformat(),
                stdout=self.stdout,
            )
        call_command(
            "simulate_traffic",
            days=options["days"],
            viewers=options["viewers"],
            seed=options["seed"],
            stdout=self.stdout,
        )
