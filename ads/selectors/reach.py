"""Selectors of the line item form's reach preview: what a targeting can reach, before saving.

Two sources, both read the way the decision engine matches a line item:

- the catalog: the titles and ad breaks the title rules match, the viewer profiles the audience
  rules match (by their usual region and device; kids profiles never see ads);
- recent traffic: ad breaks that played an ad (distinct decisions with an impression, of every
  account: the platform's inventory, not another account's rows) whose title, viewer, device,
  region and local hour the rules match, over the last `days` × 24 hours.

"A day" is one 24-hour period ending now, going back `days` of them, in the account's time
zone for dayparts; when the platform has less history than that, the average is over the
24-hour periods that hold traffic (at least one), so a young platform is not diluted by empty
days. Breaks where no ad played are not recorded, so the figure is a floor.
"""

import datetime as dt
import math
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Min, Q
from django.db.models.functions import ExtractHour
from django.utils import timezone

from ads.models import DAYPART_HOURS, AdEvent, Advertiser, LineItem
from catalog import selectors as catalog_selectors

RECENT_DAYS = 7


@dataclass(frozen=True)
class Targeting:
    """A line item's targeting rules, as the form holds them before saving (empty: anyone)."""

    genre_ids: list[int] = field(default_factory=list)
    maturity_ratings: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    age_bands: list[str] = field(default_factory=list)
    dayparts: list[str] = field(default_factory=list)
    include_title_ids: list[int] = field(default_factory=list)
    exclude_title_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Reach:
    titles: int
    titles_total: int
    ad_breaks: int  # cue points in the matching titles
    ad_breaks_total: int
    viewers: int  # matching profiles
    viewers_total: int  # profiles that can see ads
    days: int  # the 24-hour periods the daily figures are averaged over
    breaks_per_day: float  # matching ad breaks that played an ad, a day
    all_breaks_per_day: float  # every ad break that played an ad, a day
    recent_viewers: int  # distinct matching viewers in those periods
    impressions_per_day: float | None  # what the daily budget buys at a CPM bid; None for CPC

    @property
    def budget_limited(self) -> bool:
        """Whether the budget runs out before the matching traffic does (CPM only): one ad a
        break at most, so more impressions a day than breaks is more than the traffic holds."""
        return self.impressions_per_day is not None and self.impressions_per_day < (
            self.breaks_per_day
        )


def _hours(dayparts: list[str]) -> list[int]:
    hours = {hour % 24 for part in dayparts for hour in DAYPART_HOURS[part]}
    return sorted(hours)


def line_item_reach(
    *,
    advertiser: Advertiser,
    targeting: Targeting,
    pricing: str = LineItem.Pricing.CPM,
    bid: Decimal | None = None,
    daily_budget: Decimal | None = None,
    at: dt.datetime | None = None,
    days: int = RECENT_DAYS,
) -> Reach:
    """What `targeting` reaches for the account: catalog coverage and recent ad breaks a day
    (see the module's docstring for what a day is), and, for a CPM bid with a daily budget,
    the impressions a day the budget buys. Four queries, whatever the catalog's size."""
    at = at or timezone.now()
    titles = catalog_selectors.titles_matching(
        genre_ids=targeting.genre_ids,
        maturity_ratings=targeting.maturity_ratings,
        include_ids=targeting.include_title_ids,
        exclude_ids=targeting.exclude_title_ids,
    )
    inventory = catalog_selectors.inventory_reach(titles=titles)
    viewers, viewers_total = catalog_selectors.viewer_reach(
        regions=targeting.regions, devices=targeting.devices, age_bands=targeting.age_bands
    )

    # Per event, the rules the engine applies to a decision's context.
    rule = Q(title_id__in=titles.values("pk"))
    if targeting.regions:
        rule &= Q(region__in=targeting.regions)
    if targeting.devices:
        rule &= Q(device__in=targeting.devices)
    if targeting.age_bands:
        rule &= Q(viewer__age_band__in=targeting.age_bands)
    if targeting.dayparts:
        rule &= Q(local_hour__in=_hours(targeting.dayparts))
    since = at - dt.timedelta(days=days)
    traffic = (
        AdEvent.objects.occurred_between(since, at)
        .filter(event_type=AdEvent.Type.IMPRESSION)
        .annotate(local_hour=ExtractHour("occurred_at", tzinfo=advertiser.tzinfo))
        .aggregate(
            first=Min("occurred_at"),
            all_breaks=Count("decision_id", distinct=True),
            breaks=Count("decision_id", filter=rule, distinct=True),
            viewers=Count("viewer_id", filter=rule, distinct=True),
        )
    )
    first = traffic["first"]
    periods = 1 if first is None else max(1, math.ceil((at - first) / dt.timedelta(days=1)))
    periods = min(periods, days)

    impressions_per_day = None
    if pricing == LineItem.Pricing.CPM and bid and daily_budget and bid > 0:
        impressions_per_day = float(daily_budget / bid * 1000)
    return Reach(
        titles=inventory["titles"],
        titles_total=inventory["titles_total"],
        ad_breaks=inventory["ad_breaks"],
        ad_breaks_total=inventory["ad_breaks_total"],
        viewers=viewers,
        viewers_total=viewers_total,
        days=periods,
        breaks_per_day=traffic["breaks"] / periods,
        all_breaks_per_day=traffic["all_breaks"] / periods,
        recent_viewers=traffic["viewers"],
        impressions_per_day=impressions_per_day,
    )
