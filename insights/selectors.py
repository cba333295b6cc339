"""Reads of conversations: a user sees only their own, in an account they belong to (the
caller resolved the membership); another's conversation id is DoesNotExist, a 404."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import QuerySet

from ads.models import Advertiser
from insights.models import Conversation, Message


def conversation_get(*, advertiser: Advertiser, user: User, conversation_id: int) -> Conversation:
    return Conversation.objects.get(advertiser=advertiser, user=user, pk=conversation_id)


def conversation_latest(*, advertiser: Advertiser, user: User) -> Conversation | None:
    return (
        Conversation.objects.filter(advertiser=advertiser, user=user)
        .order_by("-updated_at", "-id")
        .first()
    )


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.all()


def message_get(*, advertiser: Advertiser, user: User, message_id: int) -> Message:
    return Message.objects.get(
        advertiser=advertiser, conversation__user=user, pk=message_id, role=Message.Role.ASSISTANT
    )


def last_intent(*, conversation: Conversation) -> dict | None:
    """What the last answered question was about, for a follow-up."""
    message = (
        conversation.messages.filter(role=Message.Role.ASSISTANT)
        .exclude(intent={})
        .order_by("-created_at", "-id")
        .first()
    )
    return message.intent if message else None
