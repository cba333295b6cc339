"""Writes to the inventory: genres, titles, their ad breaks, viewers.

These are bulk upserts for loaders (``load_movielens``, ``seed_demo``): each is keyed on a
natural key (a genre's slug, a title's or a viewer's ``external_id``), so running a load twice
leaves the same rows. They check the values that bulk writes would otherwise let through
(choices and ranges) and raise ``ValidationError`` before writing anything.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models, transaction

from catalog.models import (
    AdBreak,
    AgeBand,
    Device,
    Gender,
    Genre,
    MaturityRating,
    Region,
    Title,
    Viewer,
)

# Rows per INSERT; Django splits further where the database needs it (SQLite's 999 variables).
BATCH_SIZE = 2000
# Keys per `__in` lookup, well below every backend's parameter limit.
LOOKUP_CHUNK = 500

# Ad breaks: a pre-roll, then a mid-roll every 20 minutes, none in the last 10 minutes
# (the credits) so a viewer is not interrupted just before the end.
MID_ROLL_EVERY_SECONDS = 20 * 60
NO_BREAK_BEFORE_END_SECONDS = 10 * 60
PRE_ROLL_MAX_POD_SECONDS = 90
MID_ROLL_MAX_POD_SECONDS = 120

T = TypeVar("T")


@dataclass(frozen=True)
class TitleSpec:
    """What a loader knows about a title; `genre_slugs` must name existing genres."""

    external_id: str
    name: str
    duration_seconds: int
    year: int | None = None
    kind: str = Title.Kind.MOVIE
    maturity_rating: str = MaturityRating.PG_13
    genre_slugs: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ViewerSpec:
    """What a loader knows about a viewer profile."""

    external_id: str
    age_band: str
    region: str
    device: str
    gender: str = Gender.UNKNOWN
    is_kids: bool = False


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of at most `size`, consumed lazily (so a tqdm around `items` moves)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def rows_upsert(
    model: type[models.Model], specs: Iterable[Any], *, keys: Sequence[str], fields: Sequence[str]
) -> None:
    """Insert a row of `model` for each spec (an object with an attribute per key and field),
    or update `fields` of the row whose `keys` are taken already: one statement, so an
    identical second load leaves the same rows (ids included)."""
    model._default_manager.bulk_create(
        [model(**{name: getattr(spec, name) for name in (*keys, *fields)}) for spec in specs],
        update_conflicts=True,
        unique_fields=list(keys),
        update_fields=list(fields),
    )


def genres_upsert(*, genres: Mapping[str, str]) -> dict[str, Genre]:
    """Create or rename the genres given as ``{slug: name}``; returns every one by slug."""
    for slug, name in genres.items():
        if not slug or not name or len(slug) > 60 or len(name) > 60:
            raise ValidationError({"genres": f"{slug!r}: a slug and a name of 1 to 60 characters."})
    # Names are unique too: a name taken under another slug would fail the insert.
    taken = Genre.objects.filter(name__in=list(genres.values())).exclude(slug__in=list(genres))
    if clash := taken.first():
        raise ValidationError(
            {"genres": f"The name {clash.name!r} belongs to the genre {clash.slug!r} already."}
        )
    Genre.objects.bulk_create(
        [Genre(slug=slug, name=name) for slug, name in genres.items()],
        update_conflicts=True,
        unique_fields=["slug"],
        update_fields=["name"],
    )
    return {genre.slug: genre for genre in Genre.objects.filter(slug__in=list(genres))}


def titles_upsert(*, titles: Iterable[TitleSpec]) -> dict[str, Title]:
    """Create or update titles keyed on ``external_id``, and set each one's genres to exactly
    `genre_slugs` (other genres of that title are removed). Returns the titles by external id,
    with ``id`` and ``duration_seconds`` loaded (what `ad_breaks_ensure` needs)."""
    specs = list(titles)
    _unique_external_ids(specs)
    genre_ids = dict(Genre.objects.values_list("slug", "id"))
    for spec in specs:
        _title_spec_check(spec, genre_ids)
    with transaction.atomic():
        for batch in batched(specs, BATCH_SIZE):
            rows_upsert(
                Title,
                batch,
                keys=["external_id"],
                fields=["name", "year", "kind", "maturity_rating", "duration_seconds"],
            )
        by_external_id = _titles_by_external_id([spec.external_id for spec in specs])
        wanted = {
            (by_external_id[spec.external_id].id, genre_ids[slug])
            for spec in specs
            for slug in spec.genre_slugs
        }
        _title_genres_set(title_ids=[title.id for title in by_external_id.values()], pairs=wanted)
    return by_external_id


def ad_break_plan(*, duration_seconds: int) -> list[tuple[int, int]]:
    """The cue points a title of `duration_seconds` gets, as ``(offset, max pod)`` pairs:
    a 90 s pre-roll at 0, then a 120 s mid-roll every 20 minutes, none in the last 10."""
    plan = [(0, PRE_ROLL_MAX_POD_SECONDS)]
    offset = MID_ROLL_EVERY_SECONDS
    while offset < duration_seconds - NO_BREAK_BEFORE_END_SECONDS:
        plan.append((offset, MID_ROLL_MAX_POD_SECONDS))
        offset += MID_ROLL_EVERY_SECONDS
    return plan


def ad_breaks_ensure(*, titles: Iterable[Title]) -> int:
    """Give each title the breaks of `ad_break_plan`, creating the missing ones. Breaks that
    already exist (also ones staff added or edited in admin) are left alone. Returns the number
    of planned breaks, all of which exist afterwards."""
    planned = [
        AdBreak(title_id=title.id, offset_seconds=offset, max_pod_duration_seconds=max_pod)
        for title in titles
        for offset, max_pod in ad_break_plan(duration_seconds=title.duration_seconds)
    ]
    for batch in batched(planned, BATCH_SIZE):
        AdBreak.objects.bulk_create(batch, ignore_conflicts=True)
    return len(planned)


def viewers_upsert(*, viewers: Iterable[ViewerSpec]) -> dict[str, int]:
    """Create or update viewer profiles keyed on ``external_id``; returns their ids by
    external id."""
    specs = list(viewers)
    _unique_external_ids(specs)
    for spec in specs:
        _viewer_spec_check(spec)
    with transaction.atomic():
        for batch in batched(specs, BATCH_SIZE):
            rows_upsert(
                Viewer,
                batch,
                keys=["external_id"],
                fields=["age_band", "gender", "region", "device", "is_kids"],
            )
    ids: dict[str, int] = {}
    for chunk in batched([spec.external_id for spec in specs], LOOKUP_CHUNK):
        ids.update(Viewer.objects.filter(external_id__in=chunk).values_list("external_id", "id"))
    return ids


def _titles_by_external_id(external_ids: list[str]) -> dict[str, Title]:
    titles: dict[str, Title] = {}
    for chunk in batched(external_ids, LOOKUP_CHUNK):
        for title in Title.objects.filter(external_id__in=chunk).only(
            "id", "external_id", "duration_seconds"
        ):
            titles[title.external_id] = title
    return titles


def _title_genres_set(*, title_ids: list[int], pairs: set[tuple[int, int]]) -> None:
    """Make the (title, genre) links of `title_ids` exactly `pairs`, touching only the
    differences so a second identical load writes nothing."""
    through = Title.genres.through
    existing: dict[tuple[int, int], int] = {}
    for chunk in batched(title_ids, LOOKUP_CHUNK):
        rows = through.objects.filter(title_id__in=chunk).values_list("id", "title_id", "genre_id")
        existing.update({(title_id, genre_id): link_id for link_id, title_id, genre_id in rows})
    stale = [link_id for pair, link_id in existing.items() if pair not in pairs]
    for chunk in batched(stale, LOOKUP_CHUNK):
        through.objects.filter(id__in=chunk).delete()
    missing = sorted(pairs - existing.keys())
    for batch in batched(missing, BATCH_SIZE):
        through.objects.bulk_create(
            [through(title_id=title_id, genre_id=genre_id) for title_id, genre_id in batch],
            ignore_conflicts=True,
        )


def _unique_external_ids(specs: list[TitleSpec] | list[ViewerSpec]) -> None:
    # PostgreSQL refuses to update one row twice in one statement; say which id is doubled.
    seen: set[str] = set()
    for spec in specs:
        if spec.external_id in seen:
            raise ValidationError({"external_id": f"{spec.external_id!r} appears twice."})
        seen.add(spec.external_id)


def _title_spec_check(spec: TitleSpec, genre_ids: Mapping[str, int]) -> None:
    errors: dict[str, str] = {}
    if not spec.external_id or len(spec.external_id) > 64:
        errors["external_id"] = f"{spec.external_id!r} must have 1 to 64 characters."
    if not spec.name or len(spec.name) > 255:
        errors["name"] = f"{spec.name!r} must have 1 to 255 characters."
    if spec.year is not None and not 1880 <= spec.year <= 2100:
        errors["year"] = f"{spec.year} is not between 1880 and 2100."
    if spec.kind not in Title.Kind.values:
        errors["kind"] = f"Unknown kind {spec.kind!r}."
    if spec.maturity_rating not in MaturityRating.values:
        errors["maturity_rating"] = f"Unknown maturity rating {spec.maturity_rating!r}."
    if spec.duration_seconds < 60:
        errors["duration_seconds"] = "A title lasts at least 60 seconds."
    unknown = sorted(set(spec.genre_slugs) - genre_ids.keys())
    if unknown:
        errors["genre_slugs"] = f"Unknown genre(s): {', '.join(unknown)}."
    if errors:
        raise ValidationError({f"{spec.external_id}.{key}": value for key, value in errors.items()})


def _viewer_spec_check(spec: ViewerSpec) -> None:
    errors: dict[str, str] = {}
    if not spec.external_id or len(spec.external_id) > 64:
        errors["external_id"] = f"{spec.external_id!r} must have 1 to 64 characters."
    for name, choices in (
        ("age_band", AgeBand),
        ("gender", Gender),
        ("region", Region),
        ("device", Device),
    ):
        if getattr(spec, name) not in choices.values:
            errors[name] = f"Unknown value {getattr(spec, name)!r}."
    if spec.is_kids and spec.age_band != AgeBand.UNDER_18:
        errors["is_kids"] = "A kids profile must be in the under-18 age band."
    if errors:
        raise ValidationError({f"{spec.external_id}.{key}": value for key, value in errors.items()})


@dataclass(frozen=True)
class BreakPosition:
    """Where one of a title's breaks should be: an existing break (`id`) moved or left, or a
    new one (`id` None)."""

    offset_seconds: int
    max_pod_duration_seconds: int
    id: int | None = None


def title_ad_breaks_set(*, title: Title, breaks: Sequence[BreakPosition]) -> list[AdBreak]:
    """Make the title's ad breaks exactly `breaks`: existing ones keep their ids (moved in
    place, so their ad events still point at them), those not listed are deleted, new ones
    are created. Raises ValidationError naming `breaks` for an offset outside the title, two
    breaks at one offset, a pod length out of range or an id of another title's break; writes
    nothing then. Returns the breaks by offset."""
    existing = {ad_break.pk: ad_break for ad_break in AdBreak.objects.filter(title=title)}
    offsets = [position.offset_seconds for position in breaks]
    problems = []
    if len(set(offsets)) != len(offsets):
        problems.append("Two breaks at the same offset.")
    for position in breaks:
        if not 0 <= position.offset_seconds < title.duration_seconds:
            problems.append(
                f"Offset {position.offset_seconds} s is outside the title "
                f"(0 to {title.duration_seconds - 1} s)."
            )
        if not 15 <= position.max_pod_duration_seconds <= 600:
            problems.append(f"A pod of {position.max_pod_duration_seconds} s is not 15 to 600 s.")
        if position.id is not None and position.id not in existing:
            problems.append(f"Ad break {position.id} is not one of this title's.")
    if problems:
        raise ValidationError({"breaks": problems})
    kept = {position.id for position in breaks if position.id is not None}
    with transaction.atomic():
        for pk, ad_break in existing.items():
            if pk not in kept:
                ad_break.delete()
        # Kept breaks first go past the title's end (each to its own offset), so that no two
        # share an offset mid-way while they move.
        for position in breaks:
            if position.id is not None:
                AdBreak.objects.filter(pk=position.id).update(
                    offset_seconds=title.duration_seconds + position.id
                )
        result = []
        for position in breaks:
            ad_break = existing[position.id] if position.id is not None else AdBreak(title=title)
            ad_break.offset_seconds = position.offset_seconds
            ad_break.max_pod_duration_seconds = position.max_pod_duration_seconds
            ad_break.save()  # signals: the decision engine's index rebuilds
            result.append(ad_break)
    return sorted(result, key=lambda ad_break: ad_break.offset_seconds)
