"""One error shape for the whole API: {"error": {"code", "message", "fields"}}."""

from typing import Any

from rest_framework import exceptions, parsers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict:
    """The body of every API error; views that answer without DRF (the decision fast path,
    tracking links) send it too."""
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


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
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return api_error("invalid", _first_message(exc.detail), fields, response.status_code)
    code = getattr(exc, "default_code", "error")
    detail = getattr(exc, "detail", str(exc))
    return api_error(str(code), str(detail), None, response.status_code)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing a body nested too deeply to decode as it refuses any other
    unreadable body: `json` raises RecursionError there, not ValueError, which was a 500."""

    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
