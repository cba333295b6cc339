"""What every route of the account API shares: the key's authentication and scope, the
per-key throttle, the body size limit, the account's time zone, cursor pages, `ETag` /
`If-Match` and `Idempotency-Key`, and the error responses the schema documents."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist
from django.core.exceptions import ValidationError as ModelValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import authentication, exceptions, permissions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from ads import services
from ads.api import bearer_key
from ads.models import AccountKey, Advertiser
from config.api import ERROR, JSONParser, api_exception_handler

# The largest id a database key holds (PostgreSQL's bigint). Django answers a lookup past it
# as "no row"; a cursor's position is compared raw (`id < position`), which PostgreSQL refuses.
MAX_ID = 2**63 - 1
# Bodies larger than this are refused (413): the largest honest body, a line item targeting
# every one of ~1,700 titles by id, is about 12 KB.
MAX_BODY_BYTES = 64 * 1024


class AccountClient:
    """The authenticated caller of the account API: an integration of one account, by its key."""

    is_authenticated = True

    def __init__(self, key: AccountKey) -> None:
        self.key = key
        self.advertiser: Advertiser = key.advertiser


class AccountKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AccountClient, AccountKey] | None:
        raw_key = bearer_key(request)
        if raw_key is None:
            return None
        key = services.account_key_authenticate(raw_key=raw_key)
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked account key.")
        return AccountClient(key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class AccountKeyScheme(OpenApiAuthenticationExtension):
    target_class = AccountKeyAuthentication
    name = "accountKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An account key (ila_...), made by the account's owner.",
        }


class KeyScope(permissions.BasePermission):
    """A read key reads; a view whose POST only reads (asking a question) says so with
    `posts_read = True`."""

    message = "This key is read-only; writing needs a read-and-write key."

    def has_permission(self, request: Request, view: APIView) -> bool:
        client = request.user
        if not isinstance(client, AccountClient):
            return False
        reads = request.method in permissions.SAFE_METHODS or getattr(view, "posts_read", False)
        return reads or client.key.can_write


class AccountKeyThrottle(SimpleRateThrottle):
    """Requests per key, DRF's sliding window in the default cache (Redis when REDIS_URL is
    set, so all processes share one count; local memory otherwise). The rate is read at each
    request, not at import, so settings (and tests) can change it."""

    scope = "account_key"

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        client = request.user
        if not isinstance(client, AccountClient):
            return None  # refused anyway: 401
        return self.cache_format % {"scope": self.scope, "ident": client.key.pk}


def id_field(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


class AccountJSONParser(JSONParser):
    max_bytes = MAX_BODY_BYTES


class AccountAPIView(APIView):
    """A view of the account API: the key's account is `self.advertiser`, and times are read
    and written in the account's time zone (a naive time is the account's local time, as on
    the web forms)."""

    authentication_classes = [AccountKeyAuthentication]
    permission_classes = [KeyScope]
    throttle_classes = [AccountKeyThrottle]
    parser_classes = [AccountJSONParser]
    # No OPTIONS: DRF's metadata describes the forms of its browsable API, which this API has
    # not, and the schema documents every operation instead (405, as any other method).
    metadata_class = None

    @property
    def advertiser(self) -> Advertiser:
        return self.request.user.advertiser  # type: ignore[union-attr]

    @property
    def key(self) -> AccountKey:
        return self.request.user.key  # type: ignore[union-attr]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        timezone.activate(self.advertiser.tzinfo)

    def finalize_response(self, request, response, *args, **kwargs):  # type: ignore[no-untyped-def]
        timezone.deactivate()
        return super().finalize_response(request, response, *args, **kwargs)


def not_found(kind: str) -> exceptions.NotFound:
    return exceptions.NotFound(f"No such {kind} in this account.")


def get_or_404(selector: Callable[..., Any], kind: str, **kwargs: Any) -> Any:
    """The account's row, or a 404 that does not say whether another account has it."""
    try:
        return selector(**kwargs)
    except ObjectDoesNotExist:
        raise not_found(kind) from None


def service_errors(error: ModelValidationError) -> exceptions.ValidationError:
    """A service's ValidationError as the API's 400, naming each field (a rule about the whole
    object is `non_field_errors`, as DRF names it)."""
    if hasattr(error, "error_dict"):
        fields = {
            ("non_field_errors" if field == NON_FIELD_ERRORS else field): messages
            for field, messages in error.message_dict.items()
        }
        return exceptions.ValidationError(fields)
    return exceptions.ValidationError({"non_field_errors": error.messages})


# Cursor pages ---------------------------------------------------------------------------


class Pages(CursorPagination):
    """Opaque cursors (Stripe's `starting_after`, as a link): a page does not shift when rows
    are added meanwhile, and no page costs an OFFSET scan. `ordering` is set per request from
    the list's `ordering` parameter; ties are broken by id."""

    ordering: Any = ("-id",)
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def __init__(self, ordering: tuple[str, ...] = ("-id",)) -> None:
        self.ordering = ordering

    def decode_cursor(self, request: Request) -> Any:
        """DRF's, refusing a well-formed cursor whose position is not a value of the ordering
        field (DRF passes it to the query as it is: a 500)."""
        cursor = super().decode_cursor(request)
        position = cursor.position if cursor is not None else None
        if position is not None and not _position_ok(self.ordering[0].lstrip("-"), position):
            raise exceptions.NotFound(self.invalid_cursor_message)
        return cursor


def _position_ok(field: str, position: str) -> bool:
    if "\x00" in position:
        return False
    try:
        if field == "id":
            return position.isdigit() and int(position) <= MAX_ID
        if field.endswith("_date"):
            return parse_date(position) is not None
        if field.endswith("_at"):
            return parse_datetime(position) is not None
    except ValueError:
        return False
    return True


class PageQuery(serializers.Serializer):
    """The query of a list: a bad `limit` is named, not replaced by the default."""

    cursor = serializers.CharField(required=False, help_text="From a page's next or previous.")
    limit = serializers.IntegerField(
        min_value=1,
        max_value=Pages.max_page_size,
        required=False,
        help_text=f"Per page: {Pages.page_size} unless given.",
    )


def page_of(output: type[serializers.Serializer], name: str) -> serializers.Serializer:
    return inline_serializer(
        name,
        {
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": output(many=True),
        },
    )


# ETag / If-Match ------------------------------------------------------------------------


def etag_of(representation: Any) -> str:
    """A strong validator of what a retrieve answers: it changes when any field shown does."""
    text = json.dumps(representation, cls=DjangoJSONEncoder, sort_keys=True)
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def with_etag(response: Response) -> Response:
    response["ETag"] = etag_of(response.data)
    return response


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_code = "precondition_failed"
    default_detail = "The resource changed since you read it: read it again (its ETag)."


def check_if_match(request: Request, representation: Any) -> None:
    """`If-Match` is optional: without it a write applies, as the web forms' do (they hold no
    lock either, so requiring it here alone would not prevent a lost update, and a script that
    pauses a line item should not need a read first). With it, the write applies only when
    one of its tags (or `*`) matches the current representation's."""
    header = request.headers.get("If-Match")
    if header is None:
        return
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    if "*" not in tags and etag_of(representation) not in tags:
        raise PreconditionFailed()


IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="The ETag of your last read: the write applies only if nothing changed since "
    "(else 412). Optional.",
)


# Idempotency-Key -------------------------------------------------------------------------

IDEMPOTENCY_SECONDS = 24 * 3600
IDEMPOTENCY_LOCK_SECONDS = 60
MAX_IDEMPOTENCY_KEY = 255

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Any unique string up to 255 characters (a UUID): the same key with the same "
    "body within 24 h answers the first response again instead of creating twice; with "
    "another body it is a 409.",
)


class IdempotencyConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_conflict"


def idempotent(request: Request, key: AccountKey, create: Callable[[], Response]) -> Response:
    """Run `create` once per `Idempotency-Key` of this account key.

    Stored in the cache (Redis in production) for 24 hours, per account key, not in a table:
    the cache expires keys by itself and its `add` is atomic, so two requests racing with the
    same key cannot both create (the second gets a 409 until the first is done). Without
    Redis the cache is per process, which is the embedded single-process set-up.
    1. No header: just create.
    2. A stored answer with the same body (and path): replay it, marked `Idempotent-Replayed`.
    3. The same key with another body, or still in flight: 409.
    4. Else take the key, create, and store the answer (a 201, or the 400 naming a bad field:
       retrying a refused body is refused alike); any other outcome frees the key."""
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is None:
        return create()
    if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise exceptions.ValidationError(
            {"Idempotency-Key": [f"Between 1 and {MAX_IDEMPOTENCY_KEY} characters."]}
        )
    digest = hashlib.sha256(idempotency_key.encode(errors="surrogatepass")).hexdigest()
    cache_key = f"api:idempotency:{key.pk}:{digest}"
    body = json.dumps(request.data, cls=DjangoJSONEncoder, sort_keys=True)
    request_text = f"{request.path}\n{body}".encode(errors="surrogatepass")
    fingerprint = hashlib.sha256(request_text).hexdigest()
    if not cache.add(cache_key, {"fingerprint": fingerprint}, IDEMPOTENCY_LOCK_SECONDS):
        stored = cache.get(cache_key) or {}
        if stored.get("fingerprint") != fingerprint:
            raise IdempotencyConflict(
                "This Idempotency-Key was used with another request: use a new key for it."
            )
        if "status" not in stored:
            raise IdempotencyConflict("A request with this Idempotency-Key is still running.")
        replay = Response(stored["data"], status=stored["status"], headers=stored["headers"])
        replay["Idempotent-Replayed"] = "true"
        return replay
    try:
        response = _created_or_refused(create)
    except BaseException:
        cache.delete(cache_key)
        raise
    if response.status_code in (status.HTTP_201_CREATED, status.HTTP_400_BAD_REQUEST):
        headers = {
            name: response[name] for name in ("Location", "ETag") if response.has_header(name)
        }
        cache.set(
            cache_key,
            {
                "fingerprint": fingerprint,
                "status": response.status_code,
                "data": response.data,
                "headers": headers,
            },
            IDEMPOTENCY_SECONDS,
        )
    else:
        cache.delete(cache_key)
    return response


def _created_or_refused(create: Callable[[], Response]) -> Response:
    """`create`'s answer; a refused body (ValidationError) as the 400 it becomes, so that it
    can be stored and replayed."""
    try:
        return create()
    except exceptions.ValidationError as error:
        response = api_exception_handler(error, {})
        assert response is not None
        return response


# Errors, as the schema documents them ------------------------------------------------------


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error responses of an operation: every account API operation can answer 401 and
    429 (with Retry-After); each operation adds its own (403: a read key writing)."""
    described = {
        400: "Bad input: `fields` names each bad field.",
        401: "No key, or an unknown or revoked one.",
        403: "Not for this key: a read key writing (or asking with a key whose maker was deleted).",
        404: "Not in this account (another account's id is a 404 too).",
        409: "The Idempotency-Key was used with another body, or is in flight.",
        412: "If-Match did not match: the resource changed since it was read.",
        413: f"The body is larger than {MAX_BODY_BYTES:,} bytes.",
        406: "`Accept` names a type this operation does not answer in.",
        415: "The body is not JSON.",
        429: "Too many requests with this key: wait `Retry-After` seconds.",
    }
    return {
        code: OpenApiResponse(ERROR, description=described[code])
        for code in sorted({401, 429, *statuses})
    }
