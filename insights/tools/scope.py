"""Which campaign, line item or creative a question is about, by name (typos tolerated) or by
id, always among the account's own: another account's, by id or by name, is "not found" in the
same words as one that does not exist.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from ads import selectors as ads_selectors
from insights.tools.base import Context, ToolError

KINDS = {"campaign": "campaign", "line_item": "line item", "creative": "creative"}
# How close a misspelt name must be to an account's name (difflib's ratio).
CUTOFF = 0.72


@dataclass(frozen=True)
class Scope:
    """The account, or one campaign, line item or creative of it."""

    kind: str  # "account", "campaign", "line_item", "creative"
    id: int | None = None
    name: str = ""
    campaign_id: int | None = None
    line_item_id: int | None = None
    creative_id: int | None = None

    def as_dict(self) -> dict:
        return {"kind": self.kind, "id": self.id, "name": self.name}

    @property
    def pk(self) -> int:
        """The object's id (a scope of an object, not of the account)."""
        if self.id is None:
            raise ValueError("The account scope has no id.")
        return self.id

    @property
    def filters(self) -> dict:
        """The analytics selectors' scope arguments."""
        return {"campaign_id": self.campaign_id, "line_item_id": self.line_item_id}

    def describe(self, advertiser_name: str) -> str:
        return advertiser_name if self.kind == "account" else f"“{self.name}”"


def normalized(name: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", name.casefold()).split())


def candidates(context: Context, kind: str) -> list[tuple[int, str]]:
    """(id, name) of the account's objects of `kind`, archived too (a finished campaign's
    results are still asked about)."""
    advertiser = context.advertiser
    rows: Any
    if kind == "campaign":
        rows = ads_selectors.campaign_list(advertiser=advertiser, include_archived=True)
    elif kind == "line_item":
        rows = ads_selectors.line_item_list(advertiser=advertiser, include_archived=True)
    else:
        rows = ads_selectors.creative_list(advertiser=advertiser, include_archived=True)
    return [(row.pk, row.name) for row in rows]


def best_match(text: str, names: list[tuple[int, str]]) -> tuple[int, str] | None:
    """The name `text` means: the same name; else the one name containing it (or contained in
    it, whole words); else the closest spelling above CUTOFF."""
    wanted = normalized(text)
    if not wanted:
        return None
    by_name = {normalized(name): (pk, name) for pk, name in names}
    if wanted in by_name:
        return by_name[wanted]
    padded = f" {wanted} "
    containing = [key for key in by_name if padded in f" {key} "]
    if containing:
        return by_name[min(containing, key=len)]
    close = difflib.get_close_matches(wanted, list(by_name), n=1, cutoff=CUTOFF)
    if close:
        return by_name[close[0]]
    # A misspelt name that starts a longer one ("sumer refresh" for "Summer Refresh · Prime").
    prefixes = {key[: len(wanted) + 2]: key for key in by_name}
    close = difflib.get_close_matches(wanted, list(prefixes), n=1, cutoff=CUTOFF + 0.08)
    return by_name[prefixes[close[0]]] if close else None


def resolve(context: Context, kind: str, reference: str) -> Scope:
    """The account's object of `kind` that `reference` (a name or an id) names; ToolError,
    the same for another account's object and for none, otherwise."""
    names = candidates(context, kind)
    match = None
    if reference.isdigit():
        match = next(((pk, name) for pk, name in names if pk == int(reference)), None)
    else:
        match = best_match(reference, names)
    if match is None:
        label = KINDS[kind]
        if reference.isdigit():
            raise ToolError(f"No {label} with id {reference} in this account.")
        raise ToolError(f"No {label} named “{reference}” in this account.")
    return scope_of(context, kind, match[0])


def scope_of(context: Context, kind: str, pk: int) -> Scope:
    advertiser = context.advertiser
    if kind == "campaign":
        campaign = ads_selectors.campaign_get(advertiser=advertiser, campaign_id=pk)
        return Scope("campaign", pk, campaign.name, campaign_id=pk)
    if kind == "line_item":
        line_item = ads_selectors.line_item_get(advertiser=advertiser, line_item_id=pk)
        return Scope("line_item", pk, line_item.name, line_item_id=pk)
    creative = ads_selectors.creative_get(advertiser=advertiser, creative_id=pk)
    return Scope("creative", pk, creative.name, line_item_id=creative.line_item_id, creative_id=pk)


def scope_from(
    context: Context, campaign: str = "", line_item: str = "", creative: str = ""
) -> Scope:
    """The narrowest of the scope arguments given (the account when none is)."""
    if creative:
        return resolve(context, "creative", creative)
    if line_item:
        return resolve(context, "line_item", line_item)
    if campaign:
        return resolve(context, "campaign", campaign)
    return Scope("account", name=context.advertiser.name)


def list_campaigns(context: Context, status: str = "all") -> dict:
    rows = ads_selectors.campaign_list(
        advertiser=context.advertiser,
        include_archived=True,
        status="" if status == "all" else status,
    ).order_by("name")
    return {
        "kind": "list",
        "campaigns": [
            {
                "id": campaign.pk,
                "name": campaign.name,
                "status": campaign.status,
                "start_date": campaign.start_date.isoformat(),
                "end_date": campaign.end_date.isoformat() if campaign.end_date else None,
                "line_items": getattr(campaign, "line_item_count", 0),
            }
            for campaign in rows
        ],
    }


def list_line_items(context: Context, campaign: str = "", status: str = "all") -> dict:
    campaign_id = resolve(context, "campaign", campaign).id if campaign else None
    rows = ads_selectors.line_item_list(
        advertiser=context.advertiser,
        campaign_id=campaign_id,
        include_archived=True,
        status="" if status == "all" else status,
    ).order_by("campaign__name", "name")
    return {
        "kind": "list",
        "line_items": [
            {
                "id": line_item.pk,
                "name": line_item.name,
                "campaign": line_item.campaign.name,
                "status": line_item.status,
                "pricing": line_item.pricing,
                "bid": float(line_item.bid),
                "daily_budget": float(line_item.daily_budget),
                "lifetime_budget": float(line_item.lifetime_budget),
            }
            for line_item in rows
        ],
    }
