"""The insights page, its question endpoint and an answer's CSV: members only (analysts may
ask), a user's own conversations only, another account's scope a 404; questions capped in
length and in rate, with a clear message; the panels on the dashboards."""

import csv
import datetime as dt
import io
import re

import pytest
from django.urls import reverse

from analytics import selectors
from insights import services
from insights.models import Conversation, Message
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

QUESTION = "How did Summer Refresh do last week compared with the week before?"


def ask(client, slug="fizzy", **data):
    return client.post(
        reverse("insights_ask", args=[slug]), {"question": QUESTION, **data}, HTTP_HX_REQUEST="true"
    )


def test_the_owner_asks_and_gets_the_numbers_with_a_chart(client, world):
    client.force_login(world.owner)
    response = ask(client)
    assert response.status_code == 200
    html = response.content.decode()
    comparison = selectors.kpis_against_previous(
        advertiser=world.fizzy,
        start=dt.date(2026, 11, 23),
        end=dt.date(2026, 11, 29),
        campaign_id=world.campaigns["Summer Refresh"].pk,
    )
    assert f"impressions {comparison.current.impressions:,} against " in html
    assert f"{comparison.previous.impressions:,}" in html
    assert "data-insights-chart" in html and "How I got this" in html
    assert "→ Summer Refresh, 2026-11-23 to 2026-11-29" in html
    answer = Message.objects.get(role="assistant")
    assert answer.path == "offline" and answer.tool_calls[0]["name"] == "compare_periods"
    assert answer.advertiser == world.fizzy and answer.conversation.user == world.owner
    # The page shows the conversation afterwards, with its CSV.
    page = client.get(reverse("insights", args=["fizzy"]))
    assert QUESTION in page.content.decode()
    table = client.get(reverse("insights_answer_csv", args=["fizzy", answer.pk]))
    rows = list(csv.reader(io.StringIO(table.content.decode())))
    assert rows[0] == ["Metric", "This period", "Before", "Change"]
    assert rows[1][:3] == [
        "impressions",
        str(comparison.current.impressions),
        str(comparison.previous.impressions),
    ]


def test_a_follow_up_keeps_the_question_before(client, world):
    client.force_login(world.owner)
    ask(client)
    conversation = Conversation.objects.get()
    response = ask(client, question="and for Zero Sugar?", conversation=conversation.pk)
    answer = Message.objects.filter(role="assistant").last()
    assert answer.tool_calls[0]["name"] == "compare_periods"
    assert answer.tool_calls[0]["result"]["scope"]["name"] == "Zero Sugar Launch"
    assert "“Zero Sugar Launch”, last week" in response.content.decode()


def test_an_analyst_may_ask(client, world):
    client.force_login(world.analyst)
    assert ask(client).status_code == 200


def test_outsiders_get_404_everywhere(client, world):
    client.force_login(world.owner)
    ask(client)
    answer = Message.objects.get(role="assistant")
    client.force_login(world.outsider)
    assert client.get(reverse("insights", args=["fizzy"])).status_code == 404
    assert ask(client).status_code == 404
    csv_url = reverse("insights_answer_csv", args=["fizzy", answer.pk])
    assert client.get(csv_url).status_code == 404
    # In its own account, the other account's conversation, answer and scope are not found.
    assert ask(client, slug="northwind", conversation=answer.conversation_id).status_code == 404
    own_csv = reverse("insights_answer_csv", args=["northwind", answer.pk])
    assert client.get(own_csv).status_code == 404
    fizzy_campaign = world.campaigns["Summer Refresh"].pk
    scoped = ask(client, slug="northwind", scope_kind="campaign", scope_id=fizzy_campaign)
    assert scoped.status_code == 404
    page = reverse("insights", args=["northwind"])
    assert client.get(f"{page}?scope_kind=campaign&scope_id={fizzy_campaign}").status_code == 404
    assert client.get(f"{page}?c={answer.conversation_id}").status_code == 404


def test_another_member_does_not_see_my_conversation(client, world):
    client.force_login(world.owner)
    ask(client)
    conversation = Conversation.objects.get()
    colleague = MembershipFactory(advertiser=world.fizzy, user=UserFactory(username="colleague"))
    client.force_login(colleague.user)
    page = client.get(reverse("insights", args=["fizzy"]))
    assert QUESTION not in page.content.decode()
    url = reverse("insights", args=["fizzy"])
    assert client.get(f"{url}?c={conversation.pk}").status_code == 404
    assert ask(client, conversation=conversation.pk).status_code == 404


def test_anonymous_goes_to_login(client, world):
    response = client.get(reverse("insights", args=["fizzy"]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_long_questions_are_refused_with_a_reason(client, world):
    client.force_login(world.owner)
    response = ask(client, question="why " * 200)
    assert response.status_code == 400
    assert "limited to 500 characters" in response.content.decode()
    assert not Message.objects.exists()


def test_the_rate_limit_per_user(client, world):
    client.force_login(world.owner)
    for _ in range(services.PER_USER_PER_MINUTE):
        assert ask(client, question="list my campaigns").status_code == 200
    response = ask(client, question="list my campaigns")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "questions this minute" in response.content.decode()
    # Another user of the account is not held back by it.
    client.force_login(world.analyst)
    assert ask(client, question="list my campaigns").status_code == 200


def test_the_rate_limit_per_account(client, world, monkeypatch):
    monkeypatch.setattr(services, "PER_ACCOUNT_PER_MINUTE", 2)
    client.force_login(world.owner)
    ask(client, question="list my campaigns")
    client.force_login(world.analyst)
    ask(client, question="list my campaigns")
    response = ask(client, question="list my campaigns")
    assert response.status_code == 429 and "This account has asked 2" in response.content.decode()


def test_suggestions_follow_the_page(client, world):
    client.force_login(world.owner)
    campaign = world.campaigns["Zero Sugar Launch"]
    url = reverse("insights", args=["fizzy"])
    html = client.get(f"{url}?scope_kind=campaign&scope_id={campaign.pk}").content.decode()
    assert "How did Zero Sugar Launch do last week compared with the week before?" in html
    assert f'name="scope_id" value="{campaign.pk}"' in html


def test_a_scoped_question_without_a_name_is_about_the_page(client, world):
    client.force_login(world.owner)
    line_item = world.line_items["Zero Sugar · Action fans"]
    ask(
        client, question="how many clicks yesterday?", scope_kind="line_item", scope_id=line_item.pk
    )
    answer = Message.objects.get(role="assistant")
    assert answer.tool_calls[0]["arguments"] == {
        "period": "yesterday",
        "line_item": str(line_item.pk),
    }


@pytest.mark.parametrize("name", ["overview", "campaign_detail", "line_item_detail"])
def test_the_panels(client, world, name):
    client.force_login(world.owner)
    args = ["fizzy"]
    if name == "campaign_detail":
        args.append(world.campaigns["Summer Refresh"].pk)
    if name == "line_item_detail":
        args.append(world.line_items["Zero Sugar · Action fans"].pk)
    html = client.get(reverse(name, args=args)).content.decode()
    assert 'class="insights-panel"' in html
    assert re.search(
        r'<form class="insights-form" method="post" action="/a/fizzy/insights/ask/"', html
    )
    if name != "overview":
        assert f'name="scope_id" value="{args[1]}"' in html


def test_staff_audit_answers_in_admin(client, world):
    client.force_login(world.owner)
    ask(client)
    answer = Message.objects.get(role="assistant")
    staff = UserFactory(username="staffer", is_staff=True, is_superuser=True)
    client.force_login(staff)
    assert client.get(reverse("admin:insights_message_changelist")).status_code == 200
    page = client.get(reverse("admin:insights_message_change", args=[answer.pk]))
    assert page.status_code == 200 and "compare_periods" in page.content.decode()
    conversation = client.get(
        reverse("admin:insights_conversation_change", args=[answer.conversation_id])
    )
    assert conversation.status_code == 200


def test_the_answer_csv_writes_a_formula_like_name_as_text(client, world):
    client.force_login(world.owner)
    ask(client)
    answer = Message.objects.get(role="assistant")
    answer.table = {
        "headers": ["Campaign", "Change"],
        "rows": [['=HYPERLINK("http://x","click")', -4.5], ["@SUM(A1)", None]],
    }
    answer.save(update_fields=["table"])
    table = client.get(reverse("insights_answer_csv", args=["fizzy", answer.pk]))
    rows = list(csv.reader(io.StringIO(table.content.decode())))
    assert rows[1:] == [['\'=HYPERLINK("http://x","click")', "-4.5"], ["'@SUM(A1)", ""]]
