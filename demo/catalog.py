"""A synthetic catalog for the demo when MovieLens is not at hand: titles with ad breaks, and
viewers, drawn from a seeded random generator so every run makes the same ones."""

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from django.db import transaction

from ads import services as ads_services
from catalog.models import AgeBand, Device, Gender, MaturityRating, Region, Title
from catalog.services import (
    TitleSpec,
    ViewerSpec,
    ad_breaks_ensure,
    genres_upsert,
    titles_upsert,
    viewers_upsert,
)
from demo.movielens import (
    GENRE_TOKENS,
    duration_for,
    genre_name_and_slug,
    maturity_for_genres,
)

SYNTHETIC_PREFIX = "demo:"
Choice = TypeVar("Choice", bound=str)
SEED = 20_240_601

# Synthetic titles are named <adjective> <noun>: 625 names before one repeats.
ADJECTIVES = (  # noqa: SIM905 - a word list reads better as words
    "Silent Crimson Hidden Golden Broken Electric Midnight Frozen Wild Last Distant Hollow "
    "Secret Burning Quiet Northern Paper Iron Velvet Lost Bright Shadow Summer Winter Glass"
).split()
NOUNS = (  # noqa: SIM905
    "Harbor Signal Orchard Kingdom Frontier Letters Engine Garden Horizon Tide Circuit Lantern "
    "Passage Voyage Empire Canyon Echo Island Archive Meadow Station River Crown Compass Mirror"
).split()

# Rough shares of the audience, so the demo's reach figures look like a streaming service's.
AGE_BAND_WEIGHTS = {
    AgeBand.UNDER_18: 8,
    AgeBand.AGE_18_24: 16,
    AgeBand.AGE_25_34: 24,
    AgeBand.AGE_35_44: 21,
    AgeBand.AGE_45_54: 16,
    AgeBand.AGE_55_PLUS: 15,
}
GENDER_WEIGHTS = {Gender.FEMALE: 48, Gender.MALE: 48, Gender.UNKNOWN: 4}
REGION_WEIGHTS = {
    Region.NORTHEAST: 17,
    Region.SOUTHEAST: 20,
    Region.MIDWEST: 21,
    Region.SOUTH: 14,
    Region.WEST: 20,
    Region.INTERNATIONAL: 8,
}
DEVICE_WEIGHTS = {Device.CTV: 45, Device.MOBILE: 25, Device.DESKTOP: 15, Device.TABLET: 15}


@dataclass(frozen=True)
class CatalogCounts:
    genres: int
    titles: int
    ad_breaks: int
    viewers: int


def synthetic_catalog_ensure(*, titles: int, viewers: int, seed: int = SEED) -> CatalogCounts:
    """Create (or find) `titles` titles and `viewers` viewer profiles with ``demo:`` external
    ids, drawn from a random generator seeded with `seed`: the MovieLens genres, every maturity
    rating, movies and (one title in six) series with ad breaks, and viewers in every age band,
    gender, region and device, about half of the under-18s on kids profiles."""
    rng = random.Random(seed)
    genres = dict(genre_name_and_slug(token)[::-1] for token in GENRE_TOKENS)
    genre_slugs = list(genres)
    names = [f"{adjective} {noun}" for adjective in ADJECTIVES for noun in NOUNS]
    rng.shuffle(names)
    title_specs = []
    for index in range(titles):
        external_id = f"{SYNTHETIC_PREFIX}title:{index + 1}"
        name = names[index % len(names)]
        if index >= len(names):
            name = f"{name} {index // len(names) + 1}"
        primary = genre_slugs[index % len(genre_slugs)]
        others = [slug for slug in genre_slugs if slug != primary]
        slugs = (primary, *rng.sample(others, k=rng.choice((0, 1, 1, 2))))
        maturity = maturity_for_genres(frozenset(slugs))
        if maturity == MaturityRating.R and rng.random() < 0.25:
            maturity = MaturityRating.NC_17
        elif maturity == MaturityRating.PG_13 and rng.random() < 0.2:
            maturity = MaturityRating.PG
        is_series = index % 6 == 5
        # A series row stands for its episodes: a half-hour or an hour slot.
        duration = rng.choice((22, 44)) * 60 if is_series else duration_for(external_id)
        title_specs.append(
            TitleSpec(
                external_id=external_id,
                name=name,
                year=rng.randint(1960, 2025),
                kind=Title.Kind.SERIES if is_series else Title.Kind.MOVIE,
                maturity_rating=maturity,
                duration_seconds=duration,
                genre_slugs=slugs,
            )
        )
    viewer_specs = []
    for index in range(viewers):
        age_band = _weighted(rng, AGE_BAND_WEIGHTS)
        viewer_specs.append(
            ViewerSpec(
                external_id=f"{SYNTHETIC_PREFIX}viewer:{index + 1}",
                age_band=age_band,
                gender=_weighted(rng, GENDER_WEIGHTS),
                region=_weighted(rng, REGION_WEIGHTS),
                device=_weighted(rng, DEVICE_WEIGHTS),
                # About half of the under-18s are children on a kids profile.
                is_kids=age_band == AgeBand.UNDER_18 and rng.random() < 0.5,
            )
        )
    with transaction.atomic():
        genres_upsert(genres=genres)
        by_external_id = titles_upsert(titles=title_specs)
        ad_break_count = ad_breaks_ensure(titles=by_external_id.values())
        viewers_upsert(viewers=viewer_specs)
        ads_services.index_changed()  # bulk writes send no signals
    return CatalogCounts(
        genres=len(genres), titles=titles, ad_breaks=ad_break_count, viewers=viewers
    )


def _weighted(rng: random.Random, weights: Mapping[Choice, int]) -> Choice:
    return rng.choices(list(weights), weights=list(weights.values()))[0]
