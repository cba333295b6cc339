"""The integration API of the ads app: decisions for a player's ad breaks and event tracking.

Callers authenticate with a platform key (`Authorization: Bearer il_...`), managed by staff in
admin. Tracking links (`GET /t/<token>/<event>`) need no key: the signed token is the proof.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import authentication, exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ads import selectors, services
from ads.decisioning import eligibility
from ads.decisioning.engine import Decision, DecisionRequest, DecisionRequestError, decide
from ads.decisioning.index import current_index
from ads.delivery import latency
from ads.delivery.tokens import TrackingClaim
from ads.models import AdEvent
from catalog.models import Device, Region
from config.api import ERROR, error_body
from config.db import LOST


class PlatformClient:
    """The authenticated caller of the platform API: a player or SSAI server, by its key."""

    is_authenticated = True

    def __init__(self, key_id: int) -> None:
        self.key_id = key_id


def bearer_key(request: Request) -> str | None:
    """The key of an `Authorization: Bearer <key>` header; None without the header, and
    AuthenticationFailed for any other form of it (platform and account keys alike)."""
    header = authentication.get_authorization_header(request).decode(errors="replace")
    if not header:
        return None
    scheme, _, raw_key = header.partition(" ")
    if scheme != "Bearer" or not raw_key.strip():
        raise exceptions.AuthenticationFailed("Use the header: Authorization: Bearer <key>.")
    return raw_key.strip()


class DatabaseUnavailable(exceptions.APIException):
    """503 with Retry-After: the database is out of reach (after the retries) for a key
    this process has not seen or a batch to store."""

    status_code = 503
    default_detail = "The platform cannot reach its database for a moment; retry shortly."
    default_code = "unavailable"
    wait = 1  # DRF's handler sends it as Retry-After


class PlatformKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[PlatformClient, None] | None:
        raw_key = bearer_key(request)
        if raw_key is None:
            return None
        try:
            key_id = services.platform_key_authenticate(raw_key=raw_key)
        except LOST:  # a key this process has not seen, with the database out of reach
            raise DatabaseUnavailable() from None
        if key_id is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked platform key.")
        return PlatformClient(key_id), None

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class PlatformKeyScheme(OpenApiAuthenticationExtension):
    target_class = PlatformKeyAuthentication
    name = "platformKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A platform key: il_..."}


# What a platform operation can answer besides its 200 (the schema's).
PLATFORM_ERRORS = {
    400: OpenApiResponse(ERROR, description="Bad input: `fields` names the bad field."),
    401: OpenApiResponse(ERROR, description="No key, or an unknown or revoked one."),
    415: OpenApiResponse(ERROR, description="The body is not JSON."),
}


class PlatformAPIView(APIView):
    authentication_classes = [PlatformKeyAuthentication]


class DecisionInput(serializers.Serializer):
    viewer_id = serializers.CharField(max_length=64, help_text="The viewer's external id.")
    title_id = serializers.IntegerField(min_value=1)
    ad_break_id = serializers.IntegerField(min_value=1, required=False)
    offset_seconds = serializers.IntegerField(
        min_value=0, required=False, help_text="The break's offset, instead of its id."
    )
    device = serializers.ChoiceField(choices=Device.choices)
    region = serializers.ChoiceField(
        choices=Region.choices, required=False, help_text="Defaults to the viewer's region."
    )
    pod_size = serializers.IntegerField(min_value=1, max_value=10, required=False)
    max_duration_seconds = serializers.IntegerField(min_value=15, max_value=600, required=False)
    explain = serializers.BooleanField(default=False)
    engagement_score = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        help_text="The session's live engagement score (chance of finishing the title), for "
        "the platform's ad load policy: with AD_LOAD_POLICY=engagement a session at risk gets "
        "a shorter pod, or none.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "ad_break_id" not in attrs and "offset_seconds" not in attrs:
            raise serializers.ValidationError(
                {"ad_break_id": "Give ad_break_id or offset_seconds."}
            )
        return attrs


class SlotOutput(serializers.Serializer):
    position = serializers.IntegerField()
    creative_id = serializers.IntegerField()
    line_item_id = serializers.IntegerField()
    advertiser_id = serializers.IntegerField()
    duration_seconds = serializers.IntegerField()
    media_url = serializers.URLField()
    tracking = inline_serializer(
        "TrackingUrls", {event: serializers.URLField() for event in AdEvent.Type.values}
    )


class DecisionOutput(serializers.Serializer):
    decision_id = serializers.CharField()
    ad_break_id = serializers.IntegerField(allow_null=True)
    max_duration_seconds = serializers.IntegerField()
    duration_seconds = serializers.IntegerField()
    pod = SlotOutput(many=True)
    reason = serializers.ChoiceField(
        choices=["no_eligible_ads", "kids_profile", "unknown_viewer", "degraded", "ad_load_policy"],
        allow_null=True,
    )
    explain = inline_serializer(
        "ExplainEntry",
        {
            "stage": serializers.CharField(help_text="live, targeting, kids, budget, ..., pod"),
            "rule": serializers.CharField(help_text="e.g. device, daily_budget, chosen"),
            "line_items": serializers.IntegerField(help_text="How many it applied to."),
        },
        many=True,
        required=False,
    )


DEVICES = frozenset(Device.values)
EVENT_TYPES = tuple(AdEvent.Type.values)  # the enum property builds a new list at each call
REGIONS = frozenset(Region.values)
# (field, smallest, largest) of the optional integers, as DecisionInput bounds them.
OPTIONAL_INTEGERS = (
    ("ad_break_id", 1, None),
    ("offset_seconds", 0, None),
    ("pod_size", 1, 10),
    ("max_duration_seconds", 15, 600),
)


def _plain_int(value: Any, smallest: int, largest: int | None) -> bool:
    return type(value) is int and value >= smallest and (largest is None or value <= largest)


def parse_decision_request(data: Any) -> DecisionRequest | None:
    """The request when every field has its plain JSON type and is in range, as DecisionInput
    would accept it; None for anything else (strings for numbers, nulls, bad values), which
    DecisionInput then converts or refuses with its own messages. The serializer costs about
    as much as the decision itself, and players send the plain form."""
    if type(data) is not dict:
        return None
    viewer_id, title_id, device = data.get("viewer_id"), data.get("title_id"), data.get("device")
    if (
        type(viewer_id) is not str
        or not 0 < len(viewer_id) <= 64
        or viewer_id != viewer_id.strip()
        or "\x00" in viewer_id  # the serializer refuses null characters
        or not _plain_int(title_id, 1, None)
        or type(device) is not str
        or device not in DEVICES
    ):
        return None
    values: dict[str, Any] = {"viewer_id": viewer_id, "title_id": title_id, "device": device}
    for name, smallest, largest in OPTIONAL_INTEGERS:
        if name in data:
            if not _plain_int(data[name], smallest, largest):
                return None
            values[name] = data[name]
    if "ad_break_id" not in values and "offset_seconds" not in values:
        return None
    if "region" in data:
        if type(data["region"]) is not str or data["region"] not in REGIONS:
            return None
        values["region"] = data["region"]
    if "explain" in data:
        if type(data["explain"]) is not bool:
            return None
        values["explain"] = data["explain"]
    if "engagement_score" in data:
        score = data["engagement_score"]
        if type(score) not in (int, float) or not 0 <= score <= 1:
            return None
        values["engagement_score"] = float(score)
    return DecisionRequest(**values)


def decision_payload(decision: Decision, tracking_base: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "decision_id": decision.decision_id,
        "ad_break_id": decision.ad_break_id,
        "max_duration_seconds": decision.max_duration_seconds,
        "duration_seconds": decision.duration_seconds,
        "pod": [
            {
                "position": slot.position,
                "creative_id": slot.creative.id,
                "line_item_id": slot.line_item.id,
                "advertiser_id": slot.line_item.advertiser_id,
                "duration_seconds": slot.creative.duration_seconds,
                "media_url": slot.creative.media_url,
                "tracking": {
                    event: f"{tracking_base}{slot.token}/{event}" for event in EVENT_TYPES
                },
            }
            for slot in decision.pod
        ],
        "reason": decision.reason,
    }
    if decision.explain is not None:
        payload["explain"] = explain_for_player(decision.explain)
    return payload


STAGE_ORDER = {stage: position for position, stage in enumerate(eligibility.STAGES)}


def explain_for_player(report: list[dict]) -> list[dict]:
    """What a platform key's caller sees of `explain`: how many line items each stage and
    rule removed (or chose), in the engine's stage order. A player needs to know why its pod
    came back short; the line items' names, ids, advertisers and scores are each account's
    business, and any player could ask."""
    counts = Counter((entry["stage"], entry["rule"]) for entry in report)
    return [
        {"stage": stage, "rule": rule, "line_items": count}
        for (stage, rule), count in sorted(
            counts.items(),
            key=lambda item: (STAGE_ORDER.get(item[0][0], len(STAGE_ORDER)), item[0][1] or ""),
        )
    ]


class DecisionView(PlatformAPIView):
    @extend_schema(
        operation_id="decide",
        summary="Choose the pod of ads for an ad break",
        request=DecisionInput,
        responses={200: DecisionOutput, **PLATFORM_ERRORS},
        examples=[
            OpenApiExample(
                "A pre-roll on a connected TV",
                description="The demo's first title, at its pre-roll (every title has one, at "
                "0 s), for its first viewer: demo:viewer:1 (ml:1 with the MovieLens catalog; "
                "an unknown viewer gets an empty pod and the reason unknown_viewer).",
                value={
                    "viewer_id": "demo:viewer:1",
                    "title_id": 1,
                    "offset_seconds": 0,
                    "device": "ctv",
                },
                request_only=True,
            ),
            OpenApiExample(
                "A pod of two",
                value={
                    "decision_id": "5f0c2b9e8a2d4c1f9b7e6d5c4b3a2910",
                    "ad_break_id": 1,
                    "max_duration_seconds": 90,
                    "duration_seconds": 45,
                    "pod": [
                        {
                            "position": 1,
                            "creative_id": 12,
                            "line_item_id": 4,
                            "advertiser_id": 1,
                            "duration_seconds": 30,
                            "media_url": "https://cdn.example.com/fizzy-30.mp4",
                            "tracking": {
                                "impression": "https://ads.example.com/t/TOKEN/impression",
                                "click": "https://ads.example.com/t/TOKEN/click",
                            },
                        }
                    ],
                    "reason": None,
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> HttpResponse:
        """Answers with the pod (ordered creatives with signed tracking links), or an empty pod
        and a reason: `no_eligible_ads`, `kids_profile` (kids profiles never get ads),
        `unknown_viewer`, `degraded` (the platform cannot check budgets and caps for a moment:
        play the title on, as with no fill) or `ad_load_policy` (the platform's ad load policy
        skipped the break for a session at risk, given its `engagement_score`). With
        `explain: true`, how many line items each stage and rule removed (or `pod` / `chosen`):
        never their names, ids or scores, which belong to their accounts."""
        form = DecisionInput(data=request.data)
        form.is_valid(raise_exception=True)
        return _decision_response(request, DecisionRequest(**form.validated_data))

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """The hot path: a POST with a known key and a plain, valid JSON body is answered
        without DRF's request wrapping, content negotiation and serializer (together about
        half a millisecond of CPU, as much as the decision). Anything else (no or a bad key,
        unparsable or invalid input, another method) goes through DRF, which words the
        error exactly as the rest of the API does."""
        if (
            request.method == "POST"
            and request.content_type == "application/json"
            and platform_key_id(request.META.get("HTTP_AUTHORIZATION", "")) is not None
            and _within_django_limit(request)
        ):
            parsed = parse_decision_request(plain_json(request.body))
            if parsed is not None:
                return _decision_response(request, parsed)
        return super().dispatch(request, *args, **kwargs)


def _within_django_limit(request: HttpRequest) -> bool:
    """Whether the body can be read as `request.body` (Django refuses one over
    DATA_UPLOAD_MAX_MEMORY_SIZE with an HTML 400; DRF's parser answers it with a 413 in the
    envelope)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return limit is None or length <= limit


def _decision_response(request: HttpRequest, decision_request: DecisionRequest) -> HttpResponse:
    status, payload = decision_answer(decision_request, request.build_absolute_uri("/t/"))
    return HttpResponse(json_bytes(payload), content_type="application/json", status=status)


def platform_key_id(authorization: str) -> int | None:
    """The id of the active platform key an `Authorization: Bearer <key>` header names; None
    for anything else, which DRF's authentication then refuses in its own words."""
    scheme, _, raw_key = authorization.partition(" ")
    raw_key = raw_key.strip()
    if scheme != PlatformKeyAuthentication.keyword or not raw_key:
        return None
    try:
        return services.platform_key_authenticate(raw_key=raw_key)
    except LOST:  # DRF's authentication answers it (DatabaseUnavailable)
        return None


def plain_json(body: bytes) -> Any:
    """The body's JSON, or None when orjson cannot read it: DRF's parser then words the error
    (or accepts what only `json` reads, NaN or a huge integer, as it always has)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def decision_answer(decision_request: DecisionRequest, tracking_base: str) -> tuple[int, dict]:
    """The status and body of a decision, for the view's fast path and the lean WSGI path
    (config/api_wsgi.py) alike: the one place where the engine's outcomes become answers."""
    started = time.perf_counter()
    try:
        decision = decide(decision_request)
    except DecisionRequestError as error:
        return 400, error_body("invalid", error.message, {error.field: [error.message]})
    latency.recorder.record((time.perf_counter() - started) * 1000)
    return 200, decision_payload(decision, tracking_base)


def json_bytes(payload: Any) -> bytes:
    """JSON as DRF's JSONRenderer writes it: compact UTF-8, with U+2028 and U+2029 escaped
    (so the answer is also valid JavaScript)."""
    data = orjson.dumps(payload)
    # Both encode as E2 80 A8/A9: an ASCII answer (nearly every one) has neither, and
    # isascii() reads it a word at a time, where a search for the two bytes took ~10 µs of
    # a decision's 6 kB answer.
    if not data.isascii() and b"\xe2\x80" in data:
        data = data.replace("\u2028".encode(), b"\\u2028").replace("\u2029".encode(), b"\\u2029")
    return data


class EventBatchInput(serializers.Serializer):
    events = inline_serializer(
        "ReportedEvent",
        {
            "event_id": serializers.CharField(
                min_length=1, max_length=80, help_text="Your id for the event."
            ),
            "token": serializers.CharField(
                min_length=1, help_text="The slot's token from the decision."
            ),
            "type": serializers.ChoiceField(choices=AdEvent.Type.choices),
            "occurred_at": serializers.DateTimeField(
                required=False,
                allow_null=True,
                help_text="When it happened, with its UTC offset; absent or null: on arrival.",
            ),
        },
        many=True,
    )


class EventBatchOutput(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = inline_serializer(
        "EventResult",
        {
            "event_id": serializers.CharField(),
            "status": serializers.ChoiceField(choices=["accepted", "duplicate", "rejected"]),
            "reason": serializers.CharField(allow_null=True),
        },
        many=True,
    )


def parse_event_batch(data: Any) -> list[services.IncomingEvent]:
    """Parse by hand, not with nested serializers: a batch holds up to 1,000 events and this
    is the ingestion hot path. Raises ValidationError naming the first bad field.

    An event as players send it (three short strings, no time) is taken in one test; any other
    goes through `_parsed_event`, which checks each field in turn and words the error."""
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise serializers.ValidationError({"events": ["A list of events is required."]})
    raw_events = data["events"]
    if not 1 <= len(raw_events) <= services.events.MAX_BATCH:
        raise serializers.ValidationError(
            {"events": [f"Send between 1 and {services.events.MAX_BATCH} events."]}
        )
    incoming = services.IncomingEvent
    parsed = []
    for position, raw in enumerate(raw_events):
        if type(raw) is dict and raw.get("occurred_at") is None:
            event_id, token, event_type = raw.get("event_id"), raw.get("token"), raw.get("type")
            if (
                type(event_id) is str
                and type(token) is str
                and type(event_type) is str
                and 0 < len(event_id) <= 80
                and 0 < len(token) <= 2000
                and 0 < len(event_type) <= 2000
            ):
                parsed.append(incoming(token, event_type, event_id))
                continue
        parsed.append(_parsed_event(raw, position))
    return parsed


def _parsed_event(raw: Any, position: int) -> services.IncomingEvent:
    """One event of a batch, each field checked in turn: the first bad one raises
    ValidationError naming it (`events[3].token`)."""
    where = f"events[{position}]"
    if not isinstance(raw, dict):
        raise serializers.ValidationError({where: ["Each event is an object."]})
    for name in ("event_id", "token", "type"):
        value = raw.get(name)
        if not isinstance(value, str) or not value or len(value) > 2000:
            raise serializers.ValidationError({f"{where}.{name}": ["A non-empty string."]})
    if len(raw["event_id"]) > 80:
        raise serializers.ValidationError({f"{where}.event_id": ["At most 80 characters."]})
    occurred_at, problem = _occurred_at(raw.get("occurred_at"), where)
    return services.IncomingEvent(
        token=raw["token"],
        event_type=raw["type"],
        client_event_id=raw["event_id"],
        occurred_at=occurred_at,
        problem=problem,
    )


def _occurred_at(value: Any, where: str) -> tuple[datetime | None, str | None]:
    """The reported time, and the problem that rejects this event alone if it has one.

    Not a time at all ("noon", a number) is a malformed batch: a 400 naming the field. A time
    in the right form that cannot exist (30 February, hour 25, offset +99:00, digits that are
    not ASCII) is one bad event in a good batch, rejected as `bad_timestamp`."""
    if value is None:
        return None, None
    try:
        occurred_at = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None, "bad_timestamp"
    if occurred_at is None or occurred_at.tzinfo is None:
        raise serializers.ValidationError(
            {f"{where}.occurred_at": ["An ISO 8601 time with a UTC offset."]}
        )
    if not value.isascii():
        return None, "bad_timestamp"
    return occurred_at, None


class EventBatchView(PlatformAPIView):
    @extend_schema(
        operation_id="report_events",
        summary="Report a batch of ad events (server-side tracking)",
        request=EventBatchInput,
        responses={200: EventBatchOutput, **PLATFORM_ERRORS},
        examples=[
            OpenApiExample(
                "An impression and a click",
                value={
                    "events": [
                        {"event_id": "evt-1", "token": "TOKEN", "type": "impression"},
                        {"event_id": "evt-2", "token": "TOKEN", "type": "click"},
                    ]
                },
                request_only=True,
            ),
            OpenApiExample(
                "One accepted, one sent before",
                value={
                    "accepted": 1,
                    "duplicates": 1,
                    "rejected": 0,
                    "results": [
                        {"event_id": "evt-1", "status": "duplicate", "reason": "replayed"},
                        {"event_id": "evt-2", "status": "accepted", "reason": None},
                    ],
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        """Up to 1,000 events. Idempotent: an event already counted (by its decision, creative
        and type) comes back `duplicate`, so a batch sent twice counts once. Rejection reasons:
        `forged`, `expired`, `unknown_event_type`, `no_impression`, `bad_timestamp` (outside
        the token's life, or a time that cannot exist), `invalid_event_id` (a null character
        or a lone surrogate, which cannot be stored), `bot`, `unknown_reference`. A rejected
        event is rejected alone: the batch's other events are stored."""
        return Response(
            events_answer(parse_event_batch(request.data), request.headers.get("User-Agent", ""))
        )


def events_answer(events: list[services.IncomingEvent], user_agent: str) -> dict[str, Any]:
    """The answer to a parsed batch, for the view and the lean WSGI path alike. With the
    database out of reach after the retries, nothing was stored: 503 with Retry-After (the
    player sends the batch again), never `accepted`."""
    try:
        outcomes = services.events_record(events=events, user_agent=user_agent)
    except LOST:
        raise DatabaseUnavailable("The platform cannot store events for a moment; retry.") from None
    statuses = [outcome.status for outcome in outcomes]
    return {
        "accepted": statuses.count("accepted"),
        "duplicates": statuses.count("duplicate"),
        "rejected": statuses.count("rejected"),
        "results": [
            {
                "event_id": _printable(outcome.client_event_id),
                "status": outcome.status,
                "reason": outcome.reason,
            }
            for outcome in outcomes
        ],
    }


SURROGATES = re.compile("[\ud800-\udfff]")


def _printable(event_id: str) -> str:
    """The event id as a JSON answer can carry it: a lone surrogate (refused as
    `invalid_event_id`) has no UTF-8 form, so it is echoed as U+FFFD."""
    if event_id.isascii():
        return event_id
    return SURROGATES.sub("\ufffd", event_id)


@extend_schema(exclude=True)
@require_GET
def track(request: HttpRequest, token: str, event_type: str) -> HttpResponse:
    """A tracking link: 204 when counted; a click redirects to the creative's click-through
    URL (also when already counted), except as a pixel (`?redirect=0`, VAST's ClickTracking,
    fired beside the ClickThrough the player opens). Rejected events answer 400 naming the
    reason; with the database out of reach (after the retries), 503 with Retry-After."""
    try:
        outcome = services.event_track(
            token=token, event_type=event_type, user_agent=request.headers.get("User-Agent", "")
        )
    except LOST:
        response = JsonResponse(
            error_body("unavailable", "The platform cannot store events for a moment; retry."),
            status=503,
        )
        response["Retry-After"] = "1"
        response["Cache-Control"] = "no-store"
        return response
    redirect = request.GET.get("redirect") != "0"
    response: HttpResponse
    if redirect and event_type == AdEvent.Type.CLICK and outcome.claim is not None:
        # A genuine token's click goes to the landing page, counted or not.
        response = HttpResponseRedirect(_click_url(outcome.claim))
    elif outcome.status == "accepted":
        response = HttpResponse(status=204)
    else:
        code = outcome.reason or "rejected"
        response = JsonResponse(error_body(code, REJECTION_MESSAGES.get(code, code)), status=400)
    # Every call must reach the server (a browser reuses an image it may cache).
    response["Cache-Control"] = "no-store"
    return response


REJECTION_MESSAGES = {
    "forged": "The tracking token is not genuine.",
    "expired": "The tracking token has expired.",
    "replayed": "This event was already counted.",
    "no_impression": "This ad's impression was not counted first.",
    "bot": "Requests from automated agents are not counted.",
    "unknown_event_type": f"Known events: {', '.join(AdEvent.Type.values)}.",
    "unknown_reference": "The ad or viewer of this token no longer exists.",
}


def _click_url(claim: TrackingClaim) -> str:
    creative = current_index().creatives.get(claim.creative_id)
    if creative is not None:
        return creative.click_url
    # Paused or archived since the decision: not in the index.
    return selectors.creative_click_url(
        advertiser_id=claim.advertiser_id, creative_id=claim.creative_id
    )
