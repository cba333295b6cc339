"""What a dashboard page shows, as text: KPI tiles, the chart's series and tables of cells.

A table is built once: each cell holds the text a person reads and, for counts and money, the
plain number the CSV export writes, so an export always says what the screen says, in a form a
spreadsheet reads ("$1,250.00" on the page is 1250.00 in CSV). Counts and money are written by
config.formats (thousands grouped, the currency's symbol), money has two decimals, rates are
percentages with two decimals, an undefined ratio is "—" (an empty cell in CSV), never zero.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property, partial

from django.urls import reverse

from ads import selectors as ads_selectors
from ads.models import Advertiser, Campaign, DeliveryStatus
from analytics import selectors
from analytics.forms import DateRange
from analytics.models import DailyBreakdown
from catalog.models import Device, Region
from config import formats

DASH = formats.DASH  # an undefined ratio (nothing shown, nothing clicked): not zero
DIMENSIONS = DailyBreakdown.Dimension
# Codes whose readable name lives in the catalog; genres and titles carry their own label.
VALUE_LABELS = {DIMENSIONS.REGION: dict(Region.choices), DIMENSIONS.DEVICE: dict(Device.choices)}


# How numbers are written: for people with config.formats (grouped, with the currency's
# symbol), in CSV and the chart's data as plain numbers.


def plain_money(value: Decimal | None) -> str:
    return DASH if value is None else f"{value:.2f}"


def percent(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.2f}%"


def decimal2(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}"


# Tables and tiles


@dataclass(frozen=True)
class Bar:
    """A horizontal bar: `fill` and `marker` in percent of its width."""

    fill: float
    marker: float

    @property
    def fill_css(self) -> str:
        return f"{self.fill:.1f}%"

    @property
    def marker_css(self) -> str:
        return f"{self.marker:.1f}%"


@dataclass(frozen=True)
class Cell:
    text: str
    href: str = ""
    numeric: bool = True
    bar: Bar | None = None
    plain: str = ""  # the number as CSV writes it, when the text is formatted for people

    @property
    def csv(self) -> str:
        text = self.plain or self.text
        return "" if text == DASH else text


def count_cell(value: int) -> Cell:
    return Cell(formats.count(value), plain=str(value))


def money_cell(value: Decimal | None, currency: str) -> Cell:
    return Cell(formats.money(value, currency), plain=plain_money(value))


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    headers: tuple[str, ...]
    rows: list[list[Cell]]
    empty: str
    note: str = ""

    @property
    def columns(self) -> list[tuple[str, bool]]:
        """Each header, and whether its column holds numbers (aligned right)."""
        numeric = [cell.numeric for cell in self.rows[0]] if self.rows else []
        return [
            (header, position > 0 and (not numeric or numeric[position]))
            for position, header in enumerate(self.headers)
        ]


@dataclass(frozen=True)
class Tile:
    key: str
    label: str
    value: str
    unit: str = ""


def kpi_headers(currency: str) -> tuple[str, ...]:
    return (
        "Impressions",
        "Clicks",
        "CTR",
        "Completion rate",
        f"Spend ({currency})",
        f"eCPM ({currency})",
        f"CPC ({currency})",
    )


def kpi_cells(kpis: selectors.Kpis, currency: str) -> list[Cell]:
    return [
        count_cell(kpis.impressions),
        count_cell(kpis.clicks),
        Cell(percent(kpis.ctr)),
        Cell(percent(kpis.completion_rate)),
        money_cell(kpis.spend, currency),
        money_cell(kpis.ecpm, currency),
        money_cell(kpis.cpc, currency),
    ]


def range_tiles(kpis: selectors.Kpis, currency: str) -> list[Tile]:
    return [
        Tile("impressions", "Impressions", formats.count(kpis.impressions)),
        Tile("clicks", "Clicks", formats.count(kpis.clicks)),
        Tile("ctr", "CTR", percent(kpis.ctr)),
        Tile("spend", "Spend", formats.money(kpis.spend, currency)),
        Tile("ecpm", "eCPM", formats.money(kpis.ecpm, currency)),
        Tile("cpc", "CPC", formats.money(kpis.cpc, currency)),
        Tile("completion_rate", "Completion rate", percent(kpis.completion_rate)),
        Tile("reach", "Reach (viewers)", formats.count(kpis.reach)),
        Tile("average_frequency", "Average frequency", decimal2(kpis.average_frequency)),
    ]


def live_tiles(today: dict, currency: str) -> list[Tile]:
    """The "Today (live)" strip; dashboard.js rewrites each value from the socket's messages
    with the same formats (the live strip carries the currency's affixes for it)."""
    return [
        Tile("impressions", "Impressions", formats.count(today["impressions"])),
        Tile("clicks", "Clicks", formats.count(today["clicks"])),
        Tile("ctr", "CTR", percent(today["ctr"])),
        Tile("completes", "Completes", formats.count(today["completes"])),
        Tile("completion_rate", "Completion rate", percent(today["completion_rate"])),
        Tile("spend", "Spend", formats.money(Decimal(today["spend"]), currency)),
    ]


class Report:
    """The numbers of one page: the account, or one campaign or line item of it, over a range."""

    def __init__(
        self,
        advertiser: Advertiser,
        dates: DateRange,
        *,
        campaign_id: int | None = None,
        line_item_id: int | None = None,
    ) -> None:
        self.advertiser = advertiser
        self.currency = advertiser.currency
        self.dates = dates
        self.scope = {
            "advertiser": advertiser,
            "start": dates.start,
            "end": dates.end,
            "campaign_id": campaign_id,
            "line_item_id": line_item_id,
        }

    @cached_property
    def series(self) -> list[dict]:
        return selectors.daily_series(**self.scope)

    def tiles(self) -> list[Tile]:
        return range_tiles(selectors.kpis(**self.scope), self.currency)

    def chart(self) -> dict:
        """The time series for Chart.js, spend rounded as in the table."""
        return {
            "labels": [point["day"].isoformat() for point in self.series],
            "impressions": [point["impressions"] for point in self.series],
            "clicks": [point["clicks"] for point in self.series],
            "spend": [float(plain_money(point["spend"])) for point in self.series],
            "currency": self.currency,
            "money_affixes": formats.currency_affixes(self.currency),
        }

    def daily_table(self) -> Table:
        rows = [
            [
                Cell(point["day"].isoformat(), numeric=False),
                count_cell(point["impressions"]),
                count_cell(point["clicks"]),
                Cell(
                    percent(
                        point["clicks"] / point["impressions"] if point["impressions"] else None
                    )
                ),
                money_cell(point["spend"], self.currency),
            ]
            for point in self.series
        ]
        return Table(
            name="daily",
            title="By day",
            headers=("Day", "Impressions", "Clicks", "CTR", f"Spend ({self.currency})"),
            rows=rows,
            empty="No days in the range.",
        )

    def breakdown_table(self, dimension: str) -> Table:
        labels = VALUE_LABELS.get(dimension, {})
        rows = [
            [
                Cell(labels.get(row["value"], row["label"]), numeric=False),
                *kpi_cells(row["kpis"], self.currency),
            ]
            for row in selectors.breakdown(dimension=dimension, **self.scope)
        ]
        title = DIMENSIONS(dimension).label
        note = "A title in several genres counts in each of them." if dimension == "genre" else ""
        return Table(
            name=dimension,
            title=f"By {title.lower()}",
            headers=(title, *kpi_headers(self.currency)),
            rows=rows,
            empty="No delivery in the range.",
            note=note,
        )

    def breakdown_tables(self) -> dict[str, Callable[[], Table]]:
        """The genre, region, device and title tables (hours have tables of their own)."""
        return {
            dimension: partial(self.breakdown_table, dimension)
            for dimension in DIMENSIONS
            if dimension != DIMENSIONS.HOUR
        }


def campaign_pacing(advertiser: Advertiser, now: dt.datetime) -> dict[int, selectors.Pacing]:
    """Each campaign's pacing today: its active line items' spend and even targets, summed
    (one query for the line items, one counter read)."""
    line_items = list(
        ads_selectors.line_item_list(advertiser=advertiser).filter(status=DeliveryStatus.ACTIVE)
    )
    pacing = selectors.pacing(advertiser=advertiser, line_items=line_items, at=now)
    by_campaign: dict[int, list[selectors.Pacing]] = defaultdict(list)
    for line_item in line_items:
        by_campaign[line_item.campaign_id].append(pacing[line_item.pk])
    return {
        campaign_id: selectors.Pacing(
            spent_today=sum((p.spent_today for p in parts), Decimal(0)),
            target_now=sum((p.target_now for p in parts), Decimal(0)),
            daily_budget=sum((p.daily_budget for p in parts), Decimal(0)),
            lifetime_remaining=sum((p.lifetime_remaining for p in parts), Decimal(0)),
        )
        for campaign_id, parts in by_campaign.items()
    }


def pacing_bar(pacing: selectors.Pacing) -> Bar:
    """Spent today against the daily budget (the bar's width), the even target as a marker."""
    budget = pacing.daily_budget
    if not budget:
        return Bar(fill=0.0, marker=0.0)
    return Bar(
        fill=min(100.0, float(pacing.spent_today / budget * 100)),
        marker=min(100.0, float(pacing.target_now / budget * 100)),
    )


def campaign_table(report: Report, *, now: dt.datetime, query: str) -> Table:
    """The overview's campaigns (`selectors.campaign_table`) with their pacing; each name links
    to the campaign's report over the same range (`query`)."""
    advertiser, currency = report.advertiser, report.currency
    pacing = campaign_pacing(advertiser, now)
    rows = []
    for row in selectors.campaign_table(
        advertiser=advertiser, start=report.dates.start, end=report.dates.end
    ):
        campaign: Campaign = row["campaign"]
        paced = pacing.get(campaign.pk)
        href = reverse("campaign_report", args=[advertiser.slug, campaign.pk]) + f"?{query}"
        rows.append(
            [
                Cell(campaign.name, href=href, numeric=False),
                Cell(campaign.get_status_display(), numeric=False),
                *kpi_cells(row["kpis"], currency),
                money_cell(paced.spent_today if paced else None, currency),
                money_cell(paced.target_now if paced else None, currency),
                money_cell(paced.daily_budget if paced else None, currency),
                Cell(
                    percent(paced.ratio if paced else None),
                    bar=pacing_bar(paced) if paced else None,
                ),
            ]
        )
    return Table(
        name="campaigns",
        title="Campaigns",
        headers=(
            "Campaign",
            "Status",
            *kpi_headers(currency),
            f"Spent today ({currency})",
            f"Even target now ({currency})",
            f"Daily budget ({currency})",
            "Pacing (spent / target)",
        ),
        rows=rows,
        empty="No campaigns yet (archived ones are not listed).",
        note=(
            "Pacing counts each campaign's active line items: today's spend against an even "
            "spread of their daily budgets over the day (the bar's width is the daily budget, "
            "the mark the even target now)."
        ),
    )
