"""``manage.py simulate_traffic``: viewers watch titles, reach ad breaks, ask the real decision
engine and fire the real tracking events (``demo/simulation/``).

History (the default): the ``--days`` days before now, in-process on a simulated clock, so the
dashboards, reports and models have a past. ``--viewers`` viewers are active each day, with
about ``--sessions-per-viewer`` sessions each. Running it again adds another batch of history
(a new seed each time, printed in the summary); the same ``--seed`` and ``--end`` on the same
world give the same traffic.

``--live``: now, in real time, with ``--viewers`` viewers watching at once, until ``--minutes``
pass (``inf``: until stopped), Ctrl-C or SIGTERM, through the endpoints a running server
(``--base-url``) offers every viewer: each viewer binds its profile on /watch/, opens its sessions
and sends their playback events to the viewer app's API, and plays its ad breaks from the
title's VMAP and each break's VAST tag, firing the trackers. No key: the ad tags name the
audience's public player id (``interlude-audience``, made here when missing, shown in admin).
``--wait-for-server`` gives a server that is still starting time to answer.

``--truth-out PATH`` writes one CSV row per counted impression with its true click probability
(the simulator's ground truth, which models never see), for judging models later.
"""

import logging
import math
import random
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ads import services as ads_services
from demo.simulation import (
    AUDIENCE_PLAYER,
    HistoryOptions,
    LiveOptions,
    LiveSimulationError,
    World,
    simulate_history,
    simulate_live,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
MAX_SESSIONS_PER_VIEWER = 24


class Command(BaseCommand):
    help = (
        "Simulate viewers watching titles and the ads they see: the last --days days of "
        "history (default), or --live against a running server."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=1, help="Days of history, ending now.")
        parser.add_argument(
            "--viewers",
            type=int,
            default=300,
            help="Viewers active per simulated day (with --live: watching at once).",
        )
        parser.add_argument(
            "--sessions-per-viewer",
            type=float,
            default=2.0,
            help="Mean sessions of an active viewer per day (at least 1).",
        )
        parser.add_argument(
            "--seed",
            type=int,
            help="The same seed on the same world (and --end), the same traffic; default: new.",
        )
        parser.add_argument(
            "--end",
            help="Where the history ends, ISO 8601 with a UTC offset (default: now).",
        )
        parser.add_argument(
            "--truth-out", type=Path, help="CSV of each impression's true click probability."
        )
        parser.add_argument("--live", action="store_true", help="Real time, over HTTP.")
        parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help="With --live.")
        parser.add_argument(
            "--minutes",
            type=float,
            default=10.0,
            help="How long --live runs (default 10; inf: until stopped).",
        )
        parser.add_argument(
            "--wait-for-server",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="With --live: wait this long for a server that is still starting.",
        )
        parser.add_argument("--no-progress", action="store_true", help="Do not show progress.")

    def handle(self, *args, **options) -> None:
        started = time.perf_counter()
        self._check(options)
        end = self._end(options["end"])
        if options["seed"] is None:
            options["seed"] = random.SystemRandom().randrange(1_000_000)
        world = World.load(seed=options["seed"])
        if not world.viewers:
            raise CommandError("There are no viewers: run seed_demo first.")
        if not world.titles:
            raise CommandError("There are no titles: run seed_demo first.")
        if options["live"]:
            result = self._live(world, options)
        else:
            result = simulate_history(
                world,
                HistoryOptions(
                    end=end,
                    days=options["days"],
                    viewers=options["viewers"],
                    sessions_per_viewer=options["sessions_per_viewer"],
                    seed=options["seed"],
                    truth_out=options["truth_out"],
                    progress=not options["no_progress"],
                ),
            )
        result.seconds = time.perf_counter() - started
        self.stdout.write(self.style.SUCCESS(result.summary(seed=options["seed"])))

    def _live(self, world: World, options):
        # The HTTP client logs every request at INFO: thousands of lines a minute here.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
        _, created = ads_services.player_ensure(
            public_id=AUDIENCE_PLAYER, name="Simulated audience (demo)"
        )
        if created:
            self.stdout.write(f"Created the public player id {AUDIENCE_PLAYER} for the audience.")
        minutes = options["minutes"]
        until = "until stopped" if math.isinf(minutes) else f"for {minutes:g} min"
        self.stdout.write(
            f"Simulating {options['viewers']} viewers live against {options['base_url']} "
            f"{until} (Ctrl-C stops)."
        )
        on_sigterm = None
        if threading.current_thread() is threading.main_thread():
            # A process manager (honcho, in make demo) stops it with SIGTERM: end as Ctrl-C
            # does, writing the sessions still running.
            on_sigterm = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return simulate_live(
                world,
                LiveOptions(
                    base_url=options["base_url"],
                    viewers=options["viewers"],
                    minutes=options["minutes"],
                    seed=options["seed"],
                    truth_out=options["truth_out"],
                    progress=not options["no_progress"],
                    wait_for_server_seconds=options["wait_for_server"],
                ),
            )
        except LiveSimulationError as error:
            raise CommandError(str(error)) from error
        finally:
            if on_sigterm is not None:
                signal.signal(signal.SIGTERM, on_sigterm)

    @staticmethod
    def _end(value: str | None) -> datetime:
        now = timezone.now()
        if value is None:
            return now
        try:
            end = parse_datetime(value)
        except ValueError:
            end = None
        if end is None or end.tzinfo is None:
            raise CommandError("--end must be an ISO 8601 time with a UTC offset.")
        if end > now:
            raise CommandError("--end cannot be in the future.")
        return end

    @staticmethod
    def _check(options) -> None:
        if options["days"] < 1:
            raise CommandError("--days must be at least 1.")
        if options["viewers"] < 1:
            raise CommandError("--viewers must be at least 1.")
        if not 1 <= options["sessions_per_viewer"] <= MAX_SESSIONS_PER_VIEWER:
            raise CommandError(
                f"--sessions-per-viewer must be between 1 and {MAX_SESSIONS_PER_VIEWER}."
            )
        if not options["minutes"] > 0:
            raise CommandError("--minutes must be greater than 0.")
        if not options["wait_for_server"] >= 0:
            raise CommandError("--wait-for-server must be 0 or more.")
        base_url = options["base_url"]
        if not base_url.startswith(("http://", "https://")):
            raise CommandError("--base-url must be an http:// or https:// URL.")
        if options["end"] is not None and options["live"]:
            raise CommandError("--end is for history; --live runs now.")
        truth_out = options["truth_out"]
        if truth_out is not None and not truth_out.parent.is_dir():
            raise CommandError(f"--truth-out: the folder {truth_out.parent} does not exist.")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
