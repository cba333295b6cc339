"""Reads of the catalog for the other apps: the decision index, the event path, the models'
features and the forms read titles, genres, ad breaks and viewers through these functions.
The catalog is the platform's, not a tenant's: nothing here takes `advertiser=`."""

from collections.abc import Iterable, Sequence

from django.db.models import QuerySet

from catalog.models import AdBreak, Genre, Title, Viewer

LOOKUP_CHUNK = 500  # ids per IN (...) list: SQLite allows 999 parameters a statement


def genres() -> QuerySet[Genre]:
    return Genre.objects.order_by("name")


def titles() -> QuerySet[Title]:
    return Title.objects.order_by("name")


def genre_slugs() -> dict[int, str]:
    """Each genre's slug by its id."""
    return dict(Genre.objects.values_list("pk", "slug"))


def title_genre_ids() -> dict[int, set[int]]:
    """Each title's genre ids (titles without a genre are left out)."""
    genres_by_title: dict[int, set[int]] = {}
    for title_id, genre_id in Title.genres.through.objects.values_list("title_id", "genre_id"):
        genres_by_title.setdefault(title_id, set()).add(genre_id)
    return genres_by_title


def title_genre_slugs(*, title_ids: Sequence[int] | None = None) -> dict[int, list[str]]:
    """Each title's genre slugs, sorted; of every title, or of `title_ids` (one query per
    LOOKUP_CHUNK of them)."""
    through = Title.genres.through
    if title_ids is None:
        chunks: Iterable = [through.objects.all()]
    else:
        chunks = (
            through.objects.filter(title_id__in=title_ids[start : start + LOOKUP_CHUNK])
            for start in range(0, len(title_ids), LOOKUP_CHUNK)
        )
    slugs: dict[int, list[str]] = {}
    for pairs in chunks:
        ordered = pairs.values_list("title_id", "genre__slug").order_by("title_id", "genre__slug")
        for title_id, slug in ordered:
            slugs.setdefault(title_id, []).append(slug)
    return slugs


def title_values(*fields: str) -> list[tuple]:
    """(pk, *fields) of every title, by pk."""
    return list(Title.objects.order_by("pk").values_list("pk", *fields))


def ad_break_values(*fields: str) -> list[tuple]:
    """(pk, *fields) of every ad break, by pk."""
    return list(AdBreak.objects.order_by("pk").values_list("pk", *fields))


def viewer_values(*fields: str) -> list[tuple]:
    """(pk, *fields) of every viewer, by pk."""
    return list(Viewer.objects.order_by("pk").values_list("pk", *fields))


def existing_ids(
    *, viewer_ids: Iterable[int], title_ids: Iterable[int], ad_break_ids: Iterable[int]
) -> tuple[set[int], set[int], set[int]]:
    """Which of these viewer, title and ad break ids exist (three queries)."""
    return (
        set(Viewer.objects.filter(pk__in=list(viewer_ids)).values_list("pk", flat=True)),
        set(Title.objects.filter(pk__in=list(title_ids)).values_list("pk", flat=True)),
        set(AdBreak.objects.filter(pk__in=list(ad_break_ids)).values_list("pk", flat=True)),
    )
