"""Advertiser dashboards on a hand-counted world (built once for the module): who sees them, the
numbers they show against the hand count of its events, CSV exports that say what the screen
says, the date range form. On accounts without that world (unknown and inactive accounts, the
date range's defaults, a query count that does not grow with the number of campaigns):
test_dashboards_accounts.py."""

import csv
import datetime as dt
import io
import json
import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone

from ads.delivery import keys
from ads.delivery.counters import Bump, counters
from ads.models import DeliveryStatus, LineItem
from analytics import services
from analytics.forms import MAX_DAYS
from analytics.models import DailyDelivery
from catalog.models import Genre, Title
from tests.conftest import Tenancy, tenancy_make, world_once
from tests.factories import (
    AdEventFactory,
    CampaignFactory,
    CreativeFactory,
    GenreFactory,
    LineItemFactory,
    TitleFactory,
    ViewerFactory,
)

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 3, 10)  # in New York, where both tenancy accounts are (UTC−4 in March)
YESTERDAY = TODAY - dt.timedelta(days=1)
NOW = dt.datetime(2026, 3, 10, 16, 0, tzinfo=dt.UTC)  # noon in New York
RANGE = {"start": "2026-03-09", "end": "2026-03-10"}
MICROS = 1_000_000


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    """Pages read "today" and pacing from the clock: fix it at noon on 10 March, New York."""
    monkeypatch.setattr(timezone, "now", lambda: NOW)


def hand_counted_world() -> Tenancy:
    """Hand-counted delivery of Acme over 9–10 March (New York days), rolled up, on the
    tenancy's accounts (built at the tests' own `frozen_now`):

    - campaign "Acme summer refresh" (the tenancy's), creative A: on the 9th, impressions by
      ann and bob (1.25 each), bob clicks, ann completes; on the 10th, ann's impression (1.25)
      and her complete. All on a connected TV in the US West, title "Heat" (Drama, Comedy).
    - campaign "Acme winter push", creative B: carl's impression (2.00) on the 10th, on mobile
      in the US South, title "Dune" (Drama).
    - Globex (the rival) has a 99.00 impression on the 10th, on Acme's title and viewer.

    Acme over the range: 4 impressions, 1 click, 2 completes, 5.75 spent, reach 3.
    """
    with pytest.MonkeyPatch.context() as clock:
        clock.setattr(timezone, "now", lambda: NOW)
        return _hand_counted_delivery(tenancy_make())


def _hand_counted_delivery(tenancy: Tenancy) -> Tenancy:
    names = [
        (tenancy.campaign, "Acme summer refresh"),
        (tenancy.line_item, "Acme evenings flight"),
        (tenancy.rival_campaign, "Globex EV reveal"),
        (tenancy.rival_line_item, "Globex commuters flight"),
    ]
    for item, name in names:
        type(item).objects.filter(pk=item.pk).update(name=name)
        item.refresh_from_db()
    winter = CampaignFactory(advertiser=tenancy.advertiser, name="Acme winter push")
    creative_b = CreativeFactory(
        line_item=LineItemFactory(campaign=winter, name="Acme mornings flight"), name="B"
    )
    drama = GenreFactory(name="Drama", slug="drama")
    comedy = GenreFactory(name="Comedy", slug="comedy")
    heat, dune = TitleFactory(name="Heat"), TitleFactory(name="Dune")
    heat.genres.set([drama, comedy])
    dune.genres.set([drama])
    ann, bob, carl = (ViewerFactory(external_id=name) for name in ("ann", "bob", "carl"))

    def event(creative, kind, when, viewer, cost=0, title=heat, **fields):
        AdEventFactory(
            creative=creative,
            event_type=kind,
            occurred_at=when,
            viewer=viewer,
            title=title,
            cost_micros=cost,
            **fields,
        )

    creative_a = tenancy.creative
    event(creative_a, "impression", at(YESTERDAY, 14), ann, 1_250_000)
    event(creative_a, "impression", at(YESTERDAY, 15), bob, 1_250_000)
    event(creative_a, "click", at(YESTERDAY, 15, 1), bob)
    event(creative_a, "complete", at(YESTERDAY, 14, 1), ann)
    event(creative_a, "impression", at(TODAY, 13), ann, 1_250_000)
    event(creative_a, "complete", at(TODAY, 13, 1), ann)
    event(
        creative_b,
        "impression",
        at(TODAY, 14),
        carl,
        2_000_000,
        title=dune,
        device="mobile",
        region="us_south",
    )
    event(tenancy.rival_creative, "impression", at(TODAY, 13), ann, 99_000_000)
    services.rollup_day(day=YESTERDAY)
    services.rollup_day(day=TODAY)
    tenancy.winter = winter
    tenancy.winter_line_item = creative_b.line_item
    return tenancy


# Built once for the module (each test's writes are rolled back after it); the dashboards'
# tests on accounts without it are in test_dashboards_accounts.py.
world = world_once(hand_counted_world)


def page(tenancy, name, attr=None, *, slug=None, **params):
    args = [slug or tenancy.advertiser.slug]
    if attr:
        args.append(getattr(tenancy, attr).pk)
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return reverse(name, args=args) + (f"?{query}" if query else "")


class PageReader(HTMLParser):
    """Pulls out of a page what a person reads: the tiles (by `data-kpi` / `data-live`) and each
    table (by `data-table`) as rows of cell texts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tiles: dict[str, str] = {}
        self.live: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._tile = None
        self._table = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-kpi" in attrs:
            self._tile = (self.tiles, attrs["data-kpi"])
        elif "data-live" in attrs:
            self._tile = (self.live, attrs["data-live"])
        if tag == "table" and "data-table" in attrs:
            self._table = self.tables.setdefault(attrs["data-table"], [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "span":
            self._tile = None
        elif tag in ("td", "th") and self._cell is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._tile is not None:
            store, key = self._tile
            store[key] = store.get(key, "") + data.strip()
        if self._cell is not None:
            self._cell.append(data)


def read(client, path) -> PageReader:
    response = client.get(path)
    assert response.status_code == 200
    return PageReader(response.content.decode())


def plain(text: str) -> str:
    """A screen cell as CSV writes it: a count or amount (or a change of one) without its
    grouping, currency symbol or plus sign; any other text (a percentage) as it is."""
    if text == "—":
        return ""
    if re.fullmatch(r"[-+]?\$?\d{1,3}(,\d{3})*(\.\d\d)?", text):
        return text.replace("$", "").replace(",", "").removeprefix("+")
    return text


def read_csv(client, path) -> list[list[str]]:
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.reader(io.StringIO(response.content.decode("utf-8"))))


# The report pages, each with the tenancy attribute of its object.
PAGES = [("overview", None), ("campaign_report", "campaign"), ("line_item_report", "line_item")]
REPORTS = PAGES[1:]
PERIOD = ["comparison", "funnel", "daypart", "hour"]
BREAKDOWNS = ["genre", "region", "device", "title"]
TABLES = {
    "overview": ["daily", "campaigns", *PERIOD],
    "campaign_report": ["daily", *PERIOD, "line_items", "creatives", *BREAKDOWNS],
    "line_item_report": ["daily", *PERIOD, "creatives", *BREAKDOWNS],
}


# Who may see what


@pytest.mark.parametrize("role", ["owner", "manager", "analyst"])
@pytest.mark.parametrize(("name", "attr"), PAGES)
def test_members_see_the_dashboards(client, world, role, name, attr):
    client.force_login(getattr(world, role))
    response = client.get(page(world, name, attr))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme Sodas" in html
    if attr:
        assert getattr(world, attr).name in html
    for table in TABLES[name]:
        assert client.get(page(world, name, attr, format="csv", table=table)).status_code == 200


@pytest.mark.parametrize(("name", "attr"), PAGES)
def test_the_outsider_gets_404_on_this_accounts_pages_and_exports(client, world, name, attr):
    client.force_login(world.outsider)
    assert client.get(page(world, name, attr)).status_code == 404
    for table in TABLES[name]:
        assert client.get(page(world, name, attr, format="csv", table=table)).status_code == 404


@pytest.mark.parametrize(("name", "attr"), REPORTS)
def test_the_rivals_ids_under_this_slug_are_404(client, world, name, attr):
    client.force_login(world.owner)
    assert client.get(page(world, name, f"rival_{attr}")).status_code == 404
    export = page(world, name, f"rival_{attr}", format="csv", table="daily")
    assert client.get(export).status_code == 404


@pytest.mark.parametrize(("name", "attr"), REPORTS)
def test_this_accounts_ids_under_the_rivals_slug_are_404(client, world, name, attr):
    client.force_login(world.outsider)
    assert client.get(page(world, name, attr, slug=world.rival.slug)).status_code == 404


@pytest.mark.parametrize(("name", "attr"), PAGES)
def test_anonymous_is_sent_to_login(client, world, name, attr):
    for path in (page(world, name, attr), page(world, name, attr, format="csv", table="daily")):
        response = client.get(path)
        assert response.status_code == 302
        assert response.url.startswith(f"{reverse('login')}?next=")


@pytest.mark.parametrize(("name", "attr"), PAGES)
def test_no_rival_names_or_numbers_appear(client, world, name, attr):
    client.force_login(world.owner)
    html = client.get(page(world, name, attr, **RANGE)).content.decode()
    for rival in ("Globex", "EV reveal", "commuters flight", "launch spot", "99.00", "99000"):
        assert rival not in html
    for table in TABLES[name]:
        exported = client.get(page(world, name, attr, format="csv", table=table, **RANGE))
        assert "Globex" not in exported.content.decode()
        assert "99.00" not in exported.content.decode()


# The numbers


def test_the_overview_tiles_are_the_hand_count(client, world):
    client.force_login(world.analyst)
    tiles = read(client, page(world, "overview", **RANGE)).tiles
    assert tiles == {
        "impressions": "4",
        "clicks": "1",
        "ctr": "25.00%",  # 1 / 4
        "spend": "$5.75",  # 3 × 1.25 + 2.00
        "ecpm": "$1,437.50",  # 5.75 × 1000 / 4
        "cpc": "$5.75",
        "completion_rate": "50.00%",  # 2 / 4
        "reach": "3",  # ann, bob, carl; ann once over both days
        "average_frequency": "1.33",  # 4 / 3
    }


def test_the_campaign_table_has_each_campaigns_numbers_and_pacing(client, world):
    # 125.00 of the summer campaign's 500.00 daily budget is spent by noon: half its target.
    counters().add_many([Bump(keys.spent_day(world.line_item.pk, TODAY), 125 * MICROS)])
    client.force_login(world.owner)
    response = client.get(page(world, "overview", **RANGE))
    rows = PageReader(response.content.decode()).tables["campaigns"]
    assert rows[0] == [
        "Campaign",
        "Status",
        "Impressions",
        "Clicks",
        "CTR",
        "Completion rate",
        "Spend (USD)",
        "eCPM (USD)",
        "CPC (USD)",
        "Spent today (USD)",
        "Even target now (USD)",
        "Daily budget (USD)",
        "Pacing (spent / target)",
    ]
    assert rows[1:] == [
        ["Acme summer refresh", "Active", "3", "1", "33.33%", "66.67%", "$3.75", "$1,250.00",
         "$3.75", "$125.00", "$250.00", "$500.00", "50.00%"],
        ["Acme winter push", "Active", "1", "0", "0.00%", "0.00%", "$2.00", "$2,000.00", "—",
         "$0.00", "$250.00", "$500.00", "0.00%"],
    ]  # fmt: skip
    exported = read_csv(client, page(world, "overview", format="csv", table="campaigns", **RANGE))
    assert exported[1][6:] == ["3.75", "1250.00", "3.75", "125.00", "250.00", "500.00", "50.00%"]
    html = response.content.decode()
    assert 'class="pace-fill" style="width: 25.0%"' in html  # 125 of 500
    assert 'class="pace-mark" style="left: 50.0%"' in html  # the target: 250 of 500


def test_a_campaign_without_active_line_items_has_no_pacing(client, world):
    LineItem.objects.filter(pk=world.winter_line_item.pk).update(status=DeliveryStatus.PAUSED)
    client.force_login(world.owner)
    rows = read(client, page(world, "overview", **RANGE)).tables["campaigns"]
    assert rows[2][0] == "Acme winter push"
    assert rows[2][-4:] == ["—", "—", "—", "—"]


def test_the_live_strip_starts_from_todays_counters(client, world):
    counters().add_many(
        [
            Bump(keys.live(world.advertiser.pk, TODAY, "impressions"), 7),
            Bump(keys.live(world.advertiser.pk, TODAY, "clicks"), 1),
            Bump(keys.live(world.advertiser.pk, TODAY, "completes"), 3),
            Bump(keys.live(world.advertiser.pk, TODAY, "spend"), 4_500_000),
            Bump(keys.live(world.rival.pk, TODAY, "impressions"), 1000),
        ]
    )
    client.force_login(world.owner)
    response = client.get(page(world, "overview"))
    assert PageReader(response.content.decode()).live == {
        "day": "2026-03-10",
        "impressions": "7",
        "clicks": "1",
        "ctr": "14.29%",  # 1 / 7
        "completes": "3",
        "completion_rate": "42.86%",  # 3 / 7
        "spend": "$4.50",
    }
    assert 'data-live-url="/ws/a/acme/live/"' in response.content.decode()
    # dashboard.js writes the socket's spend with the same affixes: "$4.50".
    assert 'data-money-prefix="$" data-money-suffix=""' in response.content.decode()


def test_the_chart_reads_the_daily_series(client, world):
    client.force_login(world.owner)
    response = client.get(page(world, "overview", **RANGE))
    html = response.content.decode()
    script = html.split('<script id="chart-data" type="application/json">')[1].split("</script>")
    assert json.loads(script[0]) == {
        "labels": ["2026-03-09", "2026-03-10"],
        "impressions": [2, 2],
        "clicks": [1, 0],
        "spend": [2.5, 3.25],
        "currency": "USD",
        "money_affixes": ["$", ""],
    }
    assert "data-live-chart" in html  # the overview's chart follows the socket
    assert PageReader(html).tables["daily"][1:] == [
        ["2026-03-09", "2", "1", "50.00%", "$2.50"],
        ["2026-03-10", "2", "0", "0.00%", "$3.25"],
    ]


def test_the_campaign_report_is_the_campaigns_hand_count(client, world):
    client.force_login(world.analyst)
    reader = read(client, page(world, "campaign_report", "campaign", **RANGE))
    assert reader.tiles == {
        "impressions": "3",
        "clicks": "1",
        "ctr": "33.33%",
        "spend": "$3.75",
        "ecpm": "$1,250.00",
        "cpc": "$3.75",
        "completion_rate": "66.67%",
        "reach": "2",
        "average_frequency": "1.50",
    }
    kpis = ["3", "1", "33.33%", "66.67%", "$3.75", "$1,250.00", "$3.75"]
    assert reader.tables["device"][1:] == [["Connected TV", *kpis]]
    assert reader.tables["region"][1:] == [["US West", *kpis]]
    assert reader.tables["title"][1:] == [["Heat", *kpis]]
    assert reader.tables["genre"][1:] == [["Comedy", *kpis], ["Drama", *kpis]]
    assert reader.tables["genre"][0] == [
        "Genre",
        "Impressions",
        "Clicks",
        "CTR",
        "Completion rate",
        "Spend (USD)",
        "eCPM (USD)",
        "CPC (USD)",
    ]
    assert "Acme winter push" not in str(reader.tables)
    assert "live-url" not in client.get(page(world, "campaign_report", "campaign")).content.decode()


def test_the_line_item_report_is_the_line_items_hand_count(client, world):
    client.force_login(world.owner)
    reader = read(client, page(world, "line_item_report", "winter_line_item", **RANGE))
    assert (reader.tiles["impressions"], reader.tiles["spend"], reader.tiles["cpc"]) == (
        "1",
        "$2.00",
        "—",
    )
    kpis = ["1", "0", "0.00%", "0.00%", "$2.00", "$2,000.00", "—"]
    assert reader.tables["device"][1:] == [["Mobile", *kpis]]
    assert reader.tables["region"][1:] == [["US South", *kpis]]
    assert reader.tables["title"][1:] == [["Dune", *kpis]]
    assert reader.tables["genre"][1:] == [["Drama", *kpis]]


def test_breakdowns_are_ordered_by_impressions(client, world):
    # Four more impressions of creative A in the US South: the South now leads the West (3).
    for minute in range(4):
        AdEventFactory(
            creative=world.creative, occurred_at=at(TODAY, 17, minute), region="us_south"
        )
    services.rollup_day(day=TODAY)
    client.force_login(world.owner)
    rows = read(client, page(world, "campaign_report", "campaign", **RANGE)).tables["region"]
    assert [(row[0], row[1]) for row in rows[1:]] == [("US South", "4"), ("US West", "3")]


# CSV


@pytest.mark.parametrize(("name", "attr"), PAGES)
def test_every_csv_export_equals_its_table_on_screen(client, world, name, attr):
    counters().add_many([Bump(keys.spent_day(world.line_item.pk, TODAY), 125 * MICROS)])
    client.force_login(world.owner)
    screen = read(client, page(world, name, attr, **RANGE)).tables
    assert sorted(screen) == sorted(TABLES[name])
    for table, rows in screen.items():
        exported = read_csv(client, page(world, name, attr, format="csv", table=table, **RANGE))
        # The same cells; numbers plain ("$1,250.00" on screen is 1250.00), an undefined
        # ratio ("—") is an empty cell.
        assert exported == [[plain(text) for text in row] for row in rows]
        assert len(exported) > 1


FORMULA = '=HYPERLINK("http://x","click")'


@pytest.mark.parametrize(("name", "attr"), PAGES)
def test_no_csv_cell_is_a_formula_a_spreadsheet_would_run(client, world, name, attr):
    """Names that advertisers and staff choose reach every export: a campaign, a line item, a
    creative, a title, a genre named like a formula are written as text (a leading
    apostrophe); plain numbers, negative ones included, stay numbers."""
    hostile = [
        (world.campaign, FORMULA),
        (world.line_item, "+SUM(1,2)"),
        (world.creative, "@cmd"),
        (Title.objects.get(name="Heat"), "-2+3"),
        (Genre.objects.get(name="Drama"), "\t=1"),
    ]
    for item, text in hostile:
        type(item).objects.filter(pk=item.pk).update(name=text)
    client.force_login(world.owner)
    cells = []
    for table in TABLES[name]:
        cells += sum(
            read_csv(client, page(world, name, attr, format="csv", table=table, **RANGE)), []
        )
    formulas = [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert [cell for cell in formulas if not re.fullmatch(r"[-+]?\d+(\.\d+)?%?", cell)] == []
    expected = {"overview": "'" + FORMULA, "campaign_report": "'+SUM(1,2)"}
    expected["line_item_report"] = "'@cmd"
    assert expected[name] in cells


def test_the_csv_is_named_after_the_page_table_and_range(client, world):
    client.force_login(world.owner)
    response = client.get(page(world, "overview", format="csv", table="campaigns", **RANGE))
    assert response["Content-Disposition"] == (
        'attachment; filename="acme-overview-campaigns-2026-03-09-2026-03-10.csv"'
    )


def test_an_unknown_table_or_bad_dates_in_an_export_is_a_400(client, world):
    client.force_login(world.owner)
    response = client.get(page(world, "overview", format="csv", table="secrets"))
    assert response.status_code == 400
    assert "daily, campaigns" in response.content.decode()
    response = client.get(page(world, "overview", format="csv", table="daily", start="2026-02-30"))
    assert response.status_code == 400
    assert "Start date" in response.content.decode()


def test_csv_links_carry_the_range(client, world):
    client.force_login(world.owner)
    html = client.get(page(world, "overview", **RANGE)).content.decode()
    assert 'href="?start=2026-03-09&amp;end=2026-03-10&amp;format=csv&amp;table=campaigns"' in html


# The date range


def test_a_valid_range_is_shown(client, world):
    client.force_login(world.owner)
    response = client.get(page(world, "overview", start="2026-03-10", end="2026-03-10"))
    assert response.context["form_errors"] == []
    assert response.context["chart"]["labels"] == ["2026-03-10"]
    assert PageReader(response.content.decode()).tiles["impressions"] == "2"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2026-02-30"}, "Start date: Enter a valid date."),
        ({"end": "yesterday"}, "End date: Enter a valid date."),
        ({"start": "2026-03-10", "end": "2026-03-01"}, "The start date must be on or before"),
        ({"start": "2024-01-01", "end": "2026-03-10"}, f"Choose at most {MAX_DAYS} days."),
        ({"start": "9999-12-30", "end": "9999-12-31"}, "Choose dates between 2000-01-01 and"),
        ({"start": "0001-01-01", "end": "0001-01-02"}, "Choose dates between 2000-01-01 and"),
    ],
)
@pytest.mark.parametrize(("name", "attr"), PAGES)
def test_bad_dates_are_a_form_error_not_a_500(client, world, name, attr, params, message):
    client.force_login(world.owner)
    response = client.get(page(world, name, attr, **params))
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert 'role="alert"' in html
    # The page falls back to the default week, and says so.
    assert "Showing 2026-03-04 to 2026-03-10 instead." in html
    assert response.context["chart"]["labels"][0] == "2026-03-04"


def test_money_is_rounded_to_cents_on_the_page_and_in_the_export_alike(client, world):
    # Today's two rollup rows spend a third of a cent each: 0.006666 in all.
    DailyDelivery.objects.filter(advertiser=world.advertiser, day=TODAY).update(spend_micros=3_333)
    client.force_login(world.owner)
    rows = read(client, page(world, "overview", **RANGE)).tables["daily"]
    assert [row[-1] for row in rows[1:]] == ["$2.50", "$0.01"]
    exported = read_csv(client, page(world, "overview", format="csv", table="daily", **RANGE))
    assert [row[-1] for row in exported[1:]] == ["2.50", "0.01"]


# Reports by creative, line item, hour of day and daypart; the quartile funnel; the previous
# period. The world's hand count: New York is UTC−4 in March, so ann's impressions are at 10:00
# (9th) and 09:00 (10th), bob's at 11:00 (9th, with his click), carl's at 10:00 (10th).

NO_DELIVERY = ["0", "0", "—", "—", "$0.00", "—", "—"]


def test_the_comparison_is_the_hand_count_of_both_periods(client, world):
    client.force_login(world.owner)
    response = client.get(page(world, "overview", start="2026-03-10", end="2026-03-10"))
    reader = PageReader(response.content.decode())
    # The 10th (ann 1.25 and carl 2.00, ann completes) against the 9th (ann and bob 1.25
    # each, bob clicks, ann completes).
    assert reader.tables["comparison"] == [
        ["Metric", "This period", "Previous (2026-03-09 to 2026-03-09)", "Change", "Change %"],
        ["Impressions", "2", "2", "0", "+0.00%"],
        ["Clicks", "0", "1", "-1", "-100.00%"],
        ["CTR", "0.00%", "50.00%", "-50.00 pp", "-100.00%"],
        ["Spend (USD)", "$3.25", "$2.50", "+$0.75", "+30.00%"],
        ["eCPM (USD)", "$1,625.00", "$1,250.00", "+$375.00", "+30.00%"],
        ["CPC (USD)", "—", "$2.50", "—", "—"],
        ["Completion rate", "50.00%", "50.00%", "+0.00 pp", "+0.00%"],
        ["Reach (viewers)", "2", "2", "0", "+0.00%"],  # ann and carl; ann and bob
        ["Average frequency", "1.00", "1.00", "+0.00", "+0.00%"],
    ]
    tiles = {tile.key: (tile.value, tile.change, tile.trend) for tile in response.context["tiles"]}
    assert tiles["spend"] == ("$3.25", "+$0.75 (+30.00%)", "up")
    assert tiles["clicks"] == ("0", "-1 (-100.00%)", "down")
    assert tiles["impressions"] == ("2", "0 (+0.00%)", "")
    assert tiles["cpc"] == ("—", "—", "")
    html = response.content.decode()
    assert "Changes against the previous period, 2026-03-09 to 2026-03-09." in html
    assert 'data-change="spend" title="Against 2026-03-09 to 2026-03-09">▲ +$0.75' in html
    exported = read_csv(
        client, page(world, "overview", format="csv", table="comparison", start="2026-03-10")
    )
    assert exported[4] == ["Spend (USD)", "3.25", "2.50", "0.75", "+30.00%"]
    assert exported[2] == ["Clicks", "0", "1", "-1", "-100.00%"]


def test_a_period_after_nothing_has_no_relative_change(client, world):
    client.force_login(world.owner)
    rows = read(client, page(world, "campaign_report", "campaign", **RANGE)).tables["comparison"]
    assert rows[0][2] == "Previous (2026-03-07 to 2026-03-08)"
    assert rows[1] == ["Impressions", "3", "0", "+3", "—"]
    assert rows[4] == ["Spend (USD)", "$3.75", "$0.00", "+$3.75", "—"]


def test_the_quartile_funnel_is_the_hand_count(client, world):
    # Of the 4 impressions: 3 played a quarter, 3 half, 2 three quarters, 2 to the end.
    for kind, count in (("first_quartile", 3), ("midpoint", 3), ("third_quartile", 2)):
        for number in range(count):
            AdEventFactory(
                creative=world.creative, event_type=kind, occurred_at=at(TODAY, 13, number)
            )
    services.rollup_day(day=TODAY)
    client.force_login(world.owner)
    response = client.get(page(world, "overview", **RANGE))
    assert PageReader(response.content.decode()).tables["funnel"] == [
        ["Stage", "Ads", "Of impressions", "Of the stage before"],
        ["Impression (started)", "4", "100.00%", "—"],
        ["25% played", "3", "75.00%", "75.00%"],
        ["50% played", "3", "75.00%", "100.00%"],
        ["75% played", "2", "50.00%", "66.67%"],
        ["Complete", "2", "50.00%", "100.00%"],
    ]
    assert 'class="pace-fill" style="width: 75.0%"' in response.content.decode()
    # The line item of the winter campaign: carl's impression, played no further.
    rows = read(client, page(world, "line_item_report", "winter_line_item", **RANGE)).tables
    assert [row[1] for row in rows["funnel"][1:]] == ["1", "0", "0", "0", "0"]


def test_the_hours_are_the_accounts_local_hours(client, world):
    client.force_login(world.owner)
    rows = read(client, page(world, "overview", **RANGE)).tables["hour"]
    assert rows[0][0] == "Hour (America/New_York)"
    assert len(rows) == 1 + 24
    by_hour = {row[0]: row[1:] for row in rows[1:]}
    assert by_hour["09:00–10:00"] == ["1", "0", "0.00%", "100.00%", "$1.25", "$1,250.00", "—"]
    assert by_hour["10:00–11:00"] == ["2", "0", "0.00%", "50.00%", "$3.25", "$1,625.00", "—"]
    assert by_hour["11:00–12:00"] == [
        "1", "1", "100.00%", "0.00%", "$1.25", "$1,250.00", "$1.25"
    ]  # fmt: skip
    assert by_hour["23:00–00:00"] == NO_DELIVERY
    assert [row[0] for row in rows[1:3]] == ["00:00–01:00", "01:00–02:00"]


def test_the_dayparts_sum_the_hours_late_night_across_midnight(client, world):
    # 03:30 UTC on the 10th is 23:30 on the 9th in New York: late night, with the small hours.
    AdEventFactory(creative=world.creative, occurred_at=at(TODAY, 3, 30), cost_micros=MICROS)
    services.rollup_day(day=YESTERDAY)
    client.force_login(world.owner)
    reader = read(client, page(world, "line_item_report", "line_item", **RANGE))
    assert reader.tables["daypart"] == [
        ["Daypart", *reader.tables["genre"][0][1:]],
        ["Morning (06–12)", "3", "1", "33.33%", "66.67%", "$3.75", "$1,250.00", "$3.75"],
        ["Daytime (12–17)", *NO_DELIVERY],
        ["Prime time (17–23)", *NO_DELIVERY],
        ["Late night (23–06)", "1", "0", "0.00%", "0.00%", "$1.00", "$1,000.00", "—"],
    ]
    assert {row[0]: row[1] for row in reader.tables["hour"][1:]}["23:00–00:00"] == "1"


def test_the_campaign_report_by_line_item_and_by_creative(client, world):
    client.force_login(world.owner)
    reader = read(client, page(world, "campaign_report", "campaign", **RANGE))
    kpis = ["3", "1", "33.33%", "66.67%", "$3.75", "$1,250.00", "$3.75"]
    assert reader.tables["line_items"] == [
        ["Line item", *reader.tables["genre"][0][1:]],
        ["Acme evenings flight", *kpis],
    ]
    assert reader.tables["creatives"][0][:2] == ["Creative", "Line item"]
    assert reader.tables["creatives"][1:] == [["Acme spring spot", "Acme evenings flight", *kpis]]
    html = client.get(page(world, "campaign_report", "campaign", **RANGE)).content.decode()
    line_item_href = page(world, "line_item_report", "line_item", **RANGE).replace("&", "&amp;")
    assert f'<a href="{line_item_href}">Acme evenings flight</a>' in html
    assert f'<a href="{page(world, "creative_detail", "creative")}">Acme spring spot</a>' in html


def test_a_line_items_creatives_sum_to_it_and_list_no_other(client, world):
    second = CreativeFactory(line_item=world.line_item, name="Acme second spot")
    AdEventFactory(creative=second, occurred_at=at(TODAY, 20), cost_micros=4 * MICROS)
    services.rollup_day(day=TODAY)
    client.force_login(world.owner)
    tables = read(client, page(world, "line_item_report", "line_item", **RANGE)).tables
    assert tables["creatives"][0][0:2] == ["Creative", "Impressions"]  # no line item column
    assert tables["creatives"][1:] == [
        ["Acme spring spot", "3", "1", "33.33%", "66.67%", "$3.75", "$1,250.00", "$3.75"],
        ["Acme second spot", "1", "0", "0.00%", "0.00%", "$4.00", "$4,000.00", "—"],
    ]
    campaign = read(client, page(world, "campaign_report", "campaign", **RANGE)).tables
    assert campaign["line_items"][1:] == [
        ["Acme evenings flight", "4", "1", "25.00%", "50.00%", "$7.75", "$1,937.50", "$7.75"]
    ]


def test_the_period_reports_of_an_empty_range_say_so(client, world):
    client.force_login(world.owner)
    response = client.get(page(world, "overview", start="2026-02-01", end="2026-02-02"))
    tables = PageReader(response.content.decode()).tables
    assert "funnel" not in tables and "hour" not in tables and "daypart" not in tables
    assert response.content.decode().count("No delivery in the range.") == 2  # hours, dayparts
    assert "No impressions in the range." in response.content.decode()
    exported = read_csv(
        client,
        page(world, "overview", format="csv", table="hour", start="2026-02-01", end="2026-02-02"),
    )
    assert exported == [
        ["Hour (America/New_York)", "Impressions", "Clicks", "CTR", "Completion rate",
         "Spend (USD)", "eCPM (USD)", "CPC (USD)"]
    ]  # fmt: skip


def test_the_rivals_line_items_and_creatives_are_not_in_this_accounts_reports(client, world):
    # The rival's impression at 13:00 UTC on the 10th is in its own rows only.
    client.force_login(world.outsider)
    response = client.get(page(world, "overview", slug=world.rival.slug, **RANGE))
    tables = PageReader(response.content.decode()).tables
    assert tables["hour"][1:][9] == [
        "09:00–10:00", "1", "0", "0.00%", "0.00%", "$99.00", "$99,000.00", "—"
    ]  # fmt: skip
    assert tables["funnel"][1] == ["Impression (started)", "1", "100.00%", "—"]
    assert (
        client.get(page(world, "campaign_report", "campaign", slug=world.rival.slug)).status_code
        == 404
    )
