"""The insights question in the account API: `POST /api/v1/insights/questions`.

The same path as the insights page (`insights.services.question_ask`): the offline planner's
answer, or the LLM's when one is configured and its answer checks out, from tools bound to the
key's account. A key has no user of its own; the conversation is its maker's (the owner who
created the key vouches for it): the questions show in that owner's insights history, where
they can be read like their own, and count against that owner's per-user rate limit as well
as the account's. A key whose maker was deleted cannot ask (403): no one would see its
conversation.
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from ads.account_api import AccountAPIView, errors, id_field, not_found
from config.api import api_error
from insights import selectors, services
from insights.services import MAX_QUESTION_CHARS, QuestionRejected


class QuestionInput(serializers.Serializer):
    question = serializers.CharField(
        max_length=MAX_QUESTION_CHARS,
        help_text="In the account's words, e.g. “How did last week compare with the week before?”",
    )
    conversation = id_field(
        required=False,
        help_text="A conversation this key's questions started, for a follow-up.",
    )


class AnswerOutput(serializers.Serializer):
    id = serializers.IntegerField()
    conversation = serializers.IntegerField(source="conversation_id")
    text = serializers.CharField()
    path = serializers.CharField(help_text="offline (the planner) or llm.")
    refused = serializers.BooleanField(help_text="The question is not one the tools answer.")
    chart = serializers.JSONField(allow_null=True)
    table = serializers.JSONField(allow_null=True)
    created_at = serializers.DateTimeField()


class QuestionView(AccountAPIView):
    posts_read = True  # asking reads the account's numbers: a read key may ask

    @extend_schema(
        operation_id="ask_question",
        summary="Ask the insights assistant about the account's delivery",
        description="Answered from the account's own numbers (the dashboards' selectors), "
        "by the offline planner or the configured LLM. The conversation is the key's maker's: "
        "it shows in that owner's insights history. Rate limited per maker and per account "
        "(429 with Retry-After), besides the key's own limit.",
        request=QuestionInput,
        responses={201: AnswerOutput, **errors(400, 403, 404, 413, 415)},
        examples=[
            OpenApiExample(
                "Last week",
                value={"question": "How did last week compare with the week before?"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        form = QuestionInput(data=request.data)
        form.is_valid(raise_exception=True)
        user = self.key.created_by
        if user is None:
            raise exceptions.PermissionDenied(
                "This key's maker no longer exists: ask an owner for a new key."
            )
        conversation = None
        if "conversation" in form.validated_data:
            try:
                conversation = selectors.conversation_get(
                    advertiser=self.advertiser,
                    user=user,
                    conversation_id=form.validated_data["conversation"],
                )
            except ObjectDoesNotExist:
                raise not_found("conversation") from None
        try:
            answer = services.question_ask(
                advertiser=self.advertiser,
                user=user,
                question=form.validated_data["question"],
                conversation=conversation,
            )
        except QuestionRejected as rejected:
            if rejected.status == status.HTTP_429_TOO_MANY_REQUESTS:
                response = api_error("throttled", str(rejected), http_status=rejected.status)
                response["Retry-After"] = str(rejected.retry_after)
                return response
            return api_error("invalid", str(rejected), {"question": [str(rejected)]})
        return Response(AnswerOutput(answer).data, status=status.HTTP_201_CREATED)
