"""The registry of read-only tools, the only way insights reads an account's data: the planner
and the LLM call the same tools with the same validated arguments (`call`), and the LLM is
given their JSON schemas (`schemas`), generated from the same declarations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ObjectDoesNotExist

from insights.tools import delivery, metrics, scope
from insights.tools.base import ArgumentError, Context, Param, Tool, ToolError

__all__ = ["TOOLS", "ArgumentError", "Context", "ToolCall", "ToolError", "call", "schemas"]

PERIOD = Param(
    "period",
    "string",
    "The period, as the advertiser says it, read in the account's time zone: 'yesterday', "
    "'last week', 'this month', 'in November', 'since Monday', 'the last 30 days', "
    "'2026-11-01 to 2026-11-15'.",
    required=True,
)
OPTIONAL_PERIOD = Param(PERIOD.name, "string", PERIOD.description, default="last 7 days")
CAMPAIGN = Param("campaign", "string", "A campaign of this account: its name or its id.")
LINE_ITEM = Param("line_item", "string", "A line item of this account: its name or its id.")
CREATIVE = Param("creative", "string", "A creative of this account: its name or its id.")
STATUS = Param(
    "status",
    "string",
    "Only those with this status.",
    enum=("all", "active", "paused", "archived"),
    default="all",
)

TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "list_campaigns",
            "The account's campaigns with their ids, statuses and dates.",
            (STATUS,),
            scope.list_campaigns,
        ),
        Tool(
            "list_line_items",
            "The account's line items (of one campaign if given) with ids, bids and budgets.",
            (CAMPAIGN, STATUS),
            scope.list_line_items,
        ),
        Tool(
            "get_kpis",
            "Totals for a period: impressions, clicks, completes, spend, CTR, completion "
            "rate, eCPM, CPC, reach, average frequency; of the account, a campaign, a line "
            "item or a creative.",
            (OPTIONAL_PERIOD, CAMPAIGN, LINE_ITEM, CREATIVE),
            metrics.get_kpis,
        ),
        Tool(
            "time_series",
            "One metric per day or per week over a period.",
            (
                Param(
                    "metric", "string", "The metric.", required=True, enum=metrics.SERIES_METRICS
                ),
                OPTIONAL_PERIOD,
                Param(
                    "granularity",
                    "string",
                    "Points per day or per week.",
                    enum=("day", "week"),
                    default="day",
                ),
                CAMPAIGN,
                LINE_ITEM,
            ),
            metrics.time_series,
        ),
        Tool(
            "breakdown",
            "A metric per campaign, line item, creative, genre, region, device, title, hour of "
            "day or daypart over a period, best first (or worst first, or in the order of the "
            "day); top N.",
            (
                Param(
                    "dimension",
                    "string",
                    "What to break down by.",
                    required=True,
                    enum=metrics.DIMENSIONS,
                ),
                OPTIONAL_PERIOD,
                Param(
                    "metric",
                    "string",
                    "The metric to rank by.",
                    enum=metrics.BREAKDOWN_METRICS,
                    default="impressions",
                ),
                Param(
                    "order",
                    "string",
                    "best first, worst first, or chronological (hours, dayparts).",
                    enum=("best", "worst", "chronological"),
                    default="best",
                ),
                Param("top_n", "integer", "How many rows.", minimum=1, maximum=50, default=10),
                CAMPAIGN,
                LINE_ITEM,
            ),
            metrics.breakdown,
        ),
        Tool(
            "compare_periods",
            "Every KPI of a period beside another (by default the same number of days just "
            "before), with the change and the change in percent.",
            (
                PERIOD,
                Param(
                    "previous_period",
                    "string",
                    "The period to compare with; by default the same length just before.",
                    default="",
                ),
                CAMPAIGN,
                LINE_ITEM,
                CREATIVE,
            ),
            metrics.compare_periods,
        ),
        Tool(
            "pacing",
            "Today's spend against the even-pacing target, daily budget, lifetime budget "
            "used and left: of a line item, a campaign, or each campaign of the account.",
            (CAMPAIGN, LINE_ITEM),
            delivery.pacing,
        ),
        Tool(
            "why_not_delivering",
            "Why a line item (or each line item of a campaign) delivers or not right now: "
            "status, flight, daypart, creatives, budgets, pacing, targeting reach.",
            (LINE_ITEM, CAMPAIGN),
            delivery.why_not_delivering,
        ),
        Tool(
            "engaged_audience",
            "Where the account's ads are completed and clicked most: the genres, regions and "
            "devices with the highest completion rate and CTR over a period.",
            (
                OPTIONAL_PERIOD,
                CAMPAIGN,
                LINE_ITEM,
                Param("top_n", "integer", "How many per list.", minimum=1, maximum=10, default=3),
            ),
            metrics.engaged_audience,
        ),
    )
}


@dataclass
class ToolCall:
    """One call as it happened: what was asked, what came back (or the error), how long."""

    name: str
    arguments: Any
    result: dict = field(default_factory=dict)
    error: str = ""
    invalid: bool = False  # the arguments did not fit the tool (not merely "not found")
    milliseconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "arguments": self.arguments,
            "result": self.result,
            "error": self.error,
            "milliseconds": round(self.milliseconds, 1),
        }


def schemas() -> list[dict]:
    return [tool.schema() for tool in TOOLS.values()]


def call(context: Context, name: str, arguments: Any) -> ToolCall:
    """Run a tool for the context's account. Never raises for what a caller (or a model) can
    get wrong: an unknown tool, bad arguments, a name or id not in this account are the
    call's `error`."""
    began = time.perf_counter()
    record = ToolCall(name=name, arguments=arguments)
    tool = TOOLS.get(name)
    try:
        if tool is None:
            raise ArgumentError(f"There is no tool named {name!r}.")
        record.result = tool.run(context, arguments)
    except ObjectDoesNotExist:
        record.error = "Not found in this account."
    except ArgumentError as error:
        record.error, record.invalid = str(error), True
    except ToolError as error:
        record.error = str(error)
    record.milliseconds = (time.perf_counter() - began) * 1000
    return record
