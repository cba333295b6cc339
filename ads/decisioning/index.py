"""The in-memory index the engine decides from: no database query per decision.

A snapshot of the catalog (titles, ad breaks, viewers) and of every line item that could
deliver (not archived, flight not over, its campaign and account not stopped), with its active
creatives. Any save of demand or catalog bumps a version number in the counters
(`index_changed`); each process checks that version at most once a second and rebuilds when it
moved, so an edit reaches every process within about a second.

Scale note: viewers are held in memory too (a few bytes each: fine for a few million
profiles); beyond that the viewer table belongs in Redis, keyed by external id.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ads.delivery import keys
from ads.delivery.counters import MICROS, Bump, DeliveryStateUnavailable, counters
from ads.models import Advertiser, Campaign, Creative, DeliveryStatus, LineItem
from catalog import selectors as catalog_selectors
from catalog.models import AgeBand, Device, MaturityRating, Region

VERSION_CHECK_SECONDS = 1.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CreativeEntry:
    id: int
    line_item_id: int
    advertiser_id: int
    name: str
    duration_seconds: int
    media_url: str
    click_url: str
    category: str


@dataclass(slots=True)
class LineItemEntry:
    id: int
    advertiser_id: int
    campaign_id: int
    name: str
    tz: zoneinfo.ZoneInfo
    status: str
    campaign_status: str
    start_at: datetime
    end_at: datetime | None
    campaign_start: date
    campaign_end: date | None
    pricing: str
    bid_micros: int
    daily_budget_micros: int
    lifetime_budget_micros: int
    pacing: str
    cap_hour: int | None
    cap_day: int | None
    cap_lifetime: int | None
    genres: frozenset[int]
    maturity_ratings: frozenset[str]
    regions: frozenset[str]
    devices: frozenset[str]
    age_bands: frozenset[str]
    dayparts: frozenset[str]
    include_titles: frozenset[int]
    exclude_titles: frozenset[int]
    creatives: tuple[CreativeEntry, ...] = ()
    # Derived once here, not at each read: a decision reads them for every line item it walks.
    is_cpm: bool = field(init=False)
    price_micros: int = field(init=False)  # what one impression (CPM) or one click (CPC) costs
    capped: bool = field(init=False)  # any frequency cap: its reservation holds cap keys

    def __post_init__(self) -> None:
        self.is_cpm = self.pricing == LineItem.Pricing.CPM
        self.price_micros = self.bid_micros // 1000 if self.is_cpm else self.bid_micros
        self.capped = bool(self.cap_hour or self.cap_day or self.cap_lifetime)


@dataclass(frozen=True, slots=True)
class TitleEntry:
    id: int
    genres: frozenset[int]
    maturity_rating: str
    duration_seconds: int
    year: int | None = None
    genre_slugs: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class BreakEntry:
    id: int
    title_id: int
    offset_seconds: int
    max_pod_duration_seconds: int


@dataclass(frozen=True, slots=True)
class ViewerEntry:
    id: int
    external_id: str
    age_band: str
    region: str
    device: str
    is_kids: bool
    gender: str = ""


def _bits(positions) -> int:
    mask = 0
    for position in positions:
        mask |= 1 << position
    return mask


@dataclass
class TargetingMasks:
    """Targeting as bitmasks over the index's line items (bit i is line_items[i]), so that
    filtering a thousand line items is a dozen integer ANDs instead of a thousand loops.
    An attribute a line item does not target sets its bit in every value's mask."""

    everyone: int
    active: int
    device: dict[str, int]
    region: dict[str, int]
    age_band: dict[str, int]
    maturity: dict[str, int]
    no_genre: int
    genre: dict[int, int]
    no_include: int
    include: dict[int, int]
    exclude: dict[int, int]

    @classmethod
    def build(cls, line_items: list[LineItemEntry]) -> TargetingMasks:
        def by_value(attribute: str, values) -> dict[str, int]:
            return {
                value: _bits(
                    i
                    for i, li in enumerate(line_items)
                    if not getattr(li, attribute) or value in getattr(li, attribute)
                )
                for value in values
            }

        def posting(attribute: str) -> dict[int, int]:
            lists: dict[int, int] = {}
            for i, li in enumerate(line_items):
                for key in getattr(li, attribute):
                    lists[key] = lists.get(key, 0) | (1 << i)
            return lists

        return cls(
            everyone=(1 << len(line_items)) - 1,
            active=_bits(
                i
                for i, li in enumerate(line_items)
                if li.status == DeliveryStatus.ACTIVE
                and li.campaign_status == DeliveryStatus.ACTIVE
            ),
            device=by_value("devices", Device.values),
            region=by_value("regions", Region.values),
            age_band=by_value("age_bands", AgeBand.values),
            maturity=by_value("maturity_ratings", MaturityRating.values),
            no_genre=_bits(i for i, li in enumerate(line_items) if not li.genres),
            genre=posting("genres"),
            no_include=_bits(i for i, li in enumerate(line_items) if not li.include_titles),
            include=posting("include_titles"),
            exclude=posting("exclude_titles"),
        )

    def matching(self, *, title: TitleEntry, device: str, region: str, age_band: str) -> int:
        """Line items whose status and targeting admit this title, device, region, age band."""
        genres = self.no_genre
        for genre_id in title.genres:
            genres |= self.genre.get(genre_id, 0)
        return (
            self.active
            & self.device.get(device, 0)
            & self.region.get(region, 0)
            & self.age_band.get(age_band, 0)
            & self.maturity.get(title.maturity_rating, 0)
            & genres
            & (self.no_include | self.include.get(title.id, 0))
            & ~self.exclude.get(title.id, 0)
        )


@dataclass
class DemandIndex:
    version: int
    line_items: list[LineItemEntry]
    titles: dict[int, TitleEntry]
    breaks: dict[int, BreakEntry]
    breaks_by_offset: dict[tuple[int, int], BreakEntry]
    viewers: dict[str, ViewerEntry]
    masks: TargetingMasks
    advertiser_tz: dict[int, zoneinfo.ZoneInfo]
    advertiser_currency: dict[int, str] = field(default_factory=dict)
    advertiser_name: dict[int, str] = field(default_factory=dict)
    creatives: dict[int, CreativeEntry] = field(default_factory=dict)
    # Each title's breaks by offset, for break schedules (VMAP) without a query.
    breaks_by_title: dict[int, tuple[BreakEntry, ...]] = field(default_factory=dict)
    built_at: float = field(default_factory=time.monotonic)


def _micros(value) -> int:
    return int(round(value * MICROS))


def build_index(version: int) -> DemandIndex:
    """Read everything the engine needs in a handful of queries."""
    now = timezone.now()
    today = now.date()
    live_line_items = (
        LineItem.objects.exclude(status=DeliveryStatus.ARCHIVED)
        .exclude(campaign__status=DeliveryStatus.ARCHIVED)
        .filter(advertiser__is_active=True)
        .filter(Q(end_at__isnull=True) | Q(end_at__gt=now))
        .filter(Q(campaign__end_date__isnull=True) | Q(campaign__end_date__gte=today))
        .select_related("campaign", "advertiser")
        .prefetch_related("target_genres", "include_titles", "exclude_titles")
    )
    creatives_by_line_item: dict[int, list[CreativeEntry]] = {}
    creatives = Creative.objects.filter(
        status=DeliveryStatus.ACTIVE, line_item__in=[li.pk for li in live_line_items]
    ).order_by("id")
    for creative in creatives:
        creatives_by_line_item.setdefault(creative.line_item_id, []).append(
            CreativeEntry(
                id=creative.pk,
                line_item_id=creative.line_item_id,
                advertiser_id=creative.advertiser_id,
                name=creative.name,
                duration_seconds=creative.duration_seconds,
                media_url=creative.media_url,
                click_url=creative.click_url,
                category=creative.category,
            )
        )
    entries = []
    for line_item in live_line_items:
        campaign: Campaign = line_item.campaign
        entries.append(
            LineItemEntry(
                id=line_item.pk,
                advertiser_id=line_item.advertiser_id,
                campaign_id=campaign.pk,
                name=line_item.name,
                tz=line_item.advertiser.tzinfo,
                status=line_item.status,
                campaign_status=campaign.status,
                start_at=line_item.start_at,
                end_at=line_item.end_at,
                campaign_start=campaign.start_date,
                campaign_end=campaign.end_date,
                pricing=line_item.pricing,
                bid_micros=_micros(line_item.bid),
                daily_budget_micros=_micros(line_item.daily_budget),
                lifetime_budget_micros=_micros(line_item.lifetime_budget),
                pacing=line_item.pacing,
                cap_hour=line_item.frequency_cap_hour,
                cap_day=line_item.frequency_cap_day,
                cap_lifetime=line_item.frequency_cap_lifetime,
                genres=frozenset(genre.pk for genre in line_item.target_genres.all()),
                maturity_ratings=frozenset(line_item.target_maturity_ratings),
                regions=frozenset(line_item.target_regions),
                devices=frozenset(line_item.target_devices),
                age_bands=frozenset(line_item.target_age_bands),
                dayparts=frozenset(line_item.target_dayparts),
                include_titles=frozenset(title.pk for title in line_item.include_titles.all()),
                exclude_titles=frozenset(title.pk for title in line_item.exclude_titles.all()),
                creatives=tuple(creatives_by_line_item.get(line_item.pk, ())),
            )
        )
    genre_slugs = catalog_selectors.genre_slugs()
    genres_by_title = catalog_selectors.title_genre_ids()
    titles = {
        pk: TitleEntry(
            pk,
            frozenset(genres_by_title.get(pk, ())),
            maturity,
            duration,
            year,
            frozenset(genre_slugs[genre] for genre in genres_by_title.get(pk, ())),
        )
        for pk, maturity, duration, year in catalog_selectors.title_values(
            "maturity_rating", "duration_seconds", "year"
        )
    }
    breaks = {
        pk: BreakEntry(pk, title_id, offset, max_pod)
        for pk, title_id, offset, max_pod in catalog_selectors.ad_break_values(
            "title_id", "offset_seconds", "max_pod_duration_seconds"
        )
    }
    viewers = {
        external_id: ViewerEntry(pk, external_id, age_band, region, device, is_kids, gender)
        for pk, external_id, age_band, region, device, is_kids, gender in (
            catalog_selectors.viewer_values(
                "external_id", "age_band", "region", "device", "is_kids", "gender"
            )
        )
    }
    advertisers = list(Advertiser.objects.values_list("pk", "timezone", "currency", "name"))
    breaks_by_title: dict[int, list[BreakEntry]] = {}
    for entry in sorted(breaks.values(), key=lambda entry: entry.offset_seconds):
        breaks_by_title.setdefault(entry.title_id, []).append(entry)
    return DemandIndex(
        version=version,
        line_items=entries,
        titles=titles,
        breaks=breaks,
        breaks_by_offset={(b.title_id, b.offset_seconds): b for b in breaks.values()},
        viewers=viewers,
        masks=TargetingMasks.build(entries),
        advertiser_tz={pk: zoneinfo.ZoneInfo(zone) for pk, zone, _, _ in advertisers},
        advertiser_currency={pk: currency for pk, _, currency, _ in advertisers},
        advertiser_name={pk: name for pk, _, _, name in advertisers},
        creatives={c.id: c for li in entries for c in li.creatives},
        breaks_by_title={title_id: tuple(found) for title_id, found in breaks_by_title.items()},
    )


class IndexHolder:
    """The process's current index, rebuilt when the shared version moves."""

    def __init__(self) -> None:
        self._index: DemandIndex | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        # Set while a background refresher keeps the index current (servers): requests then
        # never pay for a version check or a rebuild, unless the refresher has fallen silent.
        self.background = False

    def get(self) -> DemandIndex:
        now = time.monotonic()
        index = self._index
        fresh_for = VERSION_CHECK_SECONDS * (5 if self.background else 1)
        if index is not None and now - self._checked_at < fresh_for:
            return index
        return self.refresh()

    def refresh(self) -> DemandIndex:
        """Check the shared version; rebuild when it moved."""
        index = self._index
        try:
            (version,) = counters().get_many([keys.index_version()])
        except DeliveryStateUnavailable:
            # Without the shared version, the index this process has is the best there is;
            # a first one is built under a version no store holds, so the next check after
            # the counters come back builds it again.
            if index is not None:
                self._checked_at = time.monotonic()
                return index
            version = -1
        self._checked_at = time.monotonic()
        if index is not None and index.version == version:
            return index
        with self._lock:
            if self._index is None or self._index.version != version:
                self._index = build_index(version)
                # The index is a few hundred thousand long-lived objects: move them out of
                # the collector's sight, so full collections stop pausing decisions.
                gc.collect()
                gc.freeze()
            return self._index

    def reset(self) -> None:
        self._index = None
        self._checked_at = 0.0


index_holder = IndexHolder()


def current_index() -> DemandIndex:
    return index_holder.get()


def warm_up() -> None:
    """Build the index at process start. A server must start even when the database is not
    reachable yet (the first decision then builds it), so a failure is logged, not raised."""
    try:
        current_index()
    except Exception:
        logger.warning("The decision index could not be built at start-up.", exc_info=True)


def index_changed() -> None:
    """Tell every process to rebuild its index (after the current transaction commits)."""
    transaction.on_commit(_bump_index_version)


def _bump_index_version() -> None:
    try:
        counters().add_many([Bump(keys.index_version(), 1)])
    except DeliveryStateUnavailable:
        # The change is committed; the processes see it when the counters come back (a heal
        # moves the version too).
        logger.warning("The index version could not be moved: the counters are unavailable.")
