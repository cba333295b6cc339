"""The tools: their numbers are the analytics selectors' numbers, their arguments are checked
against the same declarations that make the LLM's JSON schemas, and another account's
campaign, line item or creative is "not found", by id and by name, in the same words as one
that does not exist."""

import datetime as dt

import pytest

from analytics import selectors
from insights import tools
from insights.tools import Context
from tests.insights.world import NOW

pytestmark = pytest.mark.django_db

LAST_WEEK = (dt.date(2026, 11, 23), dt.date(2026, 11, 29))


def run(context, name, **arguments):
    record = tools.call(context, name, arguments)
    assert not record.error, record.error
    return record.result


def test_kpis_are_the_selectors_numbers(context, world):
    campaign = world.campaigns["Summer Refresh"]
    result = run(context, "get_kpis", period="last week", campaign="Summer Refresh")
    expected = selectors.kpis(
        advertiser=world.fizzy, start=LAST_WEEK[0], end=LAST_WEEK[1], campaign_id=campaign.pk
    )
    assert expected.impressions > 100
    assert result["values"]["impressions"] == expected.impressions
    assert result["values"]["clicks"] == expected.clicks
    assert result["values"]["spend"] == round(float(expected.spend), 2)
    assert result["values"]["ctr"] == round(expected.ctr * 100, 2)
    assert result["values"]["reach"] == expected.reach
    assert result["scope"] == {"kind": "campaign", "id": campaign.pk, "name": "Summer Refresh"}
    assert (result["period"]["start"], result["period"]["end"]) == ("2026-11-23", "2026-11-29")


def test_a_creative_s_kpis(context, world):
    creative = world.creatives["Morning Fizz 15s"]
    result = run(context, "get_kpis", period="in November", creative="morning fizz 15s")
    rows = selectors.by_creative(
        advertiser=world.fizzy, start=dt.date(2026, 11, 1), end=dt.date(2026, 11, 30)
    )
    expected = next(row["kpis"] for row in rows if row["creative_id"] == creative.pk)
    assert result["values"]["impressions"] == expected.impressions > 0


def test_names_with_typos_resolve(context, world):
    assert run(context, "get_kpis", period="yesterday", campaign="sumer refesh")["scope"]["id"] == (
        world.campaigns["Summer Refresh"].pk
    )


@pytest.mark.parametrize(
    ("tool", "argument", "extra"),
    [
        ("get_kpis", "campaign", {"period": "last week"}),
        ("get_kpis", "line_item", {"period": "last week"}),
        ("get_kpis", "creative", {"period": "last week"}),
        ("time_series", "campaign", {"metric": "clicks"}),
        ("time_series", "line_item", {"metric": "clicks"}),
        ("breakdown", "campaign", {"dimension": "genre"}),
        ("breakdown", "line_item", {"dimension": "device"}),
        ("compare_periods", "campaign", {"period": "last week"}),
        ("compare_periods", "line_item", {"period": "last week"}),
        ("compare_periods", "creative", {"period": "last week"}),
        ("pacing", "campaign", {}),
        ("pacing", "line_item", {}),
        ("why_not_delivering", "line_item", {}),
        ("why_not_delivering", "campaign", {}),
        ("engaged_audience", "campaign", {}),
        ("list_line_items", "campaign", {}),
    ],
)
def test_another_account_s_objects_are_not_found(context, world, tool, argument, extra):
    """By id and by name, exactly as an id or a name that exists nowhere."""
    rival = {
        "campaign": world.campaigns["Aurora EV Launch"],
        "line_item": world.line_items["Aurora EV · Premium TV"],
        "creative": world.creatives["Aurora EV reveal 60s"],
    }[argument]
    by_id = tools.call(context, tool, {argument: rival.pk, **extra})
    nowhere = tools.call(context, tool, {argument: 999_999, **extra})
    label = argument.replace("_", " ")
    assert by_id.error == f"No {label} with id {rival.pk} in this account."
    assert nowhere.error == f"No {label} with id 999999 in this account."
    assert by_id.result == {} and not by_id.invalid
    by_name = tools.call(context, tool, {argument: rival.name, **extra})
    assert by_name.error == f"No {label} named “{rival.name}” in this account."


def test_the_rival_sees_its_own_and_not_ours(world):
    rival = Context(advertiser=world.northwind, now=NOW)
    names = [row["name"] for row in run(rival, "list_campaigns")["campaigns"]]
    assert names == ["Aurora EV Launch", "Summer Clearance"]
    # "Summer Refresh" is Fizzy's: the rival's closest name is not a match either.
    assert tools.call(rival, "get_kpis", {"campaign": "Summer Refresh"}).error


def test_breakdown_ranks_by_the_metric(context, world):
    result = run(
        context,
        "breakdown",
        dimension="creative",
        metric="ctr",
        order="worst",
        period="last 30 days",
    )
    ctrs = [row["ctr"] for row in result["rows"]]
    assert ctrs == sorted(ctrs) and len(ctrs) == 6
    rows = selectors.by_creative(
        advertiser=world.fizzy, start=dt.date(2026, 11, 3), end=dt.date(2026, 12, 2)
    )
    worst = min((row for row in rows), key=lambda row: row["kpis"].ctr)
    assert result["rows"][0]["label"] == worst["creative_name"]


def test_series_covers_every_day(context, world):
    result = run(context, "time_series", metric="impressions", period="since Monday")
    assert [point["start"] for point in result["points"]] == [
        "2026-11-30",
        "2026-12-01",
        "2026-12-02",
    ]
    expected = selectors.daily_series(
        advertiser=world.fizzy, start=dt.date(2026, 11, 30), end=dt.date(2026, 12, 2)
    )
    assert [p["impressions"] for p in result["points"]] == [p["impressions"] for p in expected]


def test_compare_uses_the_days_before(context, world):
    result = run(context, "compare_periods", period="last week", campaign="Summer Refresh")
    comparison = selectors.kpis_against_previous(
        advertiser=world.fizzy,
        start=LAST_WEEK[0],
        end=LAST_WEEK[1],
        campaign_id=world.campaigns["Summer Refresh"].pk,
    )
    impressions = result["metrics"]["impressions"]
    assert impressions["current"] == comparison.current.impressions
    assert impressions["previous"] == comparison.previous.impressions
    assert impressions["change"] == comparison.current.impressions - comparison.previous.impressions


def test_why_names_the_paused_campaign(context, world):
    result = run(context, "why_not_delivering", campaign="Winter Teaser")
    (item,) = result["line_items"]
    assert not item["delivering"]
    assert "paused" in item["blocking"][0]["detail"]


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("breakdown", {"dimension": "age"}, "`dimension` must be one of"),
        ("breakdown", {"dimension": "genre", "top_n": 500}, "at most 50"),
        ("breakdown", {"dimension": "genre", "top_n": "many"}, "whole number"),
        ("get_kpis", {"advertiser": "northwind"}, "Unknown argument `advertiser`"),
        ("get_kpis", {"campaign": "x" * 300}, "longer than 200"),
        ("compare_periods", {}, "`period` is required"),
        ("delete_everything", {}, "no tool named"),
        ("get_kpis", ["not", "an", "object"], "JSON object"),
    ],
)
def test_bad_arguments_name_the_problem(context, name, arguments, message):
    record = tools.call(context, name, arguments)
    assert message in record.error and record.invalid


def test_a_period_it_cannot_read_is_said(context):
    record = tools.call(context, "get_kpis", {"period": "whenever"})
    assert "not a period I can read" in record.error


def test_schemas_come_from_the_declarations():
    schemas = {schema["function"]["name"]: schema["function"] for schema in tools.schemas()}
    assert set(schemas) == set(tools.TOOLS)
    breakdown = schemas["breakdown"]["parameters"]
    assert breakdown["required"] == ["dimension"]
    assert breakdown["properties"]["top_n"] == {
        "type": "integer",
        "description": "How many rows.",
        "minimum": 1,
        "maximum": 50,
    }
    assert "age" not in breakdown["properties"]["dimension"]["enum"]
    assert breakdown["additionalProperties"] is False
    # The account is never an argument.
    assert not any("advertiser" in s["parameters"]["properties"] for s in schemas.values())
