"""The dashboards on the tenancy's accounts alone, without test_dashboards.py's hand-counted
delivery (whose world is built once for that module, so these tests, which need accounts
without it, are a module of their own): unknown and inactive accounts, the outsider, what an
analyst sees, links, ratios without delivery, the date range's defaults, the counts by
status, and the number of queries a page needs."""

import datetime as dt
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone

from ads.models import DeliveryStatus, LineItem
from analytics.forms import MAX_DAYS
from analytics.models import DailyDelivery
from tests.analytics.test_dashboards import (
    MICROS,
    PAGES,
    RANGE,
    REPORTS,
    TODAY,
    YESTERDAY,
    PageReader,
    at,
    page,
    read,
)
from tests.analytics.test_dashboards import (
    frozen_now as frozen_now,  # the same clock (an autouse fixture): noon on 10 March
)
from tests.factories import AdEventFactory, CampaignFactory, CreativeFactory, LineItemFactory

pytestmark = pytest.mark.django_db


# Who may see what


def test_unknown_and_inactive_accounts_are_404(client, tenancy):
    client.force_login(tenancy.owner)
    assert client.get(reverse("overview", args=["no-such-account"])).status_code == 404
    tenancy.advertiser.is_active = False
    tenancy.advertiser.save()
    assert client.get(page(tenancy, "overview")).status_code == 404


def test_the_outsider_gets_404_on_this_accounts_pages(client, tenancy):
    client.force_login(tenancy.outsider)
    for name, attr in [*PAGES, *((f"{attr}_detail", attr) for _, attr in REPORTS)]:
        assert client.get(page(tenancy, name, attr)).status_code == 404, name


def test_the_analyst_sees_no_write_buttons(client, tenancy):
    client.force_login(tenancy.analyst)
    for name, attr in PAGES:
        html = client.get(page(tenancy, name, attr)).content.decode()
        assert "hx-post" not in html
        assert "/new/" not in html
        assert "/edit/" not in html


def test_detail_pages_link_to_their_reports(client, tenancy):
    client.force_login(tenancy.analyst)
    for name, attr in REPORTS:
        kind = attr
        html = client.get(page(tenancy, f"{kind}_detail", attr)).content.decode()
        assert f'href="{page(tenancy, name, attr)}"' in html


# The numbers


def test_undefined_ratios_show_a_dash_not_zero(client, tenancy):
    client.force_login(tenancy.owner)
    tiles = read(client, page(tenancy, "overview", **RANGE)).tiles
    assert (tiles["impressions"], tiles["spend"]) == ("0", "$0.00")
    for ratio in ("ctr", "ecpm", "cpc", "completion_rate", "average_frequency"):
        assert tiles[ratio] == "—"


# The date range


def test_the_default_range_is_the_last_7_days_in_the_accounts_time_zone(
    client, tenancy, monkeypatch
):
    # 02:00 UTC on 11 March is still 22:00 on 10 March in New York.
    monkeypatch.setattr(timezone, "now", lambda: dt.datetime(2026, 3, 11, 2, 0, tzinfo=dt.UTC))
    client.force_login(tenancy.owner)
    response = client.get(page(tenancy, "overview"))
    dates = response.context["dates"]
    assert (dates.start, dates.end) == (dt.date(2026, 3, 4), TODAY)
    assert response.context["chart"]["labels"][-1] == "2026-03-10"


def test_presets_link_to_today_7_and_30_days(client, tenancy):
    client.force_login(tenancy.owner)
    html = client.get(page(tenancy, "overview")).content.decode()
    assert 'href="?start=2026-03-10&amp;end=2026-03-10">Today' in html
    assert 'href="?start=2026-03-04&amp;end=2026-03-10" aria-current="true">7 days' in html
    assert 'href="?start=2026-02-09&amp;end=2026-03-10">30 days' in html


def test_a_year_is_allowed(client, tenancy):
    client.force_login(tenancy.owner)
    response = client.get(page(tenancy, "overview", start="2025-03-10", end="2026-03-10"))
    assert response.context["form_errors"] == []
    assert len(response.context["chart"]["labels"]) == MAX_DAYS


# The old overview's counts by status


def test_the_overview_counts_by_status(client, tenancy):
    LineItem.objects.filter(pk=tenancy.line_item.pk).update(status=DeliveryStatus.PAUSED)
    client.force_login(tenancy.owner)
    response = client.get(page(tenancy, "overview"))
    assert response.context["summary"]["line_items"] == {"active": 0, "paused": 1, "archived": 0}
    html = response.content.decode()
    assert "line items</a>: 0 active, 1 paused, 0 archived" in html
    assert "America/New_York" in html
    assert "USD" in html


# Speed


def account_with_campaigns(tenancy, count: int) -> None:
    """`count` campaigns for Acme in all, each with two line items, a creative each and rollup
    rows on both days, and a few events for reach."""
    for number in range(count):
        campaign = (
            tenancy.campaign
            if number == 0
            else CampaignFactory(advertiser=tenancy.advertiser, name=f"Acme {number:02}")
        )
        for flight in range(2):
            line_item = (
                tenancy.line_item
                if number == 0 and flight == 0
                else LineItemFactory(campaign=campaign, name=f"Acme {number:02} flight {flight}")
            )
            creative = (
                tenancy.creative
                if number == 0 and flight == 0
                else CreativeFactory(line_item=line_item)
            )
            AdEventFactory(creative=creative, occurred_at=at(TODAY, 13), cost_micros=MICROS)
            for day in (YESTERDAY, TODAY):
                DailyDelivery.objects.create(
                    advertiser=tenancy.advertiser,
                    campaign=campaign,
                    line_item=line_item,
                    creative=creative,
                    day=day,
                    impressions=10,
                    clicks=1,
                    spend_micros=10 * MICROS,
                )


# Session, user, membership; account summary (3); KPIs and reach, this period's and the
# previous one's together (2); daily series (1); campaign table (2); active line items for
# pacing (1); hours of the day, the dayparts summed from them (1). The funnel comes with the
# KPIs. Counters and live totals: no query.
OVERVIEW_QUERIES = 13


@pytest.mark.parametrize("campaigns", [2, 25])
def test_the_overview_needs_the_same_queries_whatever_the_number_of_campaigns(
    client, tenancy, django_assert_num_queries, campaigns
):
    account_with_campaigns(tenancy, campaigns)
    client.force_login(tenancy.owner)
    with django_assert_num_queries(OVERVIEW_QUERIES):
        response = client.get(page(tenancy, "overview", **RANGE))
    rows = PageReader(response.content.decode()).tables["campaigns"][1:]
    assert len(rows) == campaigns
    assert rows[-1][2:4] == ["40", "4"]  # 2 line items × 2 days × (10 impressions, 1 click)
    assert response.context["tiles"][0].value == f"{campaigns * 2 * 2 * 10:,}"


# The overview's less the account summary and pacing, plus the page's object, its line items
# (campaign) or targeting (the line item page prefetches it), and one query for the creatives
# (the line items are summed from their creatives' rows).
@pytest.mark.parametrize(
    ("name", "attr", "queries"),
    [("campaign_report", "campaign", 14), ("line_item_report", "line_item", 16)],
)
def test_the_reports_need_a_bounded_number_of_queries(
    client, tenancy, django_assert_max_num_queries, name, attr, queries
):
    account_with_campaigns(tenancy, 3)
    client.force_login(tenancy.owner)
    with django_assert_max_num_queries(queries):
        assert client.get(page(tenancy, name, attr, **RANGE)).status_code == 200


# The page's assets


def test_the_dashboard_assets_are_served_and_chart_js_collects(client, tenancy):
    client.force_login(tenancy.owner)
    html = client.get(page(tenancy, "overview")).content.decode()
    for asset in ("vendor/chart-4.6.1.umd.min.js", "js/dashboard.js", "css/dashboard.css"):
        assert f"/static/{asset}" in html
        found = finders.find(asset)
        assert found, asset
    # collectstatic's manifest storage fails on a source map reference to a missing file.
    chart_js = Path(finders.find("vendor/chart-4.6.1.umd.min.js")).read_text()
    assert chart_js.startswith("/*!\n * Chart.js v4.6.1")
    assert "sourceMappingURL" not in chart_js
