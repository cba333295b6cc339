"""The metric tools: KPIs, a time series, a breakdown, two periods compared, and the audience
that engages, each over the account's daily rollups through `analytics.selectors`.

Results are JSON data: counts as integers, money in the account's currency with two decimals,
rates (CTR, completion rate) in percent with two decimals, None where a ratio is undefined
(nothing shown, nothing clicked): the numbers an answer may quote, exactly as it may quote them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from analytics import selectors
from catalog.models import Device, Region
from insights.periods import Period, PeriodError, parse_period
from insights.tools.base import Context, ToolError
from insights.tools.scope import Scope, scope_from

# metric: (label, unit); a rate's unit is "%", money's is the account's currency ("money").
METRICS = {
    "impressions": ("impressions", "count"),
    "clicks": ("clicks", "count"),
    "completes": ("completed views", "count"),
    "spend": ("spend", "money"),
    "ctr": ("CTR", "%"),
    "completion_rate": ("completion rate", "%"),
    "ecpm": ("eCPM", "money"),
    "cpc": ("CPC", "money"),
    "reach": ("reach (viewers)", "count"),
    "average_frequency": ("average frequency", "decimal"),
}
SERIES_METRICS = ("impressions", "clicks", "spend", "ctr", "ecpm")
BREAKDOWN_METRICS = tuple(m for m in METRICS if m not in ("reach", "average_frequency"))
DIMENSIONS = (
    "campaign", "line_item", "creative", "genre", "region", "device", "title", "hour", "daypart",
)  # fmt: skip
LABELS = {"region": dict(Region.choices), "device": dict(Device.choices)}
# Rows with fewer impressions than this are left out of "best/worst by a rate": one view and
# one click is not a 100 % CTR worth reporting.
MIN_IMPRESSIONS_FOR_RATES = 20


def _round(value, places: int = 2):
    return None if value is None else round(float(value), places)


def kpi_values(kpis: selectors.Kpis, *, with_reach: bool = True) -> dict:
    values = {
        "impressions": kpis.impressions,
        "clicks": kpis.clicks,
        "completes": kpis.completes,
        "spend": _round(kpis.spend),
        "ctr": _round(kpis.ctr * 100 if kpis.ctr is not None else None),
        "completion_rate": _round(
            kpis.completion_rate * 100 if kpis.completion_rate is not None else None
        ),
        "ecpm": _round(kpis.ecpm),
        "cpc": _round(kpis.cpc),
    }
    if with_reach:
        values["reach"] = kpis.reach
        values["average_frequency"] = _round(kpis.average_frequency)
    return values


def period_of(context: Context, phrase: str) -> Period:
    try:
        return parse_period(phrase, today=context.today)
    except PeriodError as error:
        raise ToolError(str(error)) from None


def _head(context: Context, scope: Scope, period: Period) -> dict:
    return {
        "scope": scope.as_dict(),
        "period": period.as_dict(),
        "currency": context.advertiser.currency,
    }


def _creative_kpis(context: Context, scope: Scope, period: Period) -> selectors.Kpis:
    rows = selectors.by_creative(
        advertiser=context.advertiser,
        start=period.start,
        end=period.end,
        line_item_id=scope.line_item_id,
    )
    row = next((row for row in rows if row["creative_id"] == scope.creative_id), None)
    return row["kpis"] if row else selectors.Kpis()


def scope_kpis(context: Context, scope: Scope, period: Period) -> selectors.Kpis:
    if scope.kind == "creative":
        return _creative_kpis(context, scope, period)
    return selectors.kpis(
        advertiser=context.advertiser, start=period.start, end=period.end, **scope.filters
    )


def get_kpis(
    context: Context, period: str, campaign: str = "", line_item: str = "", creative: str = ""
) -> dict:
    scope = scope_from(context, campaign, line_item, creative)
    span = period_of(context, period)
    kpis = scope_kpis(context, scope, span)
    return {
        "kind": "kpis",
        **_head(context, scope, span),
        "values": kpi_values(kpis, with_reach=scope.kind != "creative"),
    }


def _point_value(metric: str, impressions: int, clicks: int, spend) -> float | int | None:
    if metric == "impressions":
        return impressions
    if metric == "clicks":
        return clicks
    if metric == "spend":
        return _round(spend)
    if metric == "ctr":
        return _round(clicks / impressions * 100) if impressions else None
    return _round(spend * 1000 / impressions) if impressions else None  # ecpm


def time_series(
    context: Context,
    metric: str,
    period: str,
    granularity: str = "day",
    campaign: str = "",
    line_item: str = "",
) -> dict:
    scope = scope_from(context, campaign, line_item)
    span = period_of(context, period)
    days = selectors.daily_series(
        advertiser=context.advertiser, start=span.start, end=span.end, **scope.filters
    )
    buckets: dict[dt.date, list] = defaultdict(lambda: [0, 0, 0])
    for point in days:
        key = point["day"]
        if granularity == "week":
            key = max(span.start, key - dt.timedelta(days=key.weekday()))
        bucket = buckets[key]
        bucket[0] += point["impressions"]
        bucket[1] += point["clicks"]
        bucket[2] += point["spend"]
    points: list[dict[str, Any]] = [
        {"start": key.isoformat(), metric: _point_value(metric, *totals)}
        for key, totals in sorted(buckets.items())
    ]
    defined = [point for point in points if point[metric] is not None]
    summary = {}
    if defined:
        highest = max(defined, key=lambda point: point[metric])
        lowest = min(defined, key=lambda point: point[metric])
        summary = {"highest": highest, "lowest": lowest}
    return {
        "kind": "series",
        **_head(context, scope, span),
        "metric": metric,
        "granularity": granularity,
        "points": points,
        **summary,
    }


def _label(dimension: str, value: str, label: str) -> str:
    return LABELS.get(dimension, {}).get(value, label or value)


def _rows(context: Context, dimension: str, scope: Scope, span: Period) -> list[dict]:
    """(label, Kpis) of each value of `dimension` in the scope and period."""
    common: dict[str, Any] = {
        "advertiser": context.advertiser,
        "start": span.start,
        "end": span.end,
    }
    if dimension in ("genre", "region", "device", "title"):
        return [
            {"label": _label(dimension, row["value"], row["label"]), "kpis": row["kpis"]}
            for row in selectors.breakdown(dimension=dimension, **common, **scope.filters)
        ]
    if dimension in ("hour", "daypart"):
        hours = selectors.by_hour_of_day(**common, **scope.filters)
        if dimension == "hour":
            return [{"label": f"{row['hour']:02d}:00", "kpis": row["kpis"]} for row in hours]
        return [{"label": row["label"], "kpis": row["kpis"]} for row in selectors.by_daypart(hours)]
    creatives = selectors.by_creative(**common, **scope.filters)
    if dimension == "creative":
        return [{"label": row["creative_name"], "kpis": row["kpis"]} for row in creatives]
    if dimension == "line_item":
        return [
            {"label": row["line_item_name"], "kpis": row["kpis"]}
            for row in selectors.by_line_item(creatives)
        ]
    return [
        {"label": row["campaign"].name, "kpis": row["kpis"]}
        for row in selectors.campaign_table(**common)
        if scope.campaign_id in (None, row["campaign"].pk)
    ]


def breakdown(
    context: Context,
    dimension: str,
    period: str,
    metric: str = "impressions",
    order: str = "best",
    top_n: int = 10,
    campaign: str = "",
    line_item: str = "",
) -> dict:
    scope = scope_from(context, campaign, line_item)
    if dimension == "campaign" and scope.kind != "account":
        raise ToolError("A breakdown by campaign is of the whole account: leave out the scope.")
    span = period_of(context, period)
    rows = [
        {"label": row["label"], **kpi_values(row["kpis"], with_reach=False)}
        for row in _rows(context, dimension, scope, span)
    ]
    ranked = [row for row in rows if row[metric] is not None]
    if METRICS[metric][1] in ("%", "money") and metric != "spend":
        ranked = [row for row in ranked if row["impressions"] >= MIN_IMPRESSIONS_FOR_RATES]
    if order == "chronological":
        ranked = rows
    else:
        ranked.sort(key=lambda row: (row[metric], row["impressions"]), reverse=order == "best")
    return {
        "kind": "breakdown",
        **_head(context, scope, span),
        "dimension": dimension,
        "metric": metric,
        "order": order,
        "rows": ranked[:top_n],
        "rows_in_total": len(rows),
    }


def _change(metric: str, current, previous) -> dict:
    if current is None or previous is None:
        return {"current": current, "previous": previous, "change": None, "change_percent": None}
    change = _round(current - previous)
    relative = _round((current - previous) / previous * 100, 1) if previous else None
    return {"current": current, "previous": previous, "change": change, "change_percent": relative}


def compare_periods(
    context: Context,
    period: str,
    previous_period: str = "",
    campaign: str = "",
    line_item: str = "",
    creative: str = "",
) -> dict:
    scope = scope_from(context, campaign, line_item, creative)
    current_span = period_of(context, period)
    if previous_period:
        previous_span = period_of(context, previous_period)
        current = scope_kpis(context, scope, current_span)
        previous = scope_kpis(context, scope, previous_span)
    elif scope.kind == "creative":
        previous_span = current_span.previous()
        current = scope_kpis(context, scope, current_span)
        previous = scope_kpis(context, scope, previous_span)
    else:
        # The dashboards' own comparison: the same days before, two queries for both.
        comparison = selectors.kpis_against_previous(
            advertiser=context.advertiser,
            start=current_span.start,
            end=current_span.end,
            **scope.filters,
        )
        current, previous = comparison.current, comparison.previous
        previous_span = current_span.previous()
    with_reach = scope.kind != "creative"
    now_values = kpi_values(current, with_reach=with_reach)
    then_values = kpi_values(previous, with_reach=with_reach)
    return {
        "kind": "comparison",
        **_head(context, scope, current_span),
        "previous_period": previous_span.as_dict(),
        "metrics": {
            metric: _change(metric, now_values[metric], then_values[metric])
            for metric in now_values
        },
    }


def _highest(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    defined = [row for row in rows if row[metric] is not None]
    return sorted(defined, key=lambda row: (row[metric], row["impressions"]), reverse=True)


def engaged_audience(
    context: Context, period: str, campaign: str = "", line_item: str = "", top_n: int = 3
) -> dict:
    """Where the account's ads are watched to the end and clicked: per genre, region and
    device, the values with the highest completion rate and CTR (enough impressions only)."""
    scope = scope_from(context, campaign, line_item)
    span = period_of(context, period)
    audience = {}
    for dimension in ("genre", "region", "device"):
        rows = [
            {"label": row["label"], **kpi_values(row["kpis"], with_reach=False)}
            for row in _rows(context, dimension, scope, span)
            if row["kpis"].impressions >= MIN_IMPRESSIONS_FOR_RATES
        ]
        audience[dimension] = {
            metric: _highest(rows, metric)[:top_n] for metric in ("completion_rate", "ctr")
        }
    return {"kind": "audience", **_head(context, scope, span), "audience": audience}
