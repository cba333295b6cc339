"""The eligibility stages, in the order the engine applies them. Each check returns None when
the line item passes, or the name of the rule that removed it."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from ads.decisioning.index import BreakEntry, LineItemEntry, TitleEntry, ViewerEntry
from ads.delivery import keys
from ads.models import DeliveryStatus, daypart_at

# Stage names, in order; explain output names the stage and the rule.
LIVE, TARGETING, KIDS, BUDGET, FREQUENCY_CAP, PACING, POD = (
    "live",
    "targeting",
    "kids",
    "budget",
    "frequency_cap",
    "pacing",
    "pod",
)
STAGES = (LIVE, TARGETING, KIDS, BUDGET, FREQUENCY_CAP, PACING, POD)


class Context(NamedTuple):
    """What a decision is about, resolved from the index (a NamedTuple: made for every
    decision, at half a frozen dataclass's cost)."""

    at: datetime
    viewer: ViewerEntry
    title: TitleEntry
    ad_break: BreakEntry
    device: str
    region: str
    max_duration_seconds: int
    max_ads: int


def live_rejection(line_item: LineItemEntry, context: Context) -> str | None:
    """Status, flight dates and daypart, in the account's time zone."""
    if line_item.campaign_status != DeliveryStatus.ACTIVE:
        return "campaign_paused"
    if line_item.status != DeliveryStatus.ACTIVE:
        return "paused"
    local = context.at.astimezone(line_item.tz)
    if context.at < line_item.start_at or local.date() < line_item.campaign_start:
        return "not_started"
    if (line_item.end_at is not None and context.at >= line_item.end_at) or (
        line_item.campaign_end is not None and local.date() > line_item.campaign_end
    ):
        return "ended"
    if line_item.dayparts and daypart_at(local) not in line_item.dayparts:
        return "daypart"
    if not any(
        creative.duration_seconds <= context.max_duration_seconds
        for creative in line_item.creatives
    ):
        return "no_creative_fits" if line_item.creatives else "no_active_creative"
    return None


def targeting_rejection(line_item: LineItemEntry, context: Context) -> str | None:
    title = context.title
    if title.id in line_item.exclude_titles:
        return "title_excluded"
    if line_item.include_titles and title.id not in line_item.include_titles:
        return "title_not_included"
    if line_item.genres and not (line_item.genres & title.genres):
        return "genre"
    if line_item.maturity_ratings and title.maturity_rating not in line_item.maturity_ratings:
        return "maturity"
    if line_item.regions and context.region not in line_item.regions:
        return "region"
    if line_item.devices and context.device not in line_item.devices:
        return "device"
    if line_item.age_bands and context.viewer.age_band not in line_item.age_bands:
        return "age_band"
    return None


def budget_keys(line_item: LineItemEntry, at: datetime) -> tuple[str, str]:
    """The (day, lifetime) counters a line item's budget is checked against: money reserved by
    decisions for CPM (so concurrent decisions cannot overspend), money spent on clicks for CPC."""
    day = at.astimezone(line_item.tz).date()
    if line_item.is_cpm:
        return keys.reserved_day(line_item.id, day), keys.reserved_lifetime(line_item.id)
    return keys.spent_day(line_item.id, day), keys.spent_lifetime(line_item.id)


def budget_rejection(line_item: LineItemEntry, day_total: int, lifetime_total: int) -> str | None:
    price = line_item.price_micros
    if day_total + price > line_item.daily_budget_micros:
        return "daily_budget"
    if lifetime_total + price > line_item.lifetime_budget_micros:
        return "lifetime_budget"
    return None


def cap_keys(
    line_item: LineItemEntry, viewer_id: int, at: datetime, local: datetime | None = None
) -> list[tuple[str, int, int]]:
    """(key, cap, ttl) for each frequency cap the line item sets; `local`, when the caller
    has it, is `at` in the line item's account zone."""
    if local is None:
        local = at.astimezone(line_item.tz)
    caps = []
    if line_item.cap_hour:
        caps.append(
            (keys.cap_hour(line_item.id, viewer_id, local), line_item.cap_hour, keys.HOUR_TTL)
        )
    if line_item.cap_day:
        caps.append(
            (keys.cap_day(line_item.id, viewer_id, local.date()), line_item.cap_day, keys.DAY_TTL)
        )
    if line_item.cap_lifetime:
        caps.append(
            (keys.cap_lifetime(line_item.id, viewer_id), line_item.cap_lifetime, keys.LIFETIME_TTL)
        )
    return caps


CAP_RULES = {
    "h": "frequency_cap_hour",
    "d": "frequency_cap_day",
    "l": "frequency_cap_lifetime",
}


def cap_rejection(caps: list[tuple[str, int, int]], counts: list[int]) -> str | None:
    for (key, cap, _), count in zip(caps, counts, strict=True):
        if count + 1 > cap:
            period = key.rsplit(":", 1)[1][0]
            return CAP_RULES[period]
    return None
