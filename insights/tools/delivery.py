"""The delivery tools: pacing and budget left (the live counters, through `ads.selectors`), and
why a line item is not delivering (the decision engine's own checks)."""

from __future__ import annotations

import datetime as dt

from ads import selectors as ads_selectors
from ads.models import DeliveryStatus
from analytics import selectors
from insights.tools.base import Context, ToolError
from insights.tools.scope import resolve, scope_from


def _money(value) -> float:
    return round(float(value), 2)


def _delivery(delivery: ads_selectors.Delivery) -> dict:
    return {
        "spent_today": _money(delivery.spent_today),
        "target_now": _money(delivery.target_now),
        "daily_budget": _money(delivery.daily_budget),
        "spent_lifetime": _money(delivery.spent_lifetime),
        "lifetime_budget": _money(delivery.lifetime_budget),
        "budget_left": _money(max(0, delivery.lifetime_budget - delivery.spent_lifetime)),
        "lifetime_used_percent": round(delivery.lifetime_percent, 1),
        "state": delivery.state or "not_live",
    }


def pacing(context: Context, campaign: str = "", line_item: str = "") -> dict:
    """Today's spend against the even-pacing target, and the lifetime budget left: of one line
    item, one campaign, or each live campaign of the account."""
    advertiser = context.advertiser
    scope = scope_from(context, campaign, line_item)
    if scope.kind == "line_item":
        item = ads_selectors.line_item_get(advertiser=advertiser, line_item_id=scope.pk)
        found = ads_selectors.line_item_pacing(
            advertiser=advertiser, line_items=[item], at=context.now
        )
        rows = [{"name": item.name, **_delivery(found[item.pk])}]
    else:
        campaigns = list(
            ads_selectors.campaign_list(advertiser=advertiser).order_by("name")
            if scope.kind == "account"
            else [ads_selectors.campaign_get(advertiser=advertiser, campaign_id=scope.pk)]
        )
        found = ads_selectors.campaign_pacing(
            advertiser=advertiser, campaigns=campaigns, at=context.now
        )
        rows = [
            {"name": campaign.name, **_delivery(found[campaign.pk])}
            for campaign in campaigns
            if campaign.pk in found
        ]
    return {
        "kind": "pacing",
        "scope": scope.as_dict(),
        "day": context.today.isoformat(),
        "currency": advertiser.currency,
        "rows": rows,
    }


def why_not_delivering(context: Context, line_item: str = "", campaign: str = "") -> dict:
    """The decision engine's checks of a line item (or of each line item of a campaign that is
    not archived), with its impressions today and yesterday."""
    advertiser = context.advertiser
    if line_item:
        line_items = [resolve(context, "line_item", line_item)]
        scope = line_items[0]
    elif campaign:
        scope = resolve(context, "campaign", campaign)
        line_items = [
            resolve(context, "line_item", str(item.pk))
            for item in ads_selectors.line_item_list(advertiser=advertiser, campaign_id=scope.pk)
            if item.status != DeliveryStatus.ARCHIVED
        ]
    else:
        raise ToolError("Name the line item (or the campaign) to check.")
    today = context.today
    yesterday = today - dt.timedelta(days=1)
    results = []
    for item in line_items:
        checks = ads_selectors.line_item_delivery(advertiser=advertiser, line_item_id=item.pk)
        delivered = selectors.kpis(
            advertiser=advertiser, start=yesterday, end=yesterday, line_item_id=item.pk
        )
        results.append(
            {
                "line_item": item.name,
                "id": item.id,
                "delivering": all(check.ok for check in checks),
                "blocking": [
                    {"check": check.name, "detail": check.detail}
                    for check in checks
                    if not check.ok
                ],
                "checks": [
                    {"check": check.name, "ok": check.ok, "detail": check.detail}
                    for check in checks
                ],
                "impressions_yesterday": delivered.impressions,
            }
        )
    return {"kind": "diagnosis", "scope": scope.as_dict(), "line_items": results}
