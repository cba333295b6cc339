"""Read MovieLens-100k in the tab-separated "atomic" layout and load it into the catalog.

The folder ``PATH`` holds ``<name>.item``, ``<name>.user`` and ``<name>.inter``, where
``<name>`` is the folder's own name (``ml-100k/ml-100k.item``); each file starts with a typed
header row (``item_id:token	movie_title:token_seq	...``) and columns are found by name.
The rules that turn MovieLens rows into titles and viewers are in the docstring of the
``load_movielens`` command and in the functions below, each of which is deterministic.
"""

import hashlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from ads import services as ads_services
from catalog.models import Device, Gender, MaturityRating, Region, Title, age_band_for
from catalog.services import (
    TitleSpec,
    ViewerSpec,
    ad_breaks_ensure,
    genres_upsert,
    titles_upsert,
    viewers_upsert,
)
from config.progress import progress as progress_bar
from engagement.services import RatingSpec, ratings_upsert

EXTERNAL_ID_PREFIX = "ml:"
COLUMNS = {
    "item": ("item_id", "movie_title", "release_year", "class"),
    "user": ("user_id", "age", "gender", "occupation", "zip_code"),
    "inter": ("user_id", "item_id", "rating", "timestamp"),
}

# The eighteen MovieLens genres (and "unknown"), in the files' spelling.
GENRE_TOKENS = (
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

ADULT_GENRES = frozenset({"horror", "crime", "film-noir"})
ALL_AGES_GENRES = frozenset({"childrens", "animation", "musical", "comedy"})
FAMILY_GENRES = frozenset({"childrens", "animation"})

SHORTEST_MOVIE_MINUTES = 80
LONGEST_MOVIE_MINUTES = 150
KIDS_UNDER_AGE = 13

# Which screen a profile uses most, guessed from the occupation: people at home watch on the
# living-room TV, desk workers on their computer, students and people on the move on a phone,
# teachers and librarians on a tablet. Anything else (a new occupation) counts as TV.
DEVICE_BY_OCCUPATION = {
    "retired": Device.CTV,
    "homemaker": Device.CTV,
    "none": Device.CTV,
    "other": Device.CTV,
    "administrator": Device.CTV,
    "executive": Device.CTV,
    "doctor": Device.CTV,
    "healthcare": Device.CTV,
    "lawyer": Device.CTV,
    "programmer": Device.DESKTOP,
    "engineer": Device.DESKTOP,
    "technician": Device.DESKTOP,
    "scientist": Device.DESKTOP,
    "writer": Device.DESKTOP,
    "student": Device.MOBILE,
    "salesman": Device.MOBILE,
    "marketing": Device.MOBILE,
    "entertainment": Device.MOBILE,
    "artist": Device.MOBILE,
    "educator": Device.TABLET,
    "librarian": Device.TABLET,
}

# US ZIP codes by first digit (0: New England, NJ; 1: NY, PA; 2: DC to the Carolinas;
# 3: FL, GA, AL, TN, MS; 4: OH, IN, MI, KY; 5: the upper Midwest; 6: IL, MO, KS, NE;
# 7: TX, OK, AR, LA; 8: the mountain states; 9: the Pacific).
REGION_BY_ZIP_DIGIT = {
    "0": Region.NORTHEAST,
    "1": Region.NORTHEAST,
    "2": Region.SOUTHEAST,
    "3": Region.SOUTHEAST,
    "4": Region.MIDWEST,
    "5": Region.MIDWEST,
    "6": Region.MIDWEST,
    "7": Region.SOUTH,
    "8": Region.WEST,
    "9": Region.WEST,
}

TRAILING_YEAR = re.compile(r"^(?P<name>.*?)\s*\((?P<year>\d{4})\)\s*$")


class MovieLensError(ValueError):
    """Bad input; the message names the file and, for a bad row, the line."""


@dataclass(frozen=True)
class MovieLensLoad:
    """What one load wrote (every count is of rows that exist afterwards)."""

    path: Path
    genres: int
    titles: int
    ad_breaks: int
    viewers: int
    ratings: int

    def summary(self, *, seconds: float) -> str:
        return (
            f"Loaded {self.titles:,} titles, {self.genres:,} genres, {self.ad_breaks:,} ad "
            f"breaks, {self.viewers:,} viewers, {self.ratings:,} ratings from {self.path} "
            f"in {seconds:.1f} s."
        )


# -- the rules -------------------------------------------------------------------------------


def genre_name_and_slug(token: str) -> tuple[str, str]:
    """A genre as the catalog names it: "Sci-Fi" → ("Sci-Fi", "sci-fi"),
    "Children's" → ("Children's", "childrens"), "unknown" → ("Unknown", "unknown")."""
    name = token[:1].upper() + token[1:]
    return name, slugify(token)


def maturity_for_genres(genre_slugs: set[str] | frozenset[str]) -> str:
    """R for horror, crime or film noir; G for a children's title that is nothing but
    children's, animation, musical or comedy; PG for any other children's or animated title;
    PG-13 otherwise. MovieLens has no signal for NC-17, so no loaded title gets it."""
    if genre_slugs & ADULT_GENRES:
        return MaturityRating.R
    if "childrens" in genre_slugs and genre_slugs <= ALL_AGES_GENRES:
        return MaturityRating.G
    if genre_slugs & FAMILY_GENRES:
        return MaturityRating.PG
    return MaturityRating.PG_13


def duration_for(external_id: str) -> int:
    """A movie's length in seconds: 80 to 150 whole minutes, from a hash of its id (stable
    across runs and machines, unlike Python's salted ``hash``)."""
    digest = int(hashlib.sha256(external_id.encode()).hexdigest(), 16)
    span = LONGEST_MOVIE_MINUTES - SHORTEST_MOVIE_MINUTES + 1
    return (SHORTEST_MOVIE_MINUTES + digest % span) * 60


def region_for_zip(zip_code: str) -> str:
    """The US region of a ZIP code by its first digit; anything not all digits (the Canadian
    postal codes in MovieLens) is outside the US."""
    if zip_code.isascii() and zip_code.isdigit():
        return REGION_BY_ZIP_DIGIT[zip_code[0]]
    return Region.INTERNATIONAL


def device_for_occupation(occupation: str) -> str:
    """The device a profile uses most, from its occupation (see DEVICE_BY_OCCUPATION)."""
    return DEVICE_BY_OCCUPATION.get(occupation.strip().lower(), Device.CTV)


# -- reading ---------------------------------------------------------------------------------


def movielens_files(path: Path) -> dict[str, Path]:
    """The item, user and inter files of the folder `path`, or MovieLensError naming the one
    that is missing."""
    if not path.is_dir():
        raise MovieLensError(f"{path} is not a folder with the MovieLens files.")
    files = {}
    for suffix in COLUMNS:
        expected = path / f"{path.name}.{suffix}"
        if expected.is_file():
            files[suffix] = expected
            continue
        # A renamed folder still works when it holds exactly one file of each kind.
        candidates = sorted(path.glob(f"*.{suffix}"))
        if not candidates:
            raise MovieLensError(f"Missing file {expected.name} in {path}.")
        if len(candidates) > 1:
            names = ", ".join(candidate.name for candidate in candidates)
            raise MovieLensError(f"Missing file {expected.name} in {path} (found {names}).")
        files[suffix] = candidates[0]
    return files


def _rows(file: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) for each data row of `file`; the header's typed names
    (``item_id:token``) are checked against COLUMNS and matched by name."""
    wanted = COLUMNS[file.suffix.lstrip(".")]
    with file.open("rb") as handle:
        names: list[str] = []
        positions: dict[str, int] = {}
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise MovieLensError(f"{file.name} line {number}: not UTF-8 ({error}).") from None
            if number == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark from a spreadsheet
                names = [column.split(":", 1)[0].strip() for column in line.split("\t")]
                missing = [column for column in wanted if column not in names]
                if missing:
                    raise MovieLensError(
                        f"{file.name} line 1: the header lacks {', '.join(missing)} "
                        f"(expected columns {', '.join(wanted)})."
                    )
                positions = {column: names.index(column) for column in wanted}
                continue
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) <= max(positions.values()):
                raise MovieLensError(
                    f"{file.name} line {number}: expected {len(names)} tab-separated fields, "
                    f"found {len(fields)}."
                )
            yield number, {column: fields[index].strip() for column, index in positions.items()}
        if not positions:
            raise MovieLensError(f"{file.name} is empty; it needs a header row.")


def _number(file: Path, number: int, column: str, value: str, *, whole: bool = True) -> float:
    try:
        parsed = float(value)
    except ValueError:
        parsed = math.nan
    if not math.isfinite(parsed) or (whole and not parsed.is_integer()):
        kind = "a whole number" if whole else "a number"
        raise MovieLensError(f"{file.name} line {number}: {column} {value!r} is not {kind}.")
    return parsed


def _read_items(file: Path) -> tuple[dict[str, str], list[TitleSpec]]:
    genres: dict[str, str] = {}
    titles: dict[str, TitleSpec] = {}
    for number, row in _rows(file):
        item_id = row["item_id"]
        if not item_id:
            raise MovieLensError(f"{file.name} line {number}: item_id is empty.")
        external_id = EXTERNAL_ID_PREFIX + item_id
        if external_id in titles:
            raise MovieLensError(f"{file.name} line {number}: item {item_id} appears twice.")
        name, year = row["movie_title"], None
        if match := TRAILING_YEAR.match(name):
            name, year = match["name"], int(match["year"])
        # The year column wins; it is "unknown"-like for a few items, whose title may still
        # end in "(1995)".
        if row["release_year"].isdigit():
            year = int(row["release_year"])
        if not name:
            raise MovieLensError(f"{file.name} line {number}: movie_title is empty.")
        if year is not None and not 1880 <= year <= 2100:
            raise MovieLensError(f"{file.name} line {number}: release_year {year} is implausible.")
        slugs = []
        for token in row["class"].split():
            genre_name, slug = genre_name_and_slug(token)
            genres.setdefault(slug, genre_name)
            slugs.append(slug)
        titles[external_id] = TitleSpec(
            external_id=external_id,
            name=name[:255],
            year=year,
            kind=Title.Kind.MOVIE,
            maturity_rating=maturity_for_genres(frozenset(slugs)),
            duration_seconds=duration_for(external_id),
            genre_slugs=tuple(dict.fromkeys(slugs)),
        )
    return genres, list(titles.values())


def _read_users(file: Path) -> list[ViewerSpec]:
    viewers: dict[str, ViewerSpec] = {}
    for number, row in _rows(file):
        user_id = row["user_id"]
        if not user_id:
            raise MovieLensError(f"{file.name} line {number}: user_id is empty.")
        external_id = EXTERNAL_ID_PREFIX + user_id
        if external_id in viewers:
            raise MovieLensError(f"{file.name} line {number}: user {user_id} appears twice.")
        age = int(_number(file, number, "age", row["age"]))
        if not 1 <= age <= 120:
            raise MovieLensError(f"{file.name} line {number}: age {age} is implausible.")
        gender = row["gender"].upper()
        if gender not in Gender.values:
            raise MovieLensError(
                f"{file.name} line {number}: gender {row['gender']!r} is not M, F or empty."
            )
        viewers[external_id] = ViewerSpec(
            external_id=external_id,
            age_band=age_band_for(age),
            gender=gender,
            region=region_for_zip(row["zip_code"]),
            device=device_for_occupation(row["occupation"]),
            is_kids=age < KIDS_UNDER_AGE,
        )
    return list(viewers.values())


def _read_ratings(
    file: Path, *, item_ids: set[str], user_ids: set[str]
) -> list[tuple[str, str, int, datetime]]:
    """(viewer external id, title external id, rating, rated at) for each row."""
    ratings = []
    first_line: dict[tuple[str, str], int] = {}
    for number, row in _rows(file):
        viewer = EXTERNAL_ID_PREFIX + row["user_id"]
        title = EXTERNAL_ID_PREFIX + row["item_id"]
        if viewer not in user_ids:
            raise MovieLensError(
                f"{file.name} line {number}: user {row['user_id']!r} is not in the user file."
            )
        if title not in item_ids:
            raise MovieLensError(
                f"{file.name} line {number}: item {row['item_id']!r} is not in the item file."
            )
        if (viewer, title) in first_line:
            raise MovieLensError(
                f"{file.name} line {number}: user {row['user_id']} already rated item "
                f"{row['item_id']} on line {first_line[viewer, title]}."
            )
        first_line[viewer, title] = number
        rating = int(_number(file, number, "rating", row["rating"]))
        if not 1 <= rating <= 5:
            raise MovieLensError(f"{file.name} line {number}: rating {rating} is not 1 to 5.")
        timestamp = _number(file, number, "timestamp", row["timestamp"], whole=False)
        try:
            rated_at = datetime.fromtimestamp(timestamp, tz=UTC)
        except (OverflowError, OSError, ValueError):
            rated_at = None
        if rated_at is None or timestamp < 0:
            raise MovieLensError(
                f"{file.name} line {number}: timestamp {row['timestamp']} is out of range."
            )
        ratings.append((viewer, title, rating, rated_at))
    return ratings


# -- loading ---------------------------------------------------------------------------------


def movielens_load(*, path: Path, progress: bool | None = None) -> MovieLensLoad:
    """Read the three files completely, then write genres, titles (with their genres and ad
    breaks), viewers and ratings in one transaction: bad input raises MovieLensError before
    anything is written, and a failed write leaves nothing behind. Keyed on external ids and
    (viewer, title), so a second load of the same files changes nothing. `progress`: show a
    progress bar on stderr (a bar on a terminal, one line otherwise; None: the same)."""
    try:
        return _load(path=path, progress=progress)
    except ValidationError as error:  # the services' own checks; the reader catches more
        raise MovieLensError("; ".join(error.messages)) from error


def _load(*, path: Path, progress: bool | None) -> MovieLensLoad:
    files = movielens_files(path)
    genres, titles = _read_items(files["item"])
    viewers = _read_users(files["user"])
    ratings = _read_ratings(
        files["inter"],
        item_ids={title.external_id for title in titles},
        user_ids={viewer.external_id for viewer in viewers},
    )
    with transaction.atomic():
        genres_upsert(genres=genres)
        titles_by_external_id = titles_upsert(titles=titles)
        ad_break_count = ad_breaks_ensure(titles=titles_by_external_id.values())
        viewer_ids = viewers_upsert(viewers=viewers)
        specs = (
            RatingSpec(
                viewer_id=viewer_ids[viewer],
                title_id=titles_by_external_id[title].id,
                rating=rating,
                rated_at=rated_at,
            )
            for viewer, title, rating, rated_at in ratings
        )
        # None or True: a bar on a terminal, one line in a log; False: nothing.
        bar = progress_bar(
            specs, total=len(ratings), desc="ratings", unit="ratings", show=progress is not False
        )
        with bar:
            rating_count = ratings_upsert(ratings=bar)
        # Bulk writes send no signals: tell the decision engine its catalog changed.
        ads_services.index_changed()
    return MovieLensLoad(
        path=path,
        genres=len(genres),
        titles=len(titles),
        ad_breaks=ad_break_count,
        viewers=len(viewers),
        ratings=rating_count,
    )
