"""The LLM path against a stand-in provider over real HTTP: a correct tool-calling run; a
hallucinated number (the offline answer replaces it, and it is logged); another account's
campaign id (not found); malformed arguments, an unknown tool, a slow and a failing provider
(the offline answer, said discreetly); tenant text only inside tool results."""

import datetime as dt
import json
import logging

import pytest
from django.urls import reverse

from analytics import selectors
from insights import services
from insights.models import Message
from tests.insights.stand_in import Fails, Slow, StandIn, tool_call
from tests.insights.world import INJECTION

pytestmark = pytest.mark.django_db

QUESTION = "How did Summer Refresh do last week compared with the week before?"


@pytest.fixture
def provider(settings):
    """Start a stand-in with a script, pointing the settings at it."""
    started = []

    def start(*script, timeout=5.0):
        stand_in = StandIn(list(script)).__enter__()
        started.append(stand_in)
        settings.LLM_BASE_URL = stand_in.base_url
        settings.LLM_API_KEY = "test-key"
        settings.LLM_MODEL = "stand-in-model"
        settings.LLM_TIMEOUT_SECONDS = timeout
        return stand_in

    yield start
    for stand_in in started:
        stand_in.__exit__(None, None, None)


def tool_results(body: dict) -> list[dict]:
    return [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]


def ask(world, question=QUESTION, user=None):
    return services.question_ask(
        advertiser=world.fizzy, user=user or world.owner, question=question
    )


def calls_compare(body):
    return {
        "tool_calls": [
            tool_call("compare_periods", {"period": "last week", "campaign": "Summer Refresh"})
        ]
    }


def answers_with_the_numbers(body):
    (result,) = tool_results(body)
    impressions = result["metrics"]["impressions"]
    ctr = result["metrics"]["ctr"]
    return {
        "content": f"Summer Refresh had {impressions['current']:,} impressions last week against "
        f"{impressions['previous']:,} the week before ({impressions['change_percent']:+.1f}%); "
        f"CTR {ctr['current']:.1f}% against {ctr['previous']:.1f}%."
    }


def test_a_correct_tool_calling_run(world, provider):
    stand_in = provider(calls_compare, answers_with_the_numbers)
    answer = ask(world)
    assert answer.path == "llm", answer.note
    expected = selectors.kpis_against_previous(
        advertiser=world.fizzy,
        start=dt.date(2026, 11, 23),
        end=dt.date(2026, 11, 29),
        campaign_id=world.campaigns["Summer Refresh"].pk,
    )
    assert f"{expected.current.impressions:,} impressions last week" in answer.text
    assert answer.tool_calls[0]["name"] == "compare_periods"
    assert answer.chart and answer.table  # the comparison's bars and numbers
    assert (answer.prompt_tokens, answer.completion_tokens) == (200, 40)
    first = stand_in.requests[0]
    assert first["model"] == "stand-in-model"
    assert {tool["function"]["name"] for tool in first["tools"]} >= {"get_kpis", "breakdown"}
    # The instructions hold no tenant text: names only come back inside tool results.
    system = first["messages"][0]["content"]
    assert "Summer Refresh" not in system and "Fizzy" not in system
    assert tool_results(stand_in.requests[1])[0]["scope"]["name"] == "Summer Refresh"


def test_a_hallucinated_number_is_replaced_and_logged(world, provider, caplog):
    provider(calls_compare, lambda body: {"content": "Summer Refresh had 987,654 impressions."})
    with caplog.at_level(logging.WARNING, logger="insights.services"):
        answer = ask(world)
    assert answer.path == "replaced"
    assert "987,654" not in answer.text and "987,654" in answer.note
    assert answer.text.startswith("“Summer Refresh”, last week")  # the offline answer
    assert "numbers no tool produced: 987,654" in caplog.text


def test_another_account_s_campaign_id_is_not_found(world, provider):
    rival = world.campaigns["Aurora EV Launch"]
    stand_in = provider(
        lambda body: {
            "tool_calls": [tool_call("get_kpis", {"period": "last week", "campaign": rival.pk})]
        },
        lambda body: {"content": "I could not find that campaign in this account."},
    )
    answer = ask(world, question=f"How did campaign {rival.pk} do last week?")
    (result,) = tool_results(stand_in.requests[1])
    assert result == {"error": f"No campaign with id {rival.pk} in this account."}
    assert answer.path == "llm"
    assert "Aurora" not in json.dumps(answer.tool_calls)


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        (
            lambda body: {"tool_calls": [tool_call("get_kpis", '{"period": "last week",')]},
            "malformed arguments for get_kpis",
        ),
        (
            lambda body: {"tool_calls": [tool_call("run_sql", {"query": "SELECT * FROM ads"})]},
            "unknown tool 'run_sql'",
        ),
        (
            lambda body: {"tool_calls": [tool_call("breakdown", {"dimension": "age"})]},
            "invalid arguments for breakdown",
        ),
        (Fails(500), "the LLM failed"),
        (Slow(3, lambda body: {"content": "late"}), "did not answer in time"),
    ],
)
def test_failures_get_the_offline_answer(world, provider, step, reason):
    # The slow provider's timeout is waited out: a short one (still a tenth of its delay).
    provider(step, timeout=0.3 if isinstance(step, Slow) else 1.0)
    answer = ask(world)
    assert answer.path == "fallback"
    assert reason in answer.note
    assert answer.text.startswith("“Summer Refresh”, last week")
    assert answer.tool_calls[0]["name"] == "compare_periods"  # the planner's own call


def test_the_page_says_discreetly_when_the_offline_answer_stood_in(client, world, provider):
    provider(Fails(503))
    client.force_login(world.owner)
    response = client.post(
        reverse("insights_ask", args=["fizzy"]), {"question": QUESTION}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "the assistant was unavailable" in html
    assert Message.objects.get(role="assistant").path == "fallback"


def test_an_injection_in_a_name_stays_data(world, provider):
    stand_in = provider(
        lambda body: {"tool_calls": [tool_call("list_campaigns", {})]},
        lambda body: {"content": "You have 4 campaigns."},
    )
    answer = ask(world, question="Which campaigns do I have?")
    assert answer.path == "llm"
    for body in stand_in.requests:
        for message in body["messages"]:
            if message["role"] in ("system", "user"):
                assert INJECTION not in (message["content"] or "")
    assert INJECTION in json.dumps(tool_results(stand_in.requests[1]))


def test_follow_ups_send_the_questions_before(world, provider):
    stand_in = provider(
        calls_compare,
        answers_with_the_numbers,
        lambda body: {"content": "Nothing to add."},
    )
    first = ask(world)
    services.question_ask(
        advertiser=world.fizzy,
        user=world.owner,
        question="and for Zero Sugar?",
        conversation=first.conversation,
    )
    messages = stand_in.requests[2]["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        QUESTION,
        "and for Zero Sugar?",
    ]


def stream_events(response) -> list[tuple[str, str]]:
    text = b"".join(response).decode()
    events = []
    for block in text.strip().split("\n\n"):
        lines = block.split("\n")
        name = lines[0].removeprefix("event: ")
        data = "\n".join(line.removeprefix("data: ") for line in lines[1:])
        events.append((name, data))
    return events


def post_streaming(client, question=QUESTION):
    return client.post(
        reverse("insights_ask", args=["fizzy"]),
        {"question": question},
        HTTP_ACCEPT="text/event-stream, text/html",
        HTTP_HX_REQUEST="true",
    )


def test_the_answer_streams_into_the_page(client, world, provider):
    provider(calls_compare, answers_with_the_numbers)
    client.force_login(world.owner)
    response = post_streaming(client)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    events = stream_events(response)
    names = [name for name, _ in events]
    assert names[0] == "status" and names[-1] == "final"
    assert events[0][1] == "Comparing the periods…"
    deltas = [data for name, data in events if name == "delta"]
    assert len(deltas) > 3  # a few characters at a time
    answer = Message.objects.get(role="assistant")
    assert "".join(deltas) == answer.text and answer.path == "llm"
    assert f'id="answer-{answer.pk}"' in events[-1][1]
    assert "data-insights-chart" in events[-1][1]


def test_a_streamed_hallucination_is_replaced_at_the_end(client, world, provider):
    provider(calls_compare, lambda body: {"content": "Summer Refresh had 987,654 impressions."})
    client.force_login(world.owner)
    events = stream_events(post_streaming(client))
    assert "987,654" in "".join(data for name, data in events if name == "delta")
    final = events[-1][1]
    assert "987,654" not in final and "“Summer Refresh”, last week" in final
    assert "could not be checked against the reports" in final


def test_streaming_still_refuses_before_it_starts(client, world, provider):
    provider()
    client.force_login(world.owner)
    response = post_streaming(client, question="x" * 600)
    assert response.status_code == 400 and not response.streaming


def test_outsiders_cannot_stream(client, world, provider):
    stand_in = provider(calls_compare, answers_with_the_numbers)
    client.force_login(world.outsider)
    assert post_streaming(client).status_code == 404
    assert stand_in.requests == []


def test_the_page_a_question_comes_from_is_said_by_id(world, provider):
    line_item = world.line_items["Zero Sugar · Action fans"]
    stand_in = provider(lambda body: {"content": "Which period do you mean?"})
    services.question_ask(
        advertiser=world.fizzy,
        user=world.owner,
        question="how many clicks?",
        page_scope={"kind": "line_item", "id": line_item.pk, "name": line_item.name},
    )
    question = stand_in.requests[0]["messages"][-1]["content"]
    assert question.endswith(f"(Asked from the page of the line item with id {line_item.pk}.)")
    assert "Zero Sugar" not in question
