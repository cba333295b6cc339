"""``manage.py seed_demo [PATH]``: build the demo world; safe to run again.

1. The catalog: MovieLens through the ``load_movielens`` loader when PATH is given, or else when
   the ``MOVIELENS_PATH`` environment variable names a folder that exists; otherwise a
   synthetic catalog (``--titles``, ``--viewers``; the same every time).
2. The staff superuser ``admin`` and three advertiser accounts (Fizzy Cola, Northwind Motors,
   Lumen Bank), each with an owner, a manager and an analyst, and campaigns, line items and
   creatives that between them use every targeting option (``demo/accounts.py``).
3. The logins, in a table, and a one-line summary.

What exists already (by external id, advertiser slug, or name within the advertiser) is kept;
users get the ``--password`` again so the printed logins work.
"""

import os
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from demo.accounts import Login, demo_accounts_ensure
from demo.catalog import synthetic_catalog_ensure
from demo.movielens import MovieLensError, movielens_load

DEFAULT_PASSWORD = "interlude-demo"


class Command(BaseCommand):
    help = (
        "Build the demo world: a catalog (MovieLens from PATH or $MOVIELENS_PATH, else "
        "synthetic), three advertiser accounts with users and demand, and an admin login."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", nargs="?", type=Path, help="A MovieLens folder, e.g. ../shared/data/ml-100k"
        )
        parser.add_argument("--password", default=DEFAULT_PASSWORD, help="Every demo user's.")
        parser.add_argument("--titles", type=int, default=300, help="Synthetic catalog size.")
        parser.add_argument("--viewers", type=int, default=3000, help="Synthetic viewers.")
        parser.add_argument("--no-progress", action="store_true", help="Do not show progress bars.")

    def handle(self, *args, path: Path | None, password: str, **options) -> None:
        started = time.perf_counter()
        if options["titles"] < 1 or options["viewers"] < 1:
            raise CommandError("--titles and --viewers must be at least 1.")
        if not password:
            raise CommandError("--password must not be empty.")
        path = path or self._path_from_environment()
        with transaction.atomic():
            catalog = self._catalog_ensure(path, started=started, **options)
            accounts = demo_accounts_ensure(password=password)
        self.stdout.write("")
        self.stdout.write(self._logins_table(accounts.logins, password))
        self.stdout.write("")
        created = ", ".join(f"{count} {kind}" for kind, count in accounts.created.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo world ready in {time.perf_counter() - started:.1f} s: {catalog}; "
                f"{len(accounts.logins)} logins (created this run: {created})."
            )
        )

    def _catalog_ensure(
        self, path: Path | None, *, started: float, titles: int, viewers: int, **options
    ) -> str:
        """Load or make the catalog; returns its description for the summary."""
        if path is None:
            counts = synthetic_catalog_ensure(titles=titles, viewers=viewers)
            return (
                f"synthetic catalog of {counts.titles:,} titles, {counts.genres} genres, "
                f"{counts.ad_breaks:,} ad breaks, {counts.viewers:,} viewers"
            )
        try:
            load = movielens_load(path=path, progress=False if options["no_progress"] else None)
        except MovieLensError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(load.summary(seconds=time.perf_counter() - started))
        return f"MovieLens catalog of {load.titles:,} titles, {load.viewers:,} viewers"

    def _path_from_environment(self) -> Path | None:
        value = os.environ.get("MOVIELENS_PATH", "").strip()
        if not value:
            return None
        path = Path(value)
        if path.is_dir():
            return path
        self.stderr.write(
            f"MOVIELENS_PATH={value} is not a folder; building a synthetic catalog instead."
        )
        return None

    @staticmethod
    def _logins_table(logins: list[Login], password: str) -> str:
        rows = [("username", "password", "account", "role")] + [
            (login.username, password, login.account, login.role) for login in logins
        ]
        widths = [max(len(row[column]) for row in rows) for column in range(4)]
        lines = [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            for row in rows
        ]
        lines.insert(1, "  ".join("-" * width for width in widths))
        return "\n".join(line.rstrip() for line in lines)
