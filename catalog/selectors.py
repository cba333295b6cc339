"""Reads of the catalog for the other apps: the decision index, the event path, the models'
features and the forms read titles, genres, ad breaks and viewers through these functions.
The catalog is the platform's, not a tenant's: nothing here takes `advertiser=`."""

from collections.abc import Iterable, Sequence

from django.db.models import Count, Q, QuerySet

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


def ad_tag_example() -> tuple[AdBreak | None, Viewer | None]:
    """A mid-roll (or any break) and an adult viewer, to show a working ad tag in admin."""
    ad_break = (
        AdBreak.objects.filter(offset_seconds__gt=0).order_by("pk").first()
        or AdBreak.objects.order_by("pk").first()
    )
    return ad_break, Viewer.objects.filter(is_kids=False).order_by("pk").first()


def titles_matching(
    *,
    genre_ids: Iterable[int] = (),
    maturity_ratings: Iterable[str] = (),
    include_ids: Iterable[int] = (),
    exclude_ids: Iterable[int] = (),
) -> QuerySet[Title]:
    """The titles a line item's title targeting matches, as the decision engine reads it: of
    any of `genre_ids`, rated any of `maturity_ratings`, among `include_ids`, never one of
    `exclude_ids`; an empty rule matches every title. Lazy: usable as a subquery."""
    matching = Title.objects.all()
    if genre_ids := list(genre_ids):
        in_genres = Title.genres.through.objects.filter(genre_id__in=genre_ids)
        matching = matching.filter(pk__in=in_genres.values("title_id"))
    if maturity_ratings := list(maturity_ratings):
        matching = matching.filter(maturity_rating__in=maturity_ratings)
    if include_ids := list(include_ids):
        matching = matching.filter(pk__in=include_ids)
    if exclude_ids := list(exclude_ids):
        matching = matching.exclude(pk__in=exclude_ids)
    return matching


def inventory_reach(*, titles: QuerySet[Title]) -> dict[str, int]:
    """How much of the catalog `titles` (from `titles_matching`) covers: titles and their ad
    breaks, matching and in all (two queries)."""
    title_counts = Title.objects.aggregate(
        titles_total=Count("pk"), titles=Count("pk", filter=Q(pk__in=titles.values("pk")))
    )
    break_counts = AdBreak.objects.aggregate(
        ad_breaks_total=Count("pk"),
        ad_breaks=Count("pk", filter=Q(title_id__in=titles.values("pk"))),
    )
    return title_counts | break_counts


def viewer_reach(
    *, regions: Iterable[str] = (), devices: Iterable[str] = (), age_bands: Iterable[str] = ()
) -> tuple[int, int]:
    """(profiles a line item's audience targeting matches, all profiles that can see ads), by
    each profile's usual region and device; kids profiles never see ads (one query)."""
    rule = Q()
    for field, values in (("region", regions), ("device", devices), ("age_band", age_bands)):
        if values := list(values):
            rule &= Q(**{f"{field}__in": values})
    counts = Viewer.objects.filter(is_kids=False).aggregate(
        matching=Count("pk", filter=rule or None), total=Count("pk")
    )
    return counts["matching"], counts["total"]
