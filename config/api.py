"""One error shape for the whole API: {"error": {"code", "message", "fields"}}."""

import io
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import inline_serializer
from rest_framework import exceptions, parsers, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

# The envelope, as the schema documents it.
ERROR = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorDetail",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(help_text="Each bad field, with its messages."),
            },
        )
    },
)


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict:
    """The body of every API error; views that answer without DRF (the decision fast path,
    tracking links) send it too."""
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


@csrf_exempt  # any method: a PATCH to a wrong path is a 404 too, not the CSRF page's 403
def route_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """A path under /api/ that names no operation (`/api/v1/campaigns/abc`): the envelope's
    404, not the site's HTML page."""
    return JsonResponse(error_body("not_found", "No such API route."), status=404)


def api_error(
    code: str,
    message: str,
    fields: dict[str, Any] | None = None,
    http_status: int = status.HTTP_400_BAD_REQUEST,
) -> Response:
    return Response(error_body(code, message, fields), status=http_status)


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            return f"{field}: {_first_message(value)}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, RequestDataTooBig):  # Django's own limit, met reading the body
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = RequestTooLarge(f"The request body is larger than {limit:,} bytes.")
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        error = api_error("invalid", _first_message(exc.detail), fields, response.status_code)
        return _with_headers(error, response)
    code = getattr(exc, "default_code", "error")
    detail = getattr(exc, "detail", str(exc))
    return _with_headers(api_error(str(code), str(detail), None, response.status_code), response)


def _with_headers(error: Response, original: Response) -> Response:
    """The envelope keeps the headers DRF set on its own answer: `Retry-After` on a 429,
    `WWW-Authenticate` on a 401."""
    for name, value in original.items():
        if name.lower() != "content-type":
            error[name] = value
    return error


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "The request body is too large."


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing a body nested too deeply to decode as it refuses any other
    unreadable body: `json` raises RecursionError there, not ValueError, which was a 500.

    A subclass with `max_bytes` refuses a longer body with a 413 in the envelope, having read
    no more than one byte past the limit (a missing or false Content-Length cannot get past)."""

    max_bytes: int | None = None

    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        if self.max_bytes is not None and stream is not None:
            body = stream.read(self.max_bytes + 1)
            if len(body) > self.max_bytes:
                raise RequestTooLarge(f"The request body is larger than {self.max_bytes:,} bytes.")
            stream = io.BytesIO(body)
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
