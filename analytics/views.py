"""Advertiser dashboards: the account overview, the campaign and line item reports, and the CSV
export of each of their tables (`?format=csv&table=<name>`, with the page's date range).

Every page goes through `account_view` (members only, another account's slug or id is a 404,
dates in the account's time zone) and reads through selectors only; `analytics.reports` turns
the numbers into the tiles and tables that the page and its exports share.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone

from ads import selectors as ads_selectors
from ads.access import account_view
from ads.models import Advertiser, LineItem, Membership
from analytics import selectors
from analytics.forms import PRESETS, DateRange, DateRangeForm
from analytics.reports import Report, Table, campaign_table, live_tiles
from config import formats


def _date_range(
    request: HttpRequest, advertiser: Advertiser, now: dt.datetime
) -> tuple[DateRangeForm, DateRange]:
    today = timezone.localtime(now, advertiser.tzinfo).date()
    form = DateRangeForm(request.GET, today=today)
    return form, form.date_range()


def _presets(dates: DateRange) -> list[dict]:
    presets = []
    for label, days in PRESETS:
        preset = DateRange.last(days, today=dates.today)
        presets.append({"label": label, "query": preset.query, "current": preset == dates})
    return presets


def _get_or_404(selector: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return selector(**kwargs)
    except ObjectDoesNotExist:
        raise Http404("No such item in this account.") from None


def _bad_request(message: str) -> HttpResponse:
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


def _csv(table: Table, filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow([formats.csv_cell(header) for header in table.headers])
    writer.writerows([formats.csv_cell(cell.csv) for cell in row] for row in table.rows)
    return response


def _page(
    request: HttpRequest,
    membership: Membership,
    *,
    template: str,
    name: str,
    form: DateRangeForm,
    dates: DateRange,
    report: Report,
    tables: dict[str, Callable[[], Table]],
    context: Callable[[], dict[str, Any]],
) -> HttpResponse:
    """Render the page, or with `?format=csv&table=<name>` export that one table of it (and
    compute nothing else): `tables` and `context` are called only for what is answered."""
    advertiser = membership.advertiser
    if request.GET.get("format") == "csv":
        if form.errors:
            return _bad_request(" ".join(form.error_messages()))
        table_name = request.GET.get("table", "")
        if table_name not in tables:
            return _bad_request(f"Unknown table; choose one of: {', '.join(tables)}.")
        filename = f"{advertiser.slug}-{name}-{table_name}-{dates.start}-{dates.end}.csv"
        return _csv(tables[table_name](), filename)
    return render(
        request,
        template,
        {
            "membership": membership,
            "advertiser": advertiser,
            "form": form,
            "form_errors": form.error_messages(),
            "dates": dates,
            "presets": _presets(dates),
            "range_query": dates.query,
            "tiles": report.tiles(),
            "previous_range": report.previous_range,
            "chart": report.chart(),
            "tables": {table_name: build() for table_name, build in tables.items()},
            **context(),
        },
    )


@account_view
def overview(request: HttpRequest, membership: Membership) -> HttpResponse:
    advertiser = membership.advertiser
    now = timezone.now()
    form, dates = _date_range(request, advertiser, now)
    report = Report(advertiser, dates)

    def context() -> dict[str, Any]:
        today = selectors.live_today(advertiser=advertiser, at=now)
        return {
            "live": live_tiles(today, advertiser.currency),
            "live_day": today["day"],
            "live_url": f"/ws/a/{advertiser.slug}/live/",
            "money_affixes": formats.currency_affixes(advertiser.currency),
            "summary": ads_selectors.account_summary(advertiser=advertiser),
        }

    tables = {
        "daily": report.daily_table,
        "campaigns": lambda: campaign_table(report, now=now, query=dates.query),
        **report.period_tables(),
    }
    return _page(
        request,
        membership,
        template="analytics/overview.html",
        name="overview",
        form=form,
        dates=dates,
        report=report,
        tables=tables,
        context=context,
    )


@account_view
def campaign_report(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    advertiser = membership.advertiser
    campaign = _get_or_404(
        ads_selectors.campaign_get, advertiser=advertiser, campaign_id=campaign_id
    )
    form, dates = _date_range(request, advertiser, timezone.now())
    report = Report(advertiser, dates, campaign_id=campaign.pk)

    def context() -> dict[str, Any]:
        line_items = ads_selectors.line_item_list(advertiser=advertiser, campaign_id=campaign.pk)
        return {
            "item": campaign,
            "kind": "campaign",
            "line_items": line_items.order_by("name"),
        }

    return _page(
        request,
        membership,
        template="analytics/report.html",
        name=f"campaign-{campaign.pk}",
        form=form,
        dates=dates,
        report=report,
        tables={
            "daily": report.daily_table,
            **report.period_tables(),
            "line_items": report.line_item_table,
            "creatives": report.creative_table,
            **report.breakdown_tables(),
        },
        context=context,
    )


@account_view
def line_item_report(
    request: HttpRequest, membership: Membership, line_item_id: int
) -> HttpResponse:
    advertiser = membership.advertiser
    line_item: LineItem = _get_or_404(
        ads_selectors.line_item_get, advertiser=advertiser, line_item_id=line_item_id
    )
    form, dates = _date_range(request, advertiser, timezone.now())
    report = Report(advertiser, dates, line_item_id=line_item.pk)

    return _page(
        request,
        membership,
        template="analytics/report.html",
        name=f"line-item-{line_item.pk}",
        form=form,
        dates=dates,
        report=report,
        tables={
            "daily": report.daily_table,
            **report.period_tables(),
            "creatives": report.creative_table,
            **report.breakdown_tables(),
        },
        context=lambda: {"item": line_item, "kind": "line_item"},
    )
