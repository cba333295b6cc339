"""The account API's reports and insights question: the dashboards' numbers for the key's
account only, checked against the hand-counted events of the dashboards' world, as JSON and as
CSV (the same rows); the insights question answered for the key's account, in its maker's
conversation."""

import csv
import io

import pytest
import yaml
from django.test import Client

from ads import services
from insights.models import Conversation
from tests.analytics import test_dashboards

# The dashboards' hand-counted world (9–10 March 2026, New York), and its frozen clock.
world = test_dashboards.world
frozen_now = test_dashboards.frozen_now

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

RANGE = "start=2026-03-09&end=2026-03-10"


def key_client(advertiser, user, scope="read"):
    _, raw_key = services.account_key_create(
        advertiser=advertiser, created_by=user, name="Reports", scope=scope
    )
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw_key}"
    return client


@pytest.fixture
def api(world):
    return key_client(world.advertiser, world.owner)


@pytest.fixture
def outsider_api(world):
    world.rival.memberships.filter(user=world.outsider).update(role="owner")
    return key_client(world.rival, world.outsider)


def rows(api, breakdown, query=RANGE):
    response = api.get(f"/api/v1/reports/delivery?{query}&breakdown={breakdown}")
    assert response.status_code == 200, response.content
    return response.json()["rows"]


def test_delivery_by_day_is_the_hand_count(api, world, client):
    body = api.get(f"/api/v1/reports/delivery?{RANGE}").json()
    # The schema requires only what every breakdown's rows have; the rest depend on it.
    schema = yaml.safe_load(client.get("/api/schema/").content)["components"]["schemas"]
    assert set(schema["DeliveryRow"]["required"]) == {
        "impressions",
        "clicks",
        "spend",
        "ctr",
    }
    assert (body["start"], body["end"], body["currency"], body["breakdown"]) == (
        "2026-03-09",
        "2026-03-10",
        "USD",
        "day",
    )
    # 9th: ann and bob (1.25 each), bob clicks; 10th: ann (1.25) and carl (2.00).
    assert body["rows"] == [
        {"day": "2026-03-09", "impressions": 2, "clicks": 1, "ctr": 0.5, "spend": "2.50"},
        {"day": "2026-03-10", "impressions": 2, "clicks": 0, "ctr": 0.0, "spend": "3.25"},
    ]
    # One campaign: the winter push is carl's impression alone.
    winter = rows(api, "day", f"{RANGE}&campaign={world.winter.pk}")
    assert [(row["impressions"], row["spend"]) for row in winter] == [(0, "0.00"), (1, "2.00")]


def test_every_dashboard_breakdown(api, world):
    by_creative = rows(api, "creative")
    assert [
        (row["creative_name"], row["impressions"], row["clicks"], row["completes"], row["spend"])
        for row in by_creative
    ] == [("Acme spring spot", 3, 1, 2, "3.75"), ("B", 1, 0, 0, "2.00")]
    assert by_creative[0]["ecpm"] == "1250.00" and by_creative[0]["cpc"] == "3.75"
    assert by_creative[1]["cpc"] is None  # undefined, not zero
    assert [row["ctr"] for row in by_creative] == [1 / 3, 0.0]
    assert by_creative[0]["completion_rate"] == 2 / 3
    assert [(r["line_item_name"], r["impressions"]) for r in rows(api, "line_item")] == [
        ("Acme evenings flight", 3),
        ("Acme mornings flight", 1),
    ]
    devices = {row["value"]: (row["label"], row["impressions"]) for row in rows(api, "device")}
    assert devices["mobile"] == ("Mobile", 1) and devices["ctv"][1] == 3
    regions = {row["value"]: row["impressions"] for row in rows(api, "region")}
    assert regions["us_south"] == 1 and sum(regions.values()) == 4
    genres = {row["label"]: row["impressions"] for row in rows(api, "genre")}
    assert genres == {"Drama": 4, "Comedy": 3}  # a title in two genres counts in each
    titles = {row["label"]: row["spend"] for row in rows(api, "title")}
    assert titles == {"Heat": "3.75", "Dune": "2.00"}
    hours = rows(api, "hour")
    # In New York (UTC−4): ann 10:00 and bob 11:00 on the 9th, ann 09:00 and carl 10:00 on
    # the 10th.
    assert [(row["hour"], row["impressions"]) for row in hours if row["impressions"]] == [
        (9, 1),
        (10, 2),
        (11, 1),
    ]
    assert len(hours) == 24
    assert (hours[0]["ctr"], hours[0]["spend"]) == (None, "0.00")  # nothing shown: undefined
    dayparts = [(row["daypart"], row["impressions"]) for row in rows(api, "daypart")]
    assert dayparts == [("morning", 4), ("daytime", 0), ("primetime", 0), ("late_night", 0)]


def test_the_comparison_with_the_previous_period(api, world):
    body = api.get("/api/v1/reports/comparison?start=2026-03-10&end=2026-03-10").json()
    assert (body["previous_start"], body["previous_end"]) == ("2026-03-09", "2026-03-09")
    metrics = {row["metric"]: row for row in body["rows"]}
    assert metrics["impressions"] == {
        "metric": "impressions",
        "current": 2,
        "previous": 2,
        "change": 0,
        "change_ratio": 0.0,
    }
    assert (metrics["clicks"]["change"], metrics["clicks"]["change_ratio"]) == (-1, -1.0)
    assert metrics["spend"] == {
        "metric": "spend",
        "current": "3.25",
        "previous": "2.50",
        "change": "0.75",
        "change_ratio": 0.3,
    }
    assert (metrics["reach"]["current"], metrics["reach"]["previous"]) == (2, 2)
    assert metrics["cpc"]["current"] is None and metrics["cpc"]["change"] is None


@pytest.mark.parametrize("path", ["delivery?breakdown=creative&", "comparison?"])
def test_csv_says_what_json_says(api, world, path):
    url = f"/api/v1/reports/{path}{RANGE}"
    as_json = api.get(url).json()["rows"]
    response = api.get(url, headers={"Accept": "text/csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    table = list(csv.reader(io.StringIO(response.content.decode())))
    assert table[0] == list(as_json[0])
    assert table[1:] == [["" if v is None else str(v) for v in row.values()] for row in as_json]


def test_csv_cells_cannot_run_as_formulas(api, world):
    world.creative.name = '=HYPERLINK("http://x","click")'
    world.creative.save()
    response = api.get(
        f"/api/v1/reports/delivery?{RANGE}&breakdown=creative", HTTP_ACCEPT="text/csv"
    )
    cells = [row[1] for row in csv.reader(io.StringIO(response.content.decode()))]
    assert '\'=HYPERLINK("http://x","click")' in cells


def test_report_errors_are_json_named_and_another_accounts_ids_are_404(api, outsider_api, world):
    for query, field in [
        ("start=2026-03-10&end=2026-03-09", "non_field_errors"),
        ("start=yesterday", "start"),
        ("breakdown=planet", "breakdown"),
        ("campaign=0", "campaign"),
    ]:
        response = api.get(f"/api/v1/reports/delivery?{query}", HTTP_ACCEPT="text/csv")
        assert response.status_code == 400, query
        assert response["Content-Type"] == "application/json"
        assert list(response.json()["error"]["fields"]) == [field]
    for path in ("delivery", "comparison"):
        for query in (f"campaign={world.campaign.pk}", f"line_item={world.line_item.pk}"):
            response = outsider_api.get(f"/api/v1/reports/{path}?{RANGE}&{query}")
            assert response.status_code == 404, (path, query)
        # Their own report holds only their own delivery: Globex's 99.00 impression.
        own = outsider_api.get(f"/api/v1/reports/delivery?{RANGE}").json()["rows"]
        assert [row["spend"] for row in own] == ["0.00", "99.00"]


def test_the_insights_question_is_answered_for_the_keys_account(api, outsider_api, world):
    asked = api.post(
        "/api/v1/insights/questions",
        {"question": "How many impressions did we get yesterday?"},
        content_type="application/json",
    )
    assert asked.status_code == 201, asked.content  # a read key may ask
    answer = asked.json()
    assert answer["path"] == "offline"
    # Acme's 9 March, not Globex's 99.00: 2 impressions, 1 click, $2.50.
    assert "impressions 2" in answer["text"] and "$2.50 spent" in answer["text"]
    conversation = Conversation.objects.get(pk=answer["conversation"])
    assert (conversation.advertiser, conversation.user) == (world.advertiser, world.owner)
    follow_up = api.post(
        "/api/v1/insights/questions",
        {"question": "and the day before?", "conversation": conversation.pk},
        content_type="application/json",
    )
    assert follow_up.json()["conversation"] == conversation.pk
    # Another account's conversation is a 404; its question is about its own numbers.
    stolen = outsider_api.post(
        "/api/v1/insights/questions",
        {"question": "and the day before?", "conversation": conversation.pk},
        content_type="application/json",
    )
    assert stolen.status_code == 404
    empty = api.post(
        "/api/v1/insights/questions", {"question": "   "}, content_type="application/json"
    )
    assert (empty.status_code, list(empty.json()["error"]["fields"])) == (400, ["question"])


def test_an_empty_breakdown_is_a_csv_header(api, world):
    response = api.get(
        "/api/v1/reports/delivery?start=2026-01-01&end=2026-01-02&breakdown=creative",
        HTTP_ACCEPT="text/csv",
    )
    assert response["Content-Type"].startswith("text/csv")
    assert response.content.decode().splitlines() == [
        "creative_id,creative_name,line_item_id,line_item_name,impressions,clicks,completes,"
        "spend,ctr,completion_rate,ecpm,cpc"
    ]
