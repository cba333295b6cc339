"""The simulated population's world and habits: who watches what, on which screen, and when.

`World.load` reads the catalog (viewers; titles with genres and ad breaks) and the demand's
creatives once. The habits are seeded: each viewer's taste in genres is a hash of the seed and
the viewer, each title's popularity a hash of the seed and the title, so the same seed on the
same world gives the same audience.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ads.models import Advertiser, Creative, LineItem
from catalog.models import REGION_TIMEZONES, AdBreak, MaturityRating, Title, Viewer
from demo.simulation.profiles import (
    BreakProfile,
    CreativeProfile,
    TitleProfile,
    ViewerProfile,
)

# Relative chance that a session starts in each local hour: a late-evening peak, a lunch bump
# and a quiet night. Weekends lift the daytime hours.
DIURNAL_WEIGHTS = (
    3.0, 1.8, 1.0, 0.6, 0.5, 0.6, 1.2, 2.0, 2.4, 2.4, 2.6, 2.8,
    3.4, 3.2, 3.0, 3.2, 3.8, 4.8, 6.2, 8.0, 9.5, 10.0, 8.0, 5.2,
)  # fmt: skip
WEEKEND_DAYTIME_LIFT = 1.6
WEEKEND_DAYTIME_HOURS = range(9, 18)
MAX_DIURNAL_WEIGHT = max(
    max(DIURNAL_WEIGHTS),
    max(DIURNAL_WEIGHTS[hour] * WEEKEND_DAYTIME_LIFT for hour in WEEKEND_DAYTIME_HOURS),
)
# The share of sessions on another screen than the profile's usual one, and which.
OTHER_DEVICE_SHARE = 0.2
DEVICE_WEIGHTS = {"ctv": 45, "mobile": 25, "desktop": 15, "tablet": 15}
# Popularity: the title of popularity rank r (from 1) is chosen with weight r ** -POPULARITY_SKEW.
POPULARITY_SKEW = 0.9
# How often a viewer picks by taste (a genre first) rather than from what is popular.
BY_TASTE_SHARE = 0.75
# What each audience may watch.
KIDS_RATINGS = frozenset({MaturityRating.G, MaturityRating.PG})
TEEN_RATINGS = KIDS_RATINGS | {MaturityRating.PG_13}


def stable_unit(*parts: object) -> float:
    """A number in (0, 1) from `parts`, the same in every process (unlike Python's `hash`)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2**64


def derived_seed(*parts: object) -> int:
    """A seed for one purpose (a session, the decisions) from the run's seed and names."""
    return int(stable_unit(*parts) * 2**62)


@dataclass
class Shelf:
    """The titles one audience may pick, with cumulative popularity weights for bisecting."""

    titles: list[TitleProfile]
    cumulative: list[float]
    by_genre: dict[str, tuple[list[TitleProfile], list[float]]]

    @classmethod
    def build(cls, titles: list[TitleProfile], popularity: dict[int, float]) -> Shelf:
        def stack(chosen: list[TitleProfile]) -> tuple[list[TitleProfile], list[float]]:
            return chosen, list(itertools.accumulate(popularity[title.id] for title in chosen))

        genres = sorted({genre for title in titles for genre in title.genres})
        all_titles, cumulative = stack(titles)
        return cls(
            titles=all_titles,
            cumulative=cumulative,
            by_genre={
                genre: stack([title for title in titles if genre in title.genres])
                for genre in genres
            },
        )

    @staticmethod
    def _pick(rng: random.Random, titles: list[TitleProfile], cumulative: list[float]):
        point = rng.random() * cumulative[-1]
        return titles[min(bisect.bisect_right(cumulative, point), len(titles) - 1)]

    def pick(self, rng: random.Random, genre: str | None = None) -> TitleProfile:
        if genre is not None and genre in self.by_genre:
            return self._pick(rng, *self.by_genre[genre])
        return self._pick(rng, self.titles, self.cumulative)


@dataclass
class World:
    seed: int
    viewers: list[ViewerProfile]
    titles: dict[int, TitleProfile]
    shelves: dict[str, Shelf]
    creatives: dict[int, CreativeProfile] = field(default_factory=dict)
    # Per line item: (is CPM, price of an impression (CPM) or click (CPC) in micros).
    prices: dict[int, tuple[bool, int]] = field(default_factory=dict)
    currencies: dict[int, str] = field(default_factory=dict)  # by advertiser id
    line_items: dict[int, int] = field(default_factory=dict)  # by creative id
    _tastes: dict[int, tuple[list[str], list[float]]] = field(default_factory=dict)

    @classmethod
    def load(cls, *, seed: int) -> World:
        """Everything the simulator needs from the database, in a handful of queries."""
        viewers = [
            ViewerProfile(*row)
            for row in Viewer.objects.order_by("pk").values_list(
                "pk", "external_id", "age_band", "gender", "region", "device", "is_kids"
            )
        ]
        breaks: dict[int, list[BreakProfile]] = {}
        for pk, title_id, offset, max_pod in AdBreak.objects.order_by(
            "title_id", "offset_seconds"
        ).values_list("pk", "title_id", "offset_seconds", "max_pod_duration_seconds"):
            breaks.setdefault(title_id, []).append(BreakProfile(pk, offset, max_pod))
        genres: dict[int, set[str]] = {}
        for title_id, slug in Title.genres.through.objects.values_list("title_id", "genre__slug"):
            genres.setdefault(title_id, set()).add(slug)
        titles = {
            pk: TitleProfile(
                id=pk,
                kind=kind,
                genres=frozenset(genres.get(pk, ())),
                maturity_rating=maturity,
                year=year,
                duration_seconds=duration,
                breaks=tuple(breaks.get(pk, ())),
            )
            for pk, kind, maturity, year, duration in Title.objects.order_by("pk").values_list(
                "pk", "kind", "maturity_rating", "year", "duration_seconds"
            )
        }
        world = cls(seed=seed, viewers=viewers, titles=titles, shelves={})
        world._build_shelves()
        world.demand_refresh()
        return world

    def _build_shelves(self) -> None:
        ordered = sorted(self.titles.values(), key=lambda t: stable_unit(self.seed, "pop", t.id))
        popularity = {
            title.id: (rank + 1) ** -POPULARITY_SKEW for rank, title in enumerate(ordered)
        }
        titles = list(self.titles.values())
        audiences = {
            "kids": [title for title in titles if title.maturity_rating in KIDS_RATINGS],
            "teen": [title for title in titles if title.maturity_rating in TEEN_RATINGS],
            "adult": titles,
        }
        self.shelves = {
            audience: Shelf.build(chosen, popularity)
            for audience, chosen in audiences.items()
            if chosen
        }

    def demand_refresh(self) -> None:
        """(Re)read the creatives and prices: the live mode meets creatives made after start.

        A platform-wide read of the ads app's tables, as the decision engine's index does; the
        simulator is staff tooling, not a tenant's view."""
        creatives = Creative.objects.values_list(
            "pk", "advertiser_id", "category", "duration_seconds", "line_item_id"
        )
        self.creatives, self.line_items = {}, {}
        for pk, advertiser_id, category, duration, line_item_id in creatives:
            self.creatives[pk] = CreativeProfile(pk, advertiser_id, category, duration)
            self.line_items[pk] = line_item_id
        self.prices = {
            pk: (
                pricing == LineItem.Pricing.CPM,
                round(bid * 1_000) if pricing == LineItem.Pricing.CPM else round(bid * 1_000_000),
            )
            for pk, pricing, bid in LineItem.objects.values_list("pk", "pricing", "bid")
        }
        self.currencies = dict(Advertiser.objects.values_list("pk", "currency"))

    # -- habits ----------------------------------------------------------------------------

    @staticmethod
    def timezone_of(viewer: ViewerProfile) -> zoneinfo.ZoneInfo:
        return _zone(REGION_TIMEZONES.get(viewer.region, "UTC"))

    def shelf_for(self, viewer: ViewerProfile) -> Shelf:
        if viewer.is_kids:
            audience = "kids"
        elif viewer.age_band == "under_18":
            audience = "teen"
        else:
            audience = "adult"
        return self.shelves.get(audience) or self.shelves["adult"]

    def taste(self, viewer: ViewerProfile) -> tuple[list[str], list[float]]:
        """A viewer's genres with cumulative weights: a few favourites, the rest faint."""
        cached = self._tastes.get(viewer.id)
        if cached is None:
            genres = sorted(self.shelf_for(viewer).by_genre)
            weights = [
                0.15 + 4.0 * stable_unit(self.seed, "taste", viewer.external_id, genre) ** 4
                for genre in genres
            ]
            cached = (genres, list(itertools.accumulate(weights)))
            self._tastes[viewer.id] = cached
        return cached

    def affinity(self, viewer: ViewerProfile, title: TitleProfile) -> float:
        """How much the viewer likes the title's genres, 0 to 1 (their best genre's weight)."""
        if not title.genres:
            return 0.0
        return max(
            stable_unit(self.seed, "taste", viewer.external_id, genre) ** 4
            for genre in title.genres
        )

    def pick_title(self, viewer: ViewerProfile, rng: random.Random) -> TitleProfile:
        shelf = self.shelf_for(viewer)
        genre = None
        if rng.random() < BY_TASTE_SHARE:
            genres, cumulative = self.taste(viewer)
            if genres:
                point = rng.random() * cumulative[-1]
                genre = genres[min(bisect.bisect_right(cumulative, point), len(genres) - 1)]
        return shelf.pick(rng, genre)

    @staticmethod
    def pick_device(viewer: ViewerProfile, rng: random.Random) -> str:
        if rng.random() >= OTHER_DEVICE_SHARE:
            return viewer.device
        others = {device: w for device, w in DEVICE_WEIGHTS.items() if device != viewer.device}
        return rng.choices(list(others), weights=list(others.values()))[0]

    def pick_start(
        self, viewer: ViewerProfile, rng: random.Random, day_start: datetime
    ) -> datetime:
        """A start time in the 24 hours from `day_start`, following the diurnal curve in the
        viewer's own time zone (rejection sampling)."""
        tz = self.timezone_of(viewer)
        while True:
            at = day_start + timedelta(seconds=rng.random() * 86_400)
            local = at.astimezone(tz)
            weight = DIURNAL_WEIGHTS[local.hour]
            if local.weekday() >= 5 and local.hour in WEEKEND_DAYTIME_HOURS:
                weight *= WEEKEND_DAYTIME_LIFT
            if rng.random() * MAX_DIURNAL_WEIGHT < weight:
                return at.replace(microsecond=0)


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; the means here are small)."""
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


_zones: dict[str, zoneinfo.ZoneInfo] = {}


def _zone(name: str) -> zoneinfo.ZoneInfo:
    zone = _zones.get(name)
    if zone is None:
        zone = _zones[name] = zoneinfo.ZoneInfo(name)
    return zone
