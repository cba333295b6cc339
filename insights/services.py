"""Asking: a question is checked (length, rate), answered by the LLM when one is configured
and its answer checks out, else by the offline planner, and stored with its answer.

Both paths call the same tools bound to the account of the request; the offline answer is
always computed first (a few milliseconds), so that whatever the LLM does — time out, fail,
call a tool that does not exist, write a number no tool produced — there is a trustworthy
answer to show instead.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from ads.models import Advertiser
from insights import llm, planner
from insights import selectors as insights_selectors
from insights.models import Conversation, Message
from insights.tools import Context

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 500
# Questions per minute: one person asking faster is a script; an account's limit bounds what
# its users together can cost (LLM tokens) and load.
PER_USER_PER_MINUTE = 12
PER_ACCOUNT_PER_MINUTE = 60
HISTORY_MESSAGES = 6  # the turns before a question the LLM sees (follow-ups)


class QuestionRejected(Exception):
    """A question not asked: the message says why; `status` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 400, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _over_limit(key: str, limit: int, now: dt.datetime) -> int:
    """Counts one question in the current minute; the seconds to wait when over `limit`."""
    window = f"insights:rate:{key}:{int(now.timestamp()) // 60}"
    cache.add(window, 0, timeout=120)
    count = cache.incr(window)
    return 60 - int(now.timestamp()) % 60 if count > limit else 0


def _check(*, advertiser: Advertiser, user: User, question: str, now: dt.datetime) -> str:
    question = " ".join(question.split())
    if not question:
        raise QuestionRejected("Type a question first.")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionRejected(
            f"Questions are limited to {MAX_QUESTION_CHARS} characters "
            f"(this one has {len(question)}): ask one thing at a time."
        )
    wait = _over_limit(f"user:{advertiser.pk}:{user.pk}", PER_USER_PER_MINUTE, now)
    if wait:
        raise QuestionRejected(
            f"You have asked {PER_USER_PER_MINUTE} questions this minute: try again in {wait} s.",
            status=429,
            retry_after=wait,
        )
    wait = _over_limit(f"account:{advertiser.pk}", PER_ACCOUNT_PER_MINUTE, now)
    if wait:
        raise QuestionRejected(
            f"This account has asked {PER_ACCOUNT_PER_MINUTE} questions this minute: "
            f"try again in {wait} s.",
            status=429,
            retry_after=wait,
        )
    return question


def question_ask(
    *,
    advertiser: Advertiser,
    user: User,
    question: str,
    conversation: Conversation | None = None,
    page_scope: dict | None = None,
    now: dt.datetime | None = None,
) -> Message:
    """Answer `question` for `user` (a member of `advertiser`: the caller checked) and store
    the question and the answer in `conversation` (a new one when None); returns the answer.
    Raises QuestionRejected for an empty or too long question, or over the rate limits."""
    events = question_events(
        advertiser=advertiser,
        user=user,
        question=question,
        conversation=conversation,
        page_scope=page_scope,
        now=now,
    )
    for kind, payload in events:
        if kind == "answer":
            return payload
    raise AssertionError("question_events ends with the answer")


def question_events(
    *,
    advertiser: Advertiser,
    user: User,
    question: str,
    conversation: Conversation | None = None,
    page_scope: dict | None = None,
    now: dt.datetime | None = None,
) -> Iterator[tuple[str, Any]]:
    """`question_ask` step by step, for a page that shows the answer as it is written:
    ("accepted", question) once the question passed the checks (QuestionRejected is raised
    before it), then, when an LLM answers, ("tool", name) and ("delta", text) as it works,
    and last ("answer", Message), stored, checked, and possibly the offline answer."""
    now = now or timezone.now()
    question = _check(advertiser=advertiser, user=user, question=question, now=now)
    yield "accepted", question
    began = time.perf_counter()
    context = Context(advertiser=advertiser, now=now)
    previous = insights_selectors.last_intent(conversation=conversation) if conversation else None
    offline = planner.answer(context, question, previous=previous, page_scope=page_scope)
    reply = llm.Reply.offline(offline)
    if settings.LLM_BASE_URL:
        history = _history(conversation) if conversation else []
        events = llm.answer_events(
            context, question, history=history, offline=offline, page_scope=page_scope
        )
        for kind, payload in events:
            if kind == "reply":
                reply = payload
            else:
                yield kind, payload
        if reply.note:
            logger.warning("insights: offline answer shown (%s): %s", reply.path, reply.note)
    latency_ms = (time.perf_counter() - began) * 1000
    with transaction.atomic():
        if conversation is None:
            conversation = Conversation.objects.create(advertiser=advertiser, user=user)
        Message.objects.create(
            advertiser=advertiser, conversation=conversation, role=Message.Role.USER, text=question
        )
        answer = Message.objects.create(
            advertiser=advertiser,
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            text=reply.text,
            path=reply.path,
            note=reply.note[:300],
            refused=reply.refused,
            intent=offline.intent,
            tool_calls=[call.as_dict() for call in reply.calls],
            chart=reply.chart,
            table=reply.table,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            latency_ms=round(latency_ms, 1),
        )
        conversation.save(update_fields=["updated_at"])
    yield "answer", answer


def _history(conversation: Conversation) -> list[dict]:
    """The questions before this one, for follow-ups ("and for Summer Refresh?"). Not the
    answers: they quote names the tenant wrote, which reach the model only in tool results."""
    questions = conversation.messages.filter(role=Message.Role.USER).order_by("-created_at", "-id")
    return [
        {"role": "user", "content": message.text}
        for message in reversed(list(questions[:HISTORY_MESSAGES]))
    ]
