"""Reports of the account API (account keys): the dashboards' numbers as JSON, or CSV with
`Accept: text/csv`.

Every number comes from the selectors the dashboard pages read (`analytics.selectors`, through
the pages' `Report`), so a report and a page over the same range agree; money is written as
the pages' CSV writes it (two decimals), and CSV cells are neutralised as every export's are
(`config.formats.csv_cell`).
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import exceptions, renderers, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ads import selectors as ads_selectors
from ads.account_api import AccountAPIView, errors, get_or_404, id_field
from analytics import selectors
from analytics.forms import DateRange, DateRangeForm
from analytics.reports import METRICS, VALUE_LABELS, Report, plain_money
from config import formats

BREAKDOWNS = [
    "day",
    "creative",
    "line_item",
    "genre",
    "region",
    "device",
    "title",
    "hour",
    "daypart",
]


class CSVRenderer(renderers.BaseRenderer):
    """`Accept: text/csv`: the report's rows, a header of their keys first."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None):
        if not isinstance(data, dict) or "rows" not in data:
            # Not a report (an error in the envelope): JSON, as the schema documents them, not
            # a 500 for want of rows.
            response = (renderer_context or {}).get("response")
            if response is not None:
                response["Content-Type"] = "application/json"
            return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        rows = data["rows"]
        view = (renderer_context or {}).get("view")
        out = io.StringIO()
        writer = csv.writer(out)
        # A header even without rows: an empty body would carry no Content-Type (DRF drops it).
        header = list(rows[0]) if rows else getattr(view, "empty_header", [])
        if header:
            writer.writerow(header)
            writer.writerows(
                [formats.csv_cell(_csv_text(value)) for value in row.values()] for row in rows
            )
        # No rows: one empty line, not an empty body, which DRF would send without its
        # Content-Type (so a client could not tell a CSV answer from a broken one).
        return out.getvalue().encode() or b"\r\n"


def _csv_text(value: Any) -> str:
    return "" if value is None else str(value)


class ReportQuery(serializers.Serializer):
    start = serializers.DateField(
        required=False, help_text="First day, in the account's time zone (default: a week ago)."
    )
    end = serializers.DateField(required=False, help_text="Last day, included (default: today).")
    campaign = id_field(required=False, help_text="Only this one.")
    line_item = id_field(required=False, help_text="Only this one.")


class DeliveryQuery(ReportQuery):
    breakdown = serializers.ChoiceField(
        choices=BREAKDOWNS,
        default="day",
        help_text="A row per day (default), or per value of a dashboard breakdown.",
    )


# Which of a row's fields are present depends on the breakdown.
OPTIONAL = {"required": False, "allow_null": True}

DELIVERY_ROW = inline_serializer(
    "DeliveryRow",
    {
        "day": serializers.DateField(**OPTIONAL),
        "creative_id": serializers.IntegerField(**OPTIONAL),
        "creative_name": serializers.CharField(**OPTIONAL),
        "line_item_id": serializers.IntegerField(**OPTIONAL),
        "line_item_name": serializers.CharField(**OPTIONAL),
        "value": serializers.CharField(help_text="genre, region, device, title id", **OPTIONAL),
        "label": serializers.CharField(**OPTIONAL),
        "hour": serializers.IntegerField(help_text="0 to 23, account time", **OPTIONAL),
        "daypart": serializers.CharField(**OPTIONAL),
        "impressions": serializers.IntegerField(),
        "clicks": serializers.IntegerField(),
        "completes": serializers.IntegerField(**OPTIONAL),
        "spend": serializers.CharField(help_text="Two decimals, the account's currency."),
        "ctr": serializers.FloatField(allow_null=True),
        "completion_rate": serializers.FloatField(**OPTIONAL),
        "ecpm": serializers.CharField(**OPTIONAL),
        "cpc": serializers.CharField(**OPTIONAL),
    },
    many=True,
)

SCOPE = {
    "start": serializers.DateField(),
    "end": serializers.DateField(),
    "currency": serializers.CharField(),
    "campaign": serializers.IntegerField(allow_null=True),
    "line_item": serializers.IntegerField(allow_null=True),
}


def _kpis(kpis: selectors.Kpis) -> dict[str, Any]:
    """A breakdown row's numbers: the dashboard tables' columns, money as their CSV writes it."""
    return {
        "impressions": kpis.impressions,
        "clicks": kpis.clicks,
        "completes": kpis.completes,
        "spend": plain_money(kpis.spend),
        "ctr": kpis.ctr,
        "completion_rate": kpis.completion_rate,
        "ecpm": _money(kpis.ecpm),
        "cpc": _money(kpis.cpc),
    }


def _money(value: Decimal | None) -> str | None:
    return None if value is None else plain_money(value)


class ReportView(AccountAPIView):
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        """Errors are the JSON envelope whatever was accepted."""
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)

    def report(self, query: type[ReportQuery]) -> tuple[Report, dict[str, Any]]:
        values = query(data=self.request.query_params)
        values.is_valid(raise_exception=True)
        params = values.validated_data
        today = timezone.localtime(timezone.now(), self.advertiser.tzinfo).date()
        form = DateRangeForm(
            {key: params[key].isoformat() for key in ("start", "end") if key in params},
            today=today,
        )
        if not form.is_valid():
            raise exceptions.ValidationError(
                {
                    ("non_field_errors" if field == NON_FIELD_ERRORS else field): messages
                    for field, messages in form.errors.items()
                }
            )
        dates = DateRange(form.cleaned_data["start"], form.cleaned_data["end"], today)
        campaign_id, line_item_id = params.get("campaign"), params.get("line_item")
        if campaign_id is not None:
            get_or_404(
                ads_selectors.campaign_get,
                "campaign",
                advertiser=self.advertiser,
                campaign_id=campaign_id,
            )
        if line_item_id is not None:
            get_or_404(
                ads_selectors.line_item_get,
                "line item",
                advertiser=self.advertiser,
                line_item_id=line_item_id,
            )
        report = Report(self.advertiser, dates, campaign_id=campaign_id, line_item_id=line_item_id)
        scope = {
            "start": dates.start,
            "end": dates.end,
            "currency": self.advertiser.currency,
            "campaign": campaign_id,
            "line_item": line_item_id,
        }
        return report, scope

    def answer(self, body: dict[str, Any], name: str) -> Response:
        response = Response(body)
        if self.request.accepted_renderer.format == "csv":
            filename = f"{self.advertiser.slug}-{name}-{body['start']}-{body['end']}.csv"
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


# The columns of a breakdown that can have no rows (day, hour and daypart always have them).
KEY_COLUMNS = {
    "creative": ["creative_id", "creative_name", "line_item_id", "line_item_name"],
    "line_item": ["line_item_id", "line_item_name"],
}


def empty_header(breakdown: str) -> list[str]:
    return [*KEY_COLUMNS.get(breakdown, ["value", "label"]), *_kpis(selectors.Kpis())]


def delivery_rows(report: Report, breakdown: str) -> list[dict[str, Any]]:
    """The rows of one breakdown, as the dashboard's table of it has them."""
    if breakdown == "day":
        return [
            {
                "day": point["day"],
                "impressions": point["impressions"],
                "clicks": point["clicks"],
                "ctr": selectors.Kpis(impressions=point["impressions"], clicks=point["clicks"]).ctr,
                "spend": plain_money(point["spend"]),
            }
            for point in report.series
        ]
    if breakdown == "creative":
        return [
            {
                "creative_id": row["creative_id"],
                "creative_name": row["creative_name"],
                "line_item_id": row["line_item_id"],
                "line_item_name": row["line_item_name"],
                **_kpis(row["kpis"]),
            }
            for row in report.creatives
        ]
    if breakdown == "line_item":
        return [
            {
                "line_item_id": row["line_item_id"],
                "line_item_name": row["line_item_name"],
                **_kpis(row["kpis"]),
            }
            for row in selectors.by_line_item(report.creatives)
        ]
    if breakdown == "hour":
        return [{"hour": row["hour"], **_kpis(row["kpis"])} for row in report.hours]
    if breakdown == "daypart":
        return [
            {"daypart": row["daypart"], "label": row["label"], **_kpis(row["kpis"])}
            for row in selectors.by_daypart(report.hours)
        ]
    labels = VALUE_LABELS.get(breakdown, {})
    return [
        {
            "value": row["value"],
            "label": labels.get(row["value"], row["label"]),
            **_kpis(row["kpis"]),
        }
        for row in selectors.breakdown(dimension=breakdown, **report.scope)
    ]


class DeliveryReportView(ReportView):
    @extend_schema(
        operation_id="delivery_report",
        summary="Delivery of the account (or a campaign or line item) by day or a breakdown",
        description="The dashboards' numbers over a range of the account's days: a row per "
        "day, or per creative, line item, genre, region, device, title, hour of day or "
        "daypart. JSON, or CSV with `Accept: text/csv` (the rows, a header of their keys). "
        "An undefined ratio (nothing shown) is null, an empty cell in CSV.",
        parameters=[DeliveryQuery],
        responses={
            (200, "application/json"): inline_serializer(
                "DeliveryReport",
                {**SCOPE, "breakdown": serializers.CharField(), "rows": DELIVERY_ROW},
            ),
            (200, "text/csv"): OpenApiTypes.STR,
            **errors(400, 404, 406),
        },
        examples=[
            OpenApiExample(
                "By day",
                value={
                    "start": "2026-11-27",
                    "end": "2026-12-03",
                    "currency": "USD",
                    "campaign": None,
                    "line_item": None,
                    "breakdown": "day",
                    "rows": [
                        {
                            "day": "2026-11-27",
                            "impressions": 1200,
                            "clicks": 14,
                            "ctr": 0.011666,
                            "spend": "15.00",
                        }
                    ],
                },
                response_only=True,
                media_type="application/json",
            )
        ],
    )
    def get(self, request: Request) -> Response:
        report, scope = self.report(DeliveryQuery)
        breakdown = request.query_params.get("breakdown", "day")
        body = {**scope, "breakdown": breakdown, "rows": delivery_rows(report, breakdown)}
        self.empty_header = empty_header(breakdown)
        return self.answer(body, f"delivery-{breakdown}")


def _number(value: Any) -> Any:
    return plain_money(value) if isinstance(value, Decimal) else value


class ComparisonReportView(ReportView):
    @extend_schema(
        operation_id="comparison_report",
        summary="Each KPI of a range beside the previous range's, with the change",
        description="The previous range has as many days and ends the day before `start` (the "
        "dashboards' comparison). `change` is current − previous (money as two-decimal text), "
        "`change_ratio` is change ÷ previous (null when previous is zero or undefined). JSON, "
        "or CSV with `Accept: text/csv`.",
        parameters=[ReportQuery],
        responses={
            (200, "application/json"): inline_serializer(
                "ComparisonReport",
                {
                    **SCOPE,
                    "previous_start": serializers.DateField(),
                    "previous_end": serializers.DateField(),
                    "rows": inline_serializer(
                        "MetricComparison",
                        {
                            "metric": serializers.CharField(),
                            "current": serializers.JSONField(allow_null=True),
                            "previous": serializers.JSONField(allow_null=True),
                            "change": serializers.JSONField(allow_null=True),
                            "change_ratio": serializers.FloatField(allow_null=True),
                        },
                        many=True,
                    ),
                },
            ),
            (200, "text/csv"): OpenApiTypes.STR,
            **errors(400, 404, 406),
        },
    )
    def get(self, request: Request) -> Response:
        report, scope = self.report(ReportQuery)
        comparison = report.comparison
        rows = []
        for metric in METRICS:
            current, previous = metric.value(comparison.current), metric.value(comparison.previous)
            change = None if current is None or previous is None else current - previous
            rows.append(
                {
                    "metric": metric.key,
                    "current": _number(current),
                    "previous": _number(previous),
                    "change": _number(change),
                    "change_ratio": float(change / previous)
                    if change is not None and previous
                    else None,
                }
            )
        body = {
            **scope,
            "previous_start": comparison.previous_start,
            "previous_end": comparison.previous_end,
            "rows": rows,
        }
        return self.answer(body, "comparison")
