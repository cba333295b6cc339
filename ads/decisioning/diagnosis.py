"""“Why is my line item not delivering?” — the engine's own rules, applied to one line item
and summed over the audience instead of one request.

Each check says whether it lets the line item deliver now and why, in the account's words:
status, flight, daypart, creatives, the decision index, budgets, pacing, and how much of the
audience and catalog its targeting reaches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from ads.decisioning import eligibility, pacing
from ads.decisioning.index import DemandIndex, LineItemEntry, current_index
from ads.delivery import keys
from ads.delivery.counters import MICROS, counters
from ads.models import Daypart, DeliveryStatus, LineItem, daypart_at
from config import formats


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    # The answer changes by itself within seconds (the index catching up): ask again soon.
    pending: bool = False


def _money(micros: int, currency: str) -> str:
    return formats.money(Decimal(micros) / MICROS, currency)


def line_item_diagnosis(line_item: LineItem, *, at: datetime | None = None) -> list[Check]:
    """The checks for `line_item` (already scoped to its advertiser by the caller)."""
    at = at or timezone.now()
    advertiser = line_item.advertiser
    tz = advertiser.tzinfo
    local = timezone.localtime(at, tz)
    campaign = line_item.campaign
    checks = []

    status_ok = line_item.status == campaign.status == DeliveryStatus.ACTIVE
    if campaign.status != DeliveryStatus.ACTIVE:
        detail = f"The campaign “{campaign.name}” is {campaign.get_status_display().lower()}."
    elif line_item.status != DeliveryStatus.ACTIVE:
        detail = f"The line item is {line_item.get_status_display().lower()}."
    else:
        detail = "The line item and its campaign are active."
    checks.append(Check("Status", status_ok, detail))

    start_local = timezone.localtime(line_item.start_at, tz)
    if at < line_item.start_at or local.date() < campaign.start_date:
        checks.append(Check("Flight", False, f"Starts {start_local:%Y-%m-%d %H:%M}."))
    elif (line_item.end_at and at >= line_item.end_at) or (
        campaign.end_date and local.date() > campaign.end_date
    ):
        checks.append(Check("Flight", False, "The flight has ended."))
    else:
        end = (
            f"{timezone.localtime(line_item.end_at, tz):%Y-%m-%d %H:%M}"
            if line_item.end_at
            else "no end date"
        )
        checks.append(Check("Flight", True, f"Running since {start_local:%Y-%m-%d %H:%M}; {end}."))

    now_part = Daypart(daypart_at(local)).label
    if line_item.target_dayparts:
        wanted = ", ".join(Daypart(part).label for part in line_item.target_dayparts)
        ok = daypart_at(local) in line_item.target_dayparts
        detail = f"It is {now_part} in {advertiser.timezone}; the line item runs in: {wanted}."
        checks.append(Check("Daypart", ok, detail))

    creatives = list(line_item.creatives.filter(status=DeliveryStatus.ACTIVE))
    durations = ", ".join(sorted({f"{c.duration_seconds} s" for c in creatives}))
    checks.append(
        Check(
            "Creatives",
            bool(creatives),
            f"{len(creatives)} active ({durations})." if creatives else "No active creative.",
        )
    )

    index = current_index()
    entry = next((li for li in index.line_items if li.id == line_item.pk), None)
    if entry is None:
        # The index leaves out what cannot deliver (archived, ended, no creative): a failed
        # check above already says why. Only when nothing does is the index behind a change.
        if not advertiser.is_active:
            checks.append(Check("Account", False, "The account is deactivated."))
        elif all(check.ok for check in checks):
            checks.append(
                Check(
                    "Decision engine",
                    False,
                    "Not in the decision index yet (it refreshes within a second).",
                    pending=True,
                )
            )
        return checks
    checks += _budget_checks(entry, at, advertiser.currency)
    checks.append(_pacing_check(entry, at))
    checks.append(_reach_check(entry, index))
    return checks


def _budget_checks(entry: LineItemEntry, at: datetime, currency: str) -> list[Check]:
    day_key, lifetime_key = eligibility.budget_keys(entry, at)
    day_total, lifetime_total = counters().get_many([day_key, lifetime_key])
    rule = eligibility.budget_rejection(entry, day_total, lifetime_total)
    verb = "Reserved" if entry.is_cpm else "Spent"
    return [
        Check(
            "Daily budget",
            rule != "daily_budget",
            f"{verb} {_money(day_total, currency)} of {_money(entry.daily_budget_micros, currency)}"
            " today.",
        ),
        Check(
            "Lifetime budget",
            rule != "lifetime_budget",
            f"{verb} {_money(lifetime_total, currency)} of "
            f"{_money(entry.lifetime_budget_micros, currency)}.",
        ),
    ]


def _pacing_check(entry: LineItemEntry, at: datetime) -> Check:
    if entry.pacing != LineItem.Pacing.EVEN:
        return Check("Pacing", True, "As fast as possible: every eligible opportunity competes.")
    (stored,) = counters().get_many([keys.pacing_throttle(entry.id)])
    share = pacing.pass_probability(stored)
    if share == 0:
        return Check("Pacing", False, "Ahead of the even curve: waiting for the day to catch up.")
    return Check(
        "Pacing",
        True,
        f"Even: {share:.0%} of eligible opportunities compete, to spread the budget over the day.",
    )


def _reach_check(entry: LineItemEntry, index: DemandIndex) -> Check:
    viewers = [viewer for viewer in index.viewers.values() if not viewer.is_kids]
    reached_viewers = sum(
        1
        for viewer in viewers
        if (not entry.age_bands or viewer.age_band in entry.age_bands)
        and (not entry.regions or viewer.region in entry.regions)
        and (not entry.devices or viewer.device in entry.devices)
    )
    titles = list(index.titles.values())
    reached_titles = sum(
        1
        for title in titles
        if title.id not in entry.exclude_titles
        and (not entry.include_titles or title.id in entry.include_titles)
        and (not entry.genres or entry.genres & title.genres)
        and (not entry.maturity_ratings or title.maturity_rating in entry.maturity_ratings)
    )
    viewer_share = reached_viewers / len(viewers) if viewers else 0.0
    title_share = reached_titles / len(titles) if titles else 0.0
    return Check(
        "Audience",
        reached_viewers > 0 and reached_titles > 0,
        f"Targeting matches {viewer_share:.0%} of viewer profiles ({reached_viewers:,}) "
        f"and {title_share:.0%} of titles ({reached_titles:,}); kids profiles never see ads.",
    )
