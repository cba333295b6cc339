"""The insights page (/a/<slug>/insights/), the question endpoint its form and the page panels
post to (htmx), and the CSV of an answer's table.

Every view goes through `account_view` (members only, analysts too: asking reads); a
conversation, a message, or a campaign or line item scope of another account or another user
is a 404.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse

from ads import selectors as ads_selectors
from ads.access import account_view
from ads.models import Membership
from config import formats
from insights import selectors, services
from insights.models import Conversation, Message
from insights.services import MAX_QUESTION_CHARS, QuestionRejected

SCOPE_KINDS = ("campaign", "line_item")


def _scope(membership: Membership, kind: str, raw_id: str) -> dict | None:
    """The page scope a question is asked from ({"kind", "id", "name"}), or None; another
    account's id is a 404."""
    if not kind and not raw_id:
        return None
    if kind not in SCOPE_KINDS or not raw_id.isdigit():
        raise Http404("No such item in this account.")
    advertiser = membership.advertiser
    try:
        if kind == "campaign":
            item = ads_selectors.campaign_get(advertiser=advertiser, campaign_id=int(raw_id))
        else:
            item = ads_selectors.line_item_get(advertiser=advertiser, line_item_id=int(raw_id))
    except ObjectDoesNotExist:
        raise Http404("No such item in this account.") from None
    return {"kind": kind, "id": item.pk, "pk": item.pk, "name": item.name}


def _conversation(membership: Membership, user, raw_id: str) -> Conversation | None:
    if not raw_id:
        return None
    if not raw_id.isdigit():
        raise Http404("No such conversation.")
    try:
        return selectors.conversation_get(
            advertiser=membership.advertiser, user=user, conversation_id=int(raw_id)
        )
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None


def suggestions(scope: dict | None) -> list[str]:
    """Questions to start with, about the page the chat was opened from."""
    if scope and scope["kind"] == "campaign":
        name = scope["name"]
        return [
            f"How did {name} do last week compared with the week before?",
            f"Which creative of {name} has the best CTR in the last 30 days?",
            f"Impressions per day for {name} since Monday",
            f"How is the pacing of {name} today?",
        ]
    if scope and scope["kind"] == "line_item":
        name = scope["name"]
        return [
            f"Why is {name} not delivering?",
            f"How did {name} do yesterday?",
            f"Which genre has the best completion rate for {name} this month?",
            f"What is the budget left for {name}?",
        ]
    return [
        "How did my campaigns do last week compared with the week before?",
        "Which campaign had the best CTR in the last 30 days?",
        "Which genre has the best completion rate this month?",
        "Spend per day since Monday",
        "Who engages with my ads?",
    ]


def _exchanges(conversation: Conversation | None) -> list[dict]:
    """The conversation as (question, answer) pairs, in order."""
    if conversation is None:
        return []
    pairs: list[dict] = []
    for message in selectors.conversation_messages(conversation=conversation):
        if message.role == Message.Role.USER:
            pairs.append({"question": message, "answer": None})
        elif pairs:
            pairs[-1]["answer"] = message
    return pairs


@account_view
def page(request: HttpRequest, membership: Membership) -> HttpResponse:
    scope = _scope(membership, request.GET.get("scope_kind", ""), request.GET.get("scope_id", ""))
    conversation = None
    if request.GET.get("new") != "1":
        conversation = _conversation(membership, request.user, request.GET.get("c", ""))
        if conversation is None and scope is None:
            conversation = selectors.conversation_latest(
                advertiser=membership.advertiser, user=request.user
            )
    return render(
        request,
        "insights/page.html",
        {
            "membership": membership,
            "advertiser": membership.advertiser,
            "conversation": conversation,
            "exchanges": _exchanges(conversation),
            "scope": scope,
            "suggestions": suggestions(scope),
            "max_chars": MAX_QUESTION_CHARS,
        },
    )


def _exchange_html(request: HttpRequest, advertiser, answer: Message, inline: bool) -> str:
    question = answer.conversation.messages.filter(role=Message.Role.USER).last()
    return render_to_string(
        "insights/partials/exchange.html",
        {
            "advertiser": advertiser,
            "exchange": {"question": question, "answer": answer},
            "conversation_id": answer.conversation_id,
            "inline": inline,
        },
        request=request,
    )


def _sse(event: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n"


STATUS = {
    "get_kpis": "Reading the totals",
    "time_series": "Reading the days",
    "breakdown": "Breaking the results down",
    "compare_periods": "Comparing the periods",
    "pacing": "Reading today's pacing",
    "why_not_delivering": "Checking delivery",
    "engaged_audience": "Reading the audience",
    "list_campaigns": "Listing campaigns",
    "list_line_items": "Listing line items",
}


async def _one_by_one(parts: Iterator[str]) -> AsyncIterator[str]:
    """The parts of a stream one at a time, each made in the thread of the request's database
    connection: under ASGI, Django reads a synchronous iterator whole before it sends the
    first byte, which is no stream at all."""
    advance = sync_to_async(next, thread_sensitive=True)
    while (part := await advance(parts, None)) is not None:
        yield part


@account_view
def ask(request: HttpRequest, membership: Membership) -> HttpResponse:
    """A question, from the page's or a panel's form. With an LLM configured and a client
    that reads server-sent events, the answer streams ("status", "delta", then "final": the
    checked answer's HTML, which replaces the draft); otherwise the answer's HTML (htmx), or
    a redirect to the page (a form without JavaScript)."""
    if request.method != "POST":
        return HttpResponse("Ask with POST.", status=405, headers={"Allow": "POST"})
    advertiser = membership.advertiser
    scope = _scope(membership, request.POST.get("scope_kind", ""), request.POST.get("scope_id", ""))
    conversation = _conversation(membership, request.user, request.POST.get("conversation", ""))
    inline = request.POST.get("inline") == "1"
    events = services.question_events(
        advertiser=advertiser,
        user=request.user,
        question=request.POST.get("question", ""),
        conversation=conversation,
        page_scope=scope,
    )
    try:
        next(events)  # the checks: length, rate
    except QuestionRejected as rejected:
        response = render(
            request,
            "insights/partials/rejected.html",
            {"message": str(rejected)},
            status=rejected.status,
        )
        if rejected.retry_after:
            response["Retry-After"] = str(rejected.retry_after)
        return response
    if settings.LLM_BASE_URL and "text/event-stream" in request.headers.get("Accept", ""):

        def stream() -> Iterator[str]:
            for kind, payload in events:
                if kind == "tool":
                    yield _sse("status", STATUS.get(payload, "Looking it up") + "…")
                elif kind == "delta":
                    yield _sse("delta", payload)
                else:
                    yield _sse("final", _exchange_html(request, advertiser, payload, inline))

        response = StreamingHttpResponse(_one_by_one(stream()), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
    answer = next(kind_payload[1] for kind_payload in events if kind_payload[0] == "answer")
    if not request.headers.get("HX-Request"):
        url = reverse("insights", args=[advertiser.slug])
        return redirect(f"{url}?c={answer.conversation_id}")
    return HttpResponse(_exchange_html(request, advertiser, answer, inline))


@account_view
def answer_csv(request: HttpRequest, membership: Membership, message_id: int) -> HttpResponse:
    try:
        message = selectors.message_get(
            advertiser=membership.advertiser, user=request.user, message_id=message_id
        )
    except Message.DoesNotExist:
        raise Http404("No such answer.") from None
    if not message.table:
        raise Http404("This answer has no table.")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"{membership.advertiser.slug}-insights-{message.pk}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow([formats.csv_cell(str(header)) for header in message.table["headers"]])
    writer.writerows(
        [formats.csv_cell("" if cell is None else str(cell)) for cell in row]
        for row in message.table["rows"]
    )
    return response
