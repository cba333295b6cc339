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
from dataclasses import dataclass, replace
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
    """A horizontal bar: `fill` and `marker` (if any) in percent of its width."""

    fill: float
    marker: float | None = None

    @property
    def fill_css(self) -> str:
        return f"{self.fill:.1f}%"

    @property
    def marker_css(self) -> str:
        return "" if self.marker is None else f"{self.marker:.1f}%"


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
    change: str = ""  # against the previous period: "+12 (+4.50%)"
    trend: str = ""  # "up", "down" or "" (no change, or nothing to compare with)


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


# Period comparison: each KPI of a tile, and how its value and its change are written. A rate's
# change is in percentage points ("+1.20 pp"); every change also relative to the previous value
# ("+4.50%"), undefined ("—") when the previous value is zero or undefined. Signs are written:
# "+" for a rise (CSV keeps it only where the cell is a text, like the percentages).


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    kind: str  # count, money, rate or decimal

    def value(self, kpis: selectors.Kpis) -> int | float | Decimal | None:
        return getattr(kpis, self.key)


METRICS = [
    Metric("impressions", "Impressions", "count"),
    Metric("clicks", "Clicks", "count"),
    Metric("ctr", "CTR", "rate"),
    Metric("spend", "Spend", "money"),
    Metric("ecpm", "eCPM", "money"),
    Metric("cpc", "CPC", "money"),
    Metric("completion_rate", "Completion rate", "rate"),
    Metric("reach", "Reach (viewers)", "count"),
    Metric("average_frequency", "Average frequency", "decimal"),
]


def metric_cell(metric: Metric, value, currency: str) -> Cell:
    if metric.kind == "count":
        return count_cell(value)
    if metric.kind == "money":
        return money_cell(value, currency)
    if metric.kind == "rate":
        return Cell(percent(value))
    return Cell(decimal2(value))


def change_cell(metric: Metric, current, previous, currency: str) -> Cell:
    """current − previous, written as its metric is, with its sign."""
    if current is None or previous is None:
        return Cell(DASH)
    difference = current - previous
    if metric.kind == "rate":
        return Cell(f"{difference * 100:+.2f} pp")
    plus = "+" if difference > 0 else ""
    if metric.kind == "count":
        return Cell(plus + formats.count(difference), plain=str(difference))
    if metric.kind == "money":
        return Cell(plus + formats.money(difference, currency), plain=plain_money(difference))
    return Cell(f"{difference:+.2f}", plain=f"{difference:.2f}")


def relative_change(current, previous) -> str:
    """(current − previous) / previous, as a signed percentage."""
    if current is None or not previous:
        return DASH
    return f"{(current - previous) / previous * 100:+.2f}%"


def range_tiles(
    kpis: selectors.Kpis, currency: str, previous: selectors.Kpis | None = None
) -> list[Tile]:
    """A tile per KPI of the range; with `previous`, each says its change against it."""
    tiles = []
    for metric in METRICS:
        current_value = metric.value(kpis)
        tile = Tile(metric.key, metric.label, metric_cell(metric, current_value, currency).text)
        if previous is not None:
            previous_value = metric.value(previous)
            change = change_cell(metric, current_value, previous_value, currency).text
            relative = relative_change(current_value, previous_value)
            trend = ""
            if current_value is not None and previous_value is not None:
                trend = "up" if current_value > previous_value else ""
                trend = "down" if current_value < previous_value else trend
            tile = replace(
                tile,
                change=change if relative == DASH else f"{change} ({relative})",
                trend=trend,
            )
        tiles.append(tile)
    return tiles


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

    @cached_property
    def comparison(self) -> selectors.Comparison:
        return selectors.kpis_against_previous(**self.scope)

    @cached_property
    def hours(self) -> list[dict]:
        return selectors.by_hour_of_day(**self.scope)

    def tiles(self) -> list[Tile]:
        return range_tiles(self.comparison.current, self.currency, self.comparison.previous)

    @property
    def previous_range(self) -> str:
        comparison = self.comparison
        return f"{comparison.previous_start.isoformat()} to {comparison.previous_end.isoformat()}"

    def comparison_table(self) -> Table:
        """Each KPI of the range beside the previous range's, with the change."""
        current, previous = self.comparison.current, self.comparison.previous
        rows = []
        for metric in METRICS:
            now, before = metric.value(current), metric.value(previous)
            label = f"{metric.label} ({self.currency})" if metric.kind == "money" else metric.label
            rows.append(
                [
                    Cell(label, numeric=False),
                    metric_cell(metric, now, self.currency),
                    metric_cell(metric, before, self.currency),
                    change_cell(metric, now, before, self.currency),
                    Cell(relative_change(now, before)),
                ]
            )
        return Table(
            name="comparison",
            title="Against the previous period",
            headers=(
                "Metric",
                "This period",
                f"Previous ({self.previous_range})",
                "Change",
                "Change %",
            ),
            rows=rows,
            empty="",
            note=(
                "The previous period has as many days and ends the day before this one starts. "
                "Rates change in percentage points (pp); “Change %” is relative to the previous "
                "value, “—” when that was zero."
            ),
        )

    def funnel_table(self) -> Table:
        """How far the range's ads played: impression → 25 % → 50 % → 75 % → complete."""
        kpis = self.comparison.current
        stages = [
            ("Impression (started)", kpis.impressions),
            ("25% played", kpis.first_quartiles),
            ("50% played", kpis.midpoints),
            ("75% played", kpis.third_quartiles),
            ("Complete", kpis.completes),
        ]
        rows = []
        before = None
        for label, count in stages:
            share = count / kpis.impressions if kpis.impressions else None
            rows.append(
                [
                    Cell(label, numeric=False),
                    count_cell(count),
                    Cell(
                        percent(share),
                        bar=Bar(fill=min(100.0, share * 100)) if share is not None else None,
                    ),
                    Cell(
                        percent(count / before if before else None) if before is not None else DASH
                    ),
                ]
            )
            before = count
        return Table(
            name="funnel",
            title="Video quartile funnel",
            headers=("Stage", "Ads", "Of impressions", "Of the stage before"),
            rows=rows if kpis.impressions else [],
            empty="No impressions in the range.",
            note=(
                "Each stage counts the ads that played at least that far (the bar: its share "
                "of the impressions)."
            ),
        )

    @cached_property
    def creatives(self) -> list[dict]:
        return selectors.by_creative(**self.scope)

    def creative_table(self) -> Table:
        """Totals per creative, each linked to its page; with its line item's name unless the
        page is the line item's."""
        slug = self.advertiser.slug
        show_line_item = self.scope["line_item_id"] is None
        rows = [
            [
                Cell(
                    row["creative_name"],
                    href=reverse("creative_detail", args=[slug, row["creative_id"]]),
                    numeric=False,
                ),
                *([Cell(row["line_item_name"], numeric=False)] if show_line_item else []),
                *kpi_cells(row["kpis"], self.currency),
            ]
            for row in self.creatives
        ]
        return Table(
            name="creatives",
            title="By creative",
            headers=(
                "Creative",
                *(("Line item",) if show_line_item else ()),
                *kpi_headers(self.currency),
            ),
            rows=rows,
            empty="No delivery in the range.",
        )

    def line_item_table(self) -> Table:
        """Totals per line item (from the creatives' rows), each linked to its report over
        the same range."""
        slug = self.advertiser.slug
        rows = [
            [
                Cell(
                    row["line_item_name"],
                    href=reverse("line_item_report", args=[slug, row["line_item_id"]])
                    + f"?{self.dates.query}",
                    numeric=False,
                ),
                *kpi_cells(row["kpis"], self.currency),
            ]
            for row in selectors.by_line_item(self.creatives)
        ]
        return Table(
            name="line_items",
            title="By line item",
            headers=("Line item", *kpi_headers(self.currency)),
            rows=rows,
            empty="No delivery in the range.",
        )

    def hour_table(self) -> Table:
        """Totals per hour of the day in the account's time zone; a bar per hour shows its
        impressions against the busiest hour's."""
        busiest = max(row["kpis"].impressions for row in self.hours)
        rows = [
            [
                Cell(f"{row['hour']:02}:00–{(row['hour'] + 1) % 24:02}:00", numeric=False),
                replace(
                    count_cell(row["kpis"].impressions),
                    bar=Bar(fill=row["kpis"].impressions / busiest * 100) if busiest else None,
                ),
                *kpi_cells(row["kpis"], self.currency)[1:],
            ]
            for row in self.hours
        ]
        return Table(
            name="hour",
            title="By hour of day",
            headers=(f"Hour ({self.advertiser.timezone})", *kpi_headers(self.currency)),
            rows=rows if busiest else [],
            empty="No delivery in the range.",
            note="Hours in the account's time zone, each summed over the range's days.",
        )

    def daypart_table(self) -> Table:
        rows = [
            [Cell(row["label"], numeric=False), *kpi_cells(row["kpis"], self.currency)]
            for row in selectors.by_daypart(self.hours)
        ]
        delivered = any(row["kpis"].impressions for row in self.hours)
        return Table(
            name="daypart",
            title="By daypart",
            headers=("Daypart", *kpi_headers(self.currency)),
            rows=rows if delivered else [],
            empty="No delivery in the range.",
            note="The dayparts line items target, in the account's time zone.",
        )

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

    def period_tables(self) -> dict[str, Callable[[], Table]]:
        """The tables every page has: the comparison, the funnel, the hours and dayparts."""
        return {
            "comparison": self.comparison_table,
            "funnel": self.funnel_table,
            "hour": self.hour_table,
            "daypart": self.daypart_table,
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
        return Bar(fill=0.0)
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
