"""Answers composed from tool results: a few sentences with the numbers (written as the
dashboards write them), and the chart and the table of a series or a breakdown. The offline
planner answers with these; the LLM path shows the same chart and table, and falls back to
these sentences when its own do not check out.
"""

from __future__ import annotations

from typing import Any

from config import formats
from insights.tools.metrics import METRICS

DIMENSION_NAMES = {
    "campaign": ("campaign", "campaigns"),
    "line_item": ("line item", "line items"),
    "creative": ("creative", "creatives"),
    "genre": ("genre", "genres"),
    "region": ("region", "regions"),
    "device": ("device", "devices"),
    "title": ("title", "titles"),
    "hour": ("hour of the day", "hours of the day"),
    "daypart": ("daypart", "dayparts"),
}
STATES = {
    "on_track": "on track",
    "behind": "behind its target",
    "ahead": "ahead of its target",
    "not_live": "not live now",
}


def number(metric: str, value, currency: str) -> str:
    """A metric's value as a person reads it: 1,234 · $1,234.50 · 1.23% · 2.10."""
    if value is None:
        return "— (undefined: nothing to divide by)"
    unit = METRICS[metric][1] if metric in METRICS else "count"
    if unit == "count":
        return formats.count(value)
    if unit == "money":
        return formats.money(value, currency)
    if unit == "%":
        return f"{value:.2f}%"
    return f"{value:.2f}"


def change(metric: str, values: dict, currency: str) -> str:
    if values["change"] is None:
        return "no comparison (undefined in one of the periods)"
    unit = METRICS[metric][1]
    amount = values["change"]
    if unit == "%":
        text = f"{amount:+.2f} pp"
    elif unit == "money":
        text = ("+" if amount > 0 else "") + formats.money(amount, currency)
    elif unit == "count":
        text = ("+" if amount > 0 else "") + formats.count(int(amount))
    else:
        text = f"{amount:+.2f}"
    if values["change_percent"] is not None and unit != "%":
        text += f", {values['change_percent']:+.1f}%"
    return text


def scope_name(result: dict) -> str:
    scope = result["scope"]
    return (
        f"{scope['name']} (all campaigns)" if scope["kind"] == "account" else f"“{scope['name']}”"
    )


def _kpi_line(values: dict, currency: str) -> str:
    parts = [
        f"{number('impressions', values['impressions'], currency)} impressions",
        f"{number('clicks', values['clicks'], currency)} clicks (CTR "
        f"{number('ctr', values['ctr'], currency)})",
        f"{number('completes', values['completes'], currency)} completed views (completion rate "
        f"{number('completion_rate', values['completion_rate'], currency)})",
        f"{number('spend', values['spend'], currency)} spent (eCPM "
        f"{number('ecpm', values['ecpm'], currency)})",
    ]
    if "reach" in values:
        parts.append(f"{number('reach', values['reach'], currency)} viewers reached")
    return "; ".join(parts) + "."


def kpis_text(result: dict, metric: str | None) -> str:
    currency, values = result["currency"], result["values"]
    head = f"{scope_name(result)}, {result['period']['label']}"
    if values["impressions"] == 0:
        return f"{head}: 0 impressions, so nothing to report for that period."
    if metric:
        label = METRICS[metric][0]
        lead = f"{head}: {label} {number(metric, values[metric], currency)}."
        return f"{lead} In all: {_kpi_line(values, currency)}"
    return f"{head}: {_kpi_line(values, currency)}"


COMPARED = ("impressions", "clicks", "ctr", "completion_rate", "spend", "reach")


def comparison_text(result: dict, metric: str | None) -> str:
    currency, rows = result["currency"], result["metrics"]
    head = (
        f"{scope_name(result)}, {result['period']['label']} against "
        f"{result['previous_period']['label']}"
    )
    if rows["impressions"]["current"] == 0 and rows["impressions"]["previous"] == 0:
        return f"{head}: 0 impressions in both periods, so nothing to compare."
    order = [metric] + [m for m in COMPARED if m != metric] if metric else list(COMPARED)
    parts = []
    for name in order:
        if name not in rows:
            continue
        values = rows[name]
        parts.append(
            f"{METRICS[name][0]} {number(name, values['current'], currency)} against "
            f"{number(name, values['previous'], currency)} ({change(name, values, currency)})"
        )
    return f"{head}: " + "; ".join(parts) + "."


def series_text(result: dict) -> str:
    metric, currency = result["metric"], result["currency"]
    unit = "week" if result["granularity"] == "week" else "day"
    when = "week of" if unit == "week" else "on"
    head = f"{METRICS[metric][0].capitalize()} per {unit} for {scope_name(result)}, "
    head += result["period"]["label"]
    if "highest" not in result:
        return f"{head}: nothing delivered in that period."
    high, low = result["highest"], result["lowest"]
    text = (
        f"{head}: highest {number(metric, high[metric], currency)} ({when} {high['start']}), "
        f"lowest {number(metric, low[metric], currency)} ({when} {low['start']})"
    )
    if METRICS[metric][1] in ("count", "money") and metric != "ecpm":
        total = sum(point[metric] or 0 for point in result["points"])
        total = round(total, 2) if METRICS[metric][1] == "money" else total
        text += f"; {number(metric, total, currency)} in all"
    return text + "."


def breakdown_text(result: dict) -> str:
    metric, currency = result["metric"], result["currency"]
    singular, plural = DIMENSION_NAMES[result["dimension"]]
    rows = result["rows"]
    where = f"{scope_name(result)}, {result['period']['label']}"
    if not rows:
        return f"{where}: no {plural} with enough impressions to rank by {METRICS[metric][0]}."
    if result["order"] == "chronological":
        listed = "; ".join(
            f"{row['label']} {number(metric, row[metric], currency)}" for row in rows
        )
        return f"{METRICS[metric][0].capitalize()} by {singular} for {where}: {listed}."
    word = "best" if result["order"] == "best" else "worst"
    first = rows[0]
    lead = (
        f"The {word} {singular} by {METRICS[metric][0]} for {where} is {first['label']}, "
        f"with {number(metric, first[metric], currency)}"
    )
    if metric != "impressions":
        lead += f" ({number('impressions', first['impressions'], currency)} impressions)"
    lead += "."
    if len(rows) > 1:
        others = "; ".join(
            f"{position}. {row['label']} {number(metric, row[metric], currency)}"
            for position, row in enumerate(rows[1:6], start=2)
        )
        lead += f" Then: {others}."
    return lead


def pacing_text(result: dict) -> str:
    currency = result["currency"]
    if not result["rows"]:
        return "No campaign of this account has a budget to pace today."
    sentences = []
    for row in result["rows"]:
        sentences.append(
            f"“{row['name']}”: {number('spend', row['spent_today'], currency)} spent today "
            f"against a target of {number('spend', row['target_now'], currency)} by now (daily "
            f"budget {number('spend', row['daily_budget'], currency)}), "
            f"{STATES[row['state']]}; {number('spend', row['budget_left'], currency)} of its "
            f"{number('spend', row['lifetime_budget'], currency)} lifetime budget left "
            f"({row['lifetime_used_percent']:.1f}% used)."
        )
    return " ".join(sentences)


def diagnosis_text(result: dict) -> str:
    if not result["line_items"]:
        return f"{scope_name(result)} has no line items to check."
    sentences = []
    for item in result["line_items"]:
        name = f"“{item['line_item']}”"
        if item["delivering"]:
            sentences.append(
                f"{name} passes every delivery check now "
                f"({formats.count(item['impressions_yesterday'])} impressions yesterday); if it "
                "still shows little delivery, its targeting may be narrow or its bid low."
            )
        else:
            reasons = " ".join(f"{block['check']}: {block['detail']}" for block in item["blocking"])
            sentences.append(f"{name} is held back. {reasons}")
    return " ".join(sentences)


def audience_text(result: dict) -> str:
    audience = result["audience"]
    parts = []
    for metric in ("completion_rate", "ctr"):
        best = [
            f"{singular} {rows[metric][0]['label']} ({rows[metric][0][metric]:.2f}%)"
            for dimension, rows in audience.items()
            for singular in [DIMENSION_NAMES[dimension][0]]
            if rows[metric]
        ]
        if best:
            parts.append(f"{METRICS[metric][0]} is highest in " + ", ".join(best))
    where = f"{scope_name(result)}, {result['period']['label']}"
    if not parts:
        return f"{where}: not enough impressions yet to say where the ads engage."
    return f"{where}: " + "; ".join(parts) + "."


def list_text(result: dict) -> str:
    if "campaigns" in result:
        rows = result["campaigns"]
        listed = ", ".join(f"{row['name']} ({row['status']})" for row in rows)
        return f"{len(rows)} campaigns: {listed}." if rows else "No campaigns."
    rows = result["line_items"]
    listed = ", ".join(f"{row['name']} ({row['status']})" for row in rows)
    return f"{len(rows)} line items: {listed}." if rows else "No line items."


def text_for(result: dict, metric: str | None = None) -> str:
    kind = result["kind"]
    if kind == "kpis":
        return kpis_text(result, metric)
    if kind == "comparison":
        return comparison_text(result, metric)
    if kind == "series":
        return series_text(result)
    if kind == "breakdown":
        return breakdown_text(result)
    if kind == "pacing":
        return pacing_text(result)
    if kind == "diagnosis":
        return diagnosis_text(result)
    if kind == "audience":
        return audience_text(result)
    return list_text(result)


def visual_for(result: dict) -> tuple[dict | None, dict | None]:  # noqa: C901 - one per kind
    """(chart, table) for a result: a line chart of a series, bars of a breakdown or of a
    comparison; the table holds the chart's numbers (and is the CSV)."""
    kind = result.get("kind")
    if kind == "series":
        metric = result["metric"]
        labels = [point["start"] for point in result["points"]]
        values = [point[metric] for point in result["points"]]
        chart = {"type": "line", "labels": labels, "label": METRICS[metric][0], "values": values}
        return chart, {
            "headers": ["Day", METRICS[metric][0]],
            "rows": list(zip(labels, values, strict=True)),
        }
    if kind == "breakdown":
        metric = result["metric"]
        labels = [row["label"] for row in result["rows"]]
        values = [row[metric] for row in result["rows"]]
        chart = {"type": "bar", "labels": labels, "label": METRICS[metric][0], "values": values}
        headers = [DIMENSION_NAMES[result["dimension"]][0].capitalize(), METRICS[metric][0]]
        rows: list[Any]
        if metric != "impressions":
            headers.append("Impressions")
            rows = [(row["label"], row[metric], row["impressions"]) for row in result["rows"]]
        else:
            rows = list(zip(labels, values, strict=True))
        return chart, {"headers": headers, "rows": rows}
    if kind == "comparison":
        names = [m for m in COMPARED if m in result["metrics"]]
        rows = [
            (
                METRICS[m][0],
                result["metrics"][m]["current"],
                result["metrics"][m]["previous"],
                result["metrics"][m]["change"],
            )
            for m in names
        ]
        counts = [m for m in ("impressions", "clicks") if m in result["metrics"]]
        chart = {
            "type": "bar",
            "labels": [METRICS[m][0] for m in counts],
            "datasets": [
                {
                    "label": result["period"]["label"],
                    "values": [result["metrics"][m]["current"] for m in counts],
                },
                {
                    "label": result["previous_period"]["label"],
                    "values": [result["metrics"][m]["previous"] for m in counts],
                },
            ],
        }
        return chart, {"headers": ["Metric", "This period", "Before", "Change"], "rows": rows}
    if kind == "kpis":
        rows = [(METRICS[m][0], value) for m, value in result["values"].items()]
        return None, {"headers": ["Metric", "Value"], "rows": rows}
    if kind == "pacing":
        rows = [
            (row["name"], row["spent_today"], row["target_now"], row["budget_left"], row["state"])
            for row in result["rows"]
        ]
        headers = ["Name", "Spent today", "Target now", "Budget left", "State"]
        return None, {"headers": headers, "rows": rows}
    return None, None
