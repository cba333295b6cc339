"""A small world for the decision engine: one title with a break, viewers, two advertisers."""

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from ads.decisioning import ranking
from ads.decisioning.engine import DecisionRequest, decide
from ads.decisioning.index import index_holder
from ads.decisioning.state import state_holder
from ads.models import Advertiser, Creative, LineItem
from catalog.models import AdBreak, Genre, Title, Viewer
from tests.factories import (
    AdBreakFactory,
    AdvertiserFactory,
    CreativeFactory,
    GenreFactory,
    LineItemFactory,
    PlayerFactory,
    TitleFactory,
    ViewerFactory,
)


@dataclass
class World:
    drama: Genre
    comedy: Genre
    title: Title
    ad_break: AdBreak
    viewer: Viewer
    kid: Viewer
    acme: Advertiser
    globex: Advertiser
    initech: Advertiser
    at: datetime

    def body(self, **overrides) -> dict:
        """A decision request's fields: the JSON a player posts, or a DecisionRequest's."""
        return {
            "viewer_id": self.viewer.external_id,
            "title_id": self.title.pk,
            "ad_break_id": self.ad_break.pk,
            "device": "ctv",
        } | overrides

    def request(self, **overrides) -> DecisionRequest:
        return DecisionRequest(**self.body(**overrides))

    def decide(self, at: datetime | None = None, seed: int = 7, **overrides):
        return decide(self.request(**overrides), at=at or self.at, rng=random.Random(seed))


def line_item_with_creative(
    advertiser: Advertiser,
    *,
    category: str = Creative.Category.BEVERAGES,
    duration: int = 30,
    creatives: int = 1,
    **fields,
) -> LineItem:
    targeting = {
        name: fields.pop(name)
        for name in ("target_genres", "include_titles", "exclude_titles")
        if name in fields
    }
    line_item = LineItemFactory(campaign__advertiser=advertiser, **fields)
    for name, values in targeting.items():
        getattr(line_item, name).set(values)
    for _ in range(creatives):
        CreativeFactory(
            line_item=line_item, advertiser=advertiser, category=category, duration_seconds=duration
        )
    return line_item


def rebuild() -> None:
    """What a version bump does in production, without waiting for the second to pass."""
    index_holder.reset()
    state_holder.reset()


@pytest.fixture
def player():
    """The web player the ad tags' tests name (`tag`)."""
    return PlayerFactory(public_id="web-player")


@pytest.fixture
def pod_of_two(world):
    """Two advertisers in different categories, so the break's pod holds both."""
    acme = line_item_with_creative(world.acme, category="beverages", duration=30)
    globex = line_item_with_creative(world.globex, category="travel", duration=15)
    return acme, globex


def tag(world, **overrides) -> dict:
    """An ad tag's query for the world's break (None drops a parameter)."""
    query = {
        "player": "web-player",
        "viewer": world.viewer.external_id,
        "title": world.title.pk,
        "break": world.ad_break.pk,
        "device": "ctv",
        "cb": "12345",
    }
    return {name: value for name, value in (query | overrides).items() if value is not None}


@pytest.fixture
def no_exploration(monkeypatch):
    monkeypatch.setattr(ranking, "EXPLORATION_SHARE", 0.0)


@pytest.fixture
def world(db) -> World:
    drama = GenreFactory(name="Drama", slug="drama")
    comedy = GenreFactory(name="Comedy", slug="comedy")
    title = TitleFactory(maturity_rating="PG-13", duration_seconds=5400)
    title.genres.set([drama])
    # 20:30 UTC today: prime time in UTC, inside every factory flight.
    now = datetime.now(UTC)
    at = now.replace(hour=20, minute=30, second=0, microsecond=0)
    if at > now:
        at -= timedelta(days=1)
    return World(
        drama=drama,
        comedy=comedy,
        title=title,
        ad_break=AdBreakFactory(title=title, offset_seconds=600, max_pod_duration_seconds=90),
        viewer=ViewerFactory(
            external_id="viewer-1", age_band="25_34", region="us_west", device="ctv"
        ),
        kid=ViewerFactory(external_id="kid-1", age_band="under_18", is_kids=True),
        acme=AdvertiserFactory(name="Acme", slug="acme", timezone="UTC"),
        globex=AdvertiserFactory(name="Globex", slug="globex", timezone="UTC"),
        initech=AdvertiserFactory(name="Initech", slug="initech", timezone="UTC"),
        at=at,
    )
