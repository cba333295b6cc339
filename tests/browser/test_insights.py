"""The insights chat in a real browser against the real ASGI server: an owner asks the issue's
question offline and gets the answer with its chart drawn and its numbers; with an LLM (the
stand-in provider, over HTTP from the server process) the answer streams in and the checked
answer replaces the draft; a follow-up uses the conversation. Server and browser: conftest.py.
"""

import pytest

from tests.browser.conftest import UPDATE_TIMEOUT_MS, browser_page, session_key, signed_in
from tests.insights import world as insights_world
from tests.insights.stand_in import Held, StandIn, tool_call

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUESTION = "How did Summer Refresh do last week compared with the week before?"


@pytest.fixture
def world(db):
    """The insights world (its history ends yesterday, by the server's clock too), with a
    session of its owner's (conftest.session_key)."""
    built = insights_world.build(events_per_day=6)
    built.session = session_key(built.owner)
    return built


def ask(page, question):
    page.fill("form.insights-form input[name=question]", question)
    page.click("form.insights-form button[type=submit]")


def test_an_owner_asks_offline_and_gets_a_chart(chromium, server, world, tmp_path):
    from playwright.sync_api import expect

    with browser_page(chromium, server, tmp_path) as page:
        signed_in(page, server, world.session, "/a/fizzy/insights/")
        ask(page, QUESTION)
        answer = page.locator("[data-answer]").first
        expect(answer).to_contain_text("“Summer Refresh”, last week", timeout=UPDATE_TIMEOUT_MS)
        expect(answer).to_have_attribute("data-path", "offline")
        expect(page.locator("canvas[data-insights-chart][data-drawn]")).to_have_count(1)
        expect(page.locator("input[name=question]")).to_have_value("")
        # A follow-up in the same conversation.
        ask(page, "and for Zero Sugar?")
        expect(page.locator("[data-answer]").nth(1)).to_contain_text(
            "“Zero Sugar Launch”, last week", timeout=UPDATE_TIMEOUT_MS
        )
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366


def test_the_llm_answer_streams_and_is_checked(chromium, world, tmp_path, monkeypatch, request):
    from playwright.sync_api import expect

    def answers_with_the_numbers(body):
        import json

        result = json.loads(next(m for m in body["messages"] if m["role"] == "tool")["content"])
        impressions = result["metrics"]["impressions"]
        return {
            "content": f"Summer Refresh had {impressions['current']:,} impressions last week, "
            f"against {impressions['previous']:,} the week before."
        }

    writing = Held(answers_with_the_numbers)  # while the model "writes", the page says why
    script = [
        lambda body: {
            "tool_calls": [
                tool_call("compare_periods", {"period": "last week", "campaign": "Summer Refresh"})
            ]
        },
        writing,
    ]
    with StandIn(script) as stand_in:
        monkeypatch.setenv("LLM_BASE_URL", stand_in.base_url)
        monkeypatch.setenv("LLM_API_KEY", "test-key")
        server = request.getfixturevalue("server")
        with browser_page(chromium, server, tmp_path) as page:
            signed_in(page, server, world.session, "/a/fizzy/insights/")
            ask(page, QUESTION)
            # Streamed: what it is looking up shows before the answer exists.
            expect(page.locator(".insights-draft .insights-status")).to_have_text(
                "Comparing the periods…", timeout=UPDATE_TIMEOUT_MS
            )
            writing.release()
            answer = page.locator("[data-answer]").first
            expect(answer).to_contain_text("impressions last week", timeout=UPDATE_TIMEOUT_MS)
            expect(answer).to_have_attribute("data-path", "llm")
            expect(page.locator(".insights-draft")).to_have_count(0)
            expect(page.locator("canvas[data-insights-chart][data-drawn]")).to_have_count(1)
