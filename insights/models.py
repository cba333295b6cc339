"""Conversations with the insights assistant, per account and user: each question and each
answer, with the tools it called (arguments and results), the path that answered, tokens and
latency, so an answer can be explained and audited later."""

from django.conf import settings
from django.db import models

from ads.models import Advertiser


class Conversation(models.Model):
    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["advertiser", "user", "-updated_at"])]

    def __str__(self) -> str:
        return f"conversation {self.pk} of {self.user_id} @ {self.advertiser_id}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "Question"
        ASSISTANT = "assistant", "Answer"

    class Path(models.TextChoices):
        OFFLINE = "offline", "Offline planner"
        LLM = "llm", "LLM"
        # The LLM was asked but the offline answer was shown: the reason is in `note`.
        FALLBACK = "fallback", "Offline planner after the LLM failed"
        CHECKED_OUT = "replaced", "Offline planner: the LLM's numbers did not check out"

    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField()
    path = models.CharField(max_length=10, choices=Path.choices, blank=True)
    note = models.CharField(max_length=300, blank=True)
    refused = models.BooleanField(default=False)
    # What the planner understood (for follow-ups) and each tool call with its result.
    intent = models.JSONField(default=dict, blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    chart = models.JSONField(null=True, blank=True)
    table = models.JSONField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"])]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk}"

    @property
    def chart_element_id(self) -> str:
        """The id of the page element holding the chart's data."""
        return f"insights-chart-{self.pk}"
