"""The bench world of bench/decisions.py: a catalog, viewers and live demand, bulk-created from
a seeded RNG into an empty database in a few seconds (no signals, no validation: the numbers
below are chosen to be valid).

1,700 titles with 1–3 genres, a maturity rating and 2–5 ad breaks; 5,000 viewers (3 % kids
profiles); 30 advertisers in varied time zones, 4 campaigns each; 1,000 live line items (CPM and
CPC, even and ASAP, most targeting 1–3 attributes, some title lists and frequency caps) with 3
creatives each. Budgets are far above what the bench can spend (a line item wins at most one slot
per decision: ~150,000 decisions × $0.045 < $10,000 a day).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from ads.models import Advertiser, Campaign, Creative, Daypart, LineItem
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

TITLES = 1_700
VIEWERS = 5_000
ADVERTISERS = 30
CAMPAIGNS_PER_ADVERTISER = 4
LINE_ITEMS = 1_000
CREATIVES_PER_LINE_ITEM = 3
KIDS_SHARE = 0.03

GENRES = [
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
]  # fmt: skip
TIMEZONES = [
    "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
    "America/Sao_Paulo", "Europe/London", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney",
    "UTC",
]  # fmt: skip
RATINGS = {
    MaturityRating.G: 8,
    MaturityRating.PG: 20,
    MaturityRating.PG_13: 40,
    MaturityRating.R: 30,
    MaturityRating.NC_17: 2,
}
AGE_BANDS = {
    AgeBand.UNDER_18: 5,
    AgeBand.AGE_18_24: 15,
    AgeBand.AGE_25_34: 25,
    AgeBand.AGE_35_44: 22,
    AgeBand.AGE_45_54: 17,
    AgeBand.AGE_55_PLUS: 16,
}
REGIONS = {
    Region.NORTHEAST: 20,
    Region.SOUTHEAST: 17,
    Region.MIDWEST: 20,
    Region.SOUTH: 18,
    Region.WEST: 20,
    Region.INTERNATIONAL: 5,
}
DEVICES = {Device.CTV: 45, Device.MOBILE: 25, Device.DESKTOP: 15, Device.TABLET: 15}
# How many targeting attributes a line item sets, and how often each attribute is the one.
TARGETED_ATTRIBUTES = {0: 15, 1: 35, 2: 30, 3: 15, 4: 5}
ATTRIBUTES = {"genres": 30, "age_bands": 22, "devices": 18, "regions": 15, "maturity": 10}
DAYPART_SHARE = 0.05
INCLUDE_SHARE = 0.04
EXCLUDE_SHARE = 0.10
CAPPED_SHARE = 0.35


def _pick(rng: random.Random, weights: dict) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _some(rng: random.Random, values: list, low: int, high: int) -> list:
    return rng.sample(values, rng.randint(low, min(high, len(values))))


@dataclass
class World:
    """What requests are built from: break ids by title, viewers' usual devices."""

    breaks_by_title: dict[int, list[int]]
    viewer_devices: dict[str, str]

    def __post_init__(self) -> None:
        self._title_ids = list(self.breaks_by_title)
        self._viewer_ids = list(self.viewer_devices)

    def request(self, rng: random.Random) -> dict:
        """A decision request as a player sends it: an existing break, mostly the viewer's
        usual device."""
        title_id = rng.choice(self._title_ids)
        viewer_id = rng.choice(self._viewer_ids)
        device = self.viewer_devices[viewer_id]
        if rng.random() < 0.2:
            device = rng.choice(Device.values)
        return {
            "viewer_id": viewer_id,
            "title_id": title_id,
            "ad_break_id": rng.choice(self.breaks_by_title[title_id]),
            "device": device,
        }


def seed(seed_value: int = 20240601) -> World:
    rng = random.Random(seed_value)
    now = timezone.now()
    genres = Genre.objects.bulk_create(
        [Genre(name=name, slug=name.lower().replace("'", "").replace(" ", "-")) for name in GENRES]
    )
    titles = Title.objects.bulk_create(
        [
            Title(
                external_id=f"bench:{number}",
                name=f"Bench title {number}",
                year=rng.randint(1950, 2024),
                kind=Title.Kind.SERIES if rng.random() < 0.25 else Title.Kind.MOVIE,
                maturity_rating=_pick(rng, RATINGS),
                duration_seconds=rng.randint(80, 160) * 60,
            )
            for number in range(TITLES)
        ],
        batch_size=1000,
    )
    Title.genres.through.objects.bulk_create(
        [
            Title.genres.through(title_id=title.pk, genre_id=genre.pk)
            for title in titles
            for genre in _some(rng, genres, 1, 3)
        ],
        batch_size=2000,
    )
    ad_breaks = []
    for title in titles:
        mid_rolls = rng.randint(1, 4)
        slots = range(600, title.duration_seconds - 600, 60)
        offsets = [0, *sorted(rng.sample(slots, mid_rolls))]
        for offset in offsets:
            max_pod = rng.choice([30, 60]) if offset == 0 else rng.choice([90, 120, 120, 180])
            ad_breaks.append(
                AdBreak(title_id=title.pk, offset_seconds=offset, max_pod_duration_seconds=max_pod)
            )
    ad_breaks = AdBreak.objects.bulk_create(ad_breaks, batch_size=2000)
    breaks_by_title: dict[int, list[int]] = {}
    for ad_break in ad_breaks:
        breaks_by_title.setdefault(ad_break.title_id, []).append(ad_break.pk)

    viewers = []
    for number in range(VIEWERS):
        is_kids = rng.random() < KIDS_SHARE
        viewers.append(
            Viewer(
                external_id=f"bench-viewer-{number}",
                age_band=AgeBand.UNDER_18 if is_kids else _pick(rng, AGE_BANDS),
                gender=rng.choice(Gender.values),
                region=_pick(rng, REGIONS),
                device=_pick(rng, DEVICES),
                is_kids=is_kids,
            )
        )
    Viewer.objects.bulk_create(viewers, batch_size=2000)

    _seed_demand(rng, now, genres, titles)
    return World(
        breaks_by_title=breaks_by_title,
        viewer_devices={viewer.external_id: viewer.device for viewer in viewers},
    )


def _seed_demand(rng: random.Random, now, genres: list[Genre], titles: list[Title]) -> None:
    categories = Creative.Category.values
    advertisers = Advertiser.objects.bulk_create(
        [
            Advertiser(
                name=f"Bench brand {number}",
                slug=f"bench-brand-{number}",
                timezone=TIMEZONES[number % len(TIMEZONES)],
            )
            for number in range(ADVERTISERS)
        ]
    )
    campaigns = Campaign.objects.bulk_create(
        [
            Campaign(
                advertiser=advertiser,
                name=f"{advertiser.name} campaign {number}",
                objective=rng.choice(Campaign.Objective.values),
                start_date=now.date() - timedelta(days=30),
                end_date=None if rng.random() < 0.5 else now.date() + timedelta(days=60),
            )
            for advertiser in advertisers
            for number in range(CAMPAIGNS_PER_ADVERTISER)
        ]
    )
    # An advertiser sells mostly in one category (competitive separation then bites).
    main_category = {advertiser.pk: rng.choice(categories) for advertiser in advertisers}

    line_items, genre_links, title_links = [], [], []
    for number in range(LINE_ITEMS):
        campaign = rng.choice(campaigns)
        is_cpm = rng.random() < 0.7
        daily = Decimal(rng.randrange(10_000, 25_000, 500))
        line_item = LineItem(
            advertiser_id=campaign.advertiser_id,
            campaign=campaign,
            name=f"Bench line item {number}",
            start_at=now - timedelta(days=rng.randint(1, 20)),
            end_at=None if rng.random() < 0.6 else now + timedelta(days=rng.randint(5, 40)),
            pricing=LineItem.Pricing.CPM if is_cpm else LineItem.Pricing.CPC,
            bid=Decimal(rng.randint(800, 4500)) / 100
            if is_cpm
            else Decimal(rng.randint(40, 400)) / 100,
            daily_budget=daily,
            lifetime_budget=daily * 30,
            pacing=LineItem.Pacing.EVEN if rng.random() < 0.6 else LineItem.Pacing.ASAP,
        )
        if rng.random() < CAPPED_SHARE:
            line_item.frequency_cap_hour = rng.choice([None, 1, 2])
            line_item.frequency_cap_day = rng.choice([3, 4, 6])
            if rng.random() < 0.2:
                line_item.frequency_cap_lifetime = rng.choice([10, 20, 30])
        attributes: set[str] = set()
        while len(attributes) < int(_pick(rng, TARGETED_ATTRIBUTES)):
            attributes.add(_pick(rng, ATTRIBUTES))
        if "age_bands" in attributes:
            bands = AgeBand.values[1:]
            first = rng.randrange(len(bands) - 1)
            line_item.target_age_bands = bands[first : first + rng.randint(2, 3)]
        if "devices" in attributes:
            line_item.target_devices = _some(rng, Device.values, 1, 2)
        if "regions" in attributes:
            line_item.target_regions = _some(rng, Region.values, 1, 3)
        if "maturity" in attributes:
            line_item.target_maturity_ratings = rng.choice(
                [["G", "PG"], ["G", "PG", "PG-13"], ["PG-13", "R"], ["R", "NC-17"]]
            )
        if rng.random() < DAYPART_SHARE:
            line_item.target_dayparts = _some(rng, Daypart.values, 1, 2)
        line_items.append(line_item)
        genre_links.append(_some(rng, genres, 1, 4) if "genres" in attributes else [])
        title_links.append(
            (
                _some(rng, titles, 20, 150) if rng.random() < INCLUDE_SHARE else [],
                _some(rng, titles, 5, 40) if rng.random() < EXCLUDE_SHARE else [],
            )
        )
    line_items = LineItem.objects.bulk_create(line_items, batch_size=500)

    through = LineItem.target_genres.through
    through.objects.bulk_create(
        [
            through(lineitem_id=line_item.pk, genre_id=genre.pk)
            for line_item, linked in zip(line_items, genre_links, strict=True)
            for genre in linked
        ]
    )
    for position, relation in enumerate((LineItem.include_titles, LineItem.exclude_titles)):
        through = relation.through
        through.objects.bulk_create(
            [
                through(lineitem_id=line_item.pk, title_id=title.pk)
                for line_item, lists in zip(line_items, title_links, strict=True)
                for title in lists[position]
            ],
            batch_size=2000,
        )

    creatives = []
    for line_item in line_items:
        for number in range(CREATIVES_PER_LINE_ITEM):
            category = main_category[line_item.advertiser_id]
            if rng.random() < 0.15:
                category = rng.choice(categories)
            duration = rng.choices([15, 30, 60], weights=[30, 55, 15])[0]
            creatives.append(
                Creative(
                    advertiser_id=line_item.advertiser_id,
                    line_item=line_item,
                    name=f"{line_item.name} spot {number} ({duration} s)",
                    duration_seconds=duration,
                    media_url=f"https://cdn.example.com/bench/{line_item.pk}-{number}.mp4",
                    click_url=f"https://brand.example.com/bench/{line_item.pk}",
                    category=category,
                )
            )
    Creative.objects.bulk_create(creatives, batch_size=1000)
