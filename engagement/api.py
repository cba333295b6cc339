"""The viewer app's playback API, called by the player of /watch/ in the viewer's browser:
open a viewing session, then send its playback events in batches.

The caller is the browser session bound to a profile on /watch/ (no platform key ever reaches
the page); a session id of another viewer is a 404, as one that does not exist. These are plain
Django views, so CsrfViewMiddleware guards them as it guards forms: the player's fetches carry
the token in the X-CSRFToken header; the beacon sent when the tab closes cannot set a header,
so it posts a form (`csrfmiddlewaretoken` and the batch's JSON in `batch`). Bad input is a 400
in the API's one error shape, naming the field (`events[3].kind`).

Event times are placed on the server's clock: the player sends `offset_ms`, the milliseconds
since it opened the session, and the event happened at the session's start plus that (never
in the future beyond a few seconds of slack), so a browser's wrong clock cannot misplace them.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_POST

from catalog.models import Device, Title, Viewer
from config.api import error_body
from engagement import selectors, services
from engagement.models import PlaybackEvent, ViewingSession

PROFILE_SESSION_KEY = "watch_viewer_id"
MAX_EVENTS = 200
MAX_DETAIL_CHARS = 1000
MAX_EVENT_ID = 64
CLOCK_SLACK = timedelta(seconds=5)
SPEEDS = (0.25, 4.0)
# Which details each kind must carry, and of what kind (int: whole seconds or counts).
REQUIRED_DETAIL: dict[str, dict[str, type]] = {
    PlaybackEvent.Kind.SEEK: {"from": int, "to": int},
    PlaybackEvent.Kind.SKIP: {"from": int, "to": int},
    PlaybackEvent.Kind.SPEED: {"rate": float},
    PlaybackEvent.Kind.AD_BREAK: {"break": int, "ads": int, "pod_seconds": int},
    PlaybackEvent.Kind.AD_START: {"break": int, "ad": int, "ads": int},
    PlaybackEvent.Kind.AD_END: {"break": int, "ad": int, "ads": int},
}


class BadInput(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _error(code: str, message: str, status: int, field: str | None = None) -> JsonResponse:
    fields = {field: [message]} if field else None
    return JsonResponse(error_body(code, message, fields), status=status)


def _profile_viewer(request: HttpRequest) -> Viewer | None:
    viewer_id = request.session.get(PROFILE_SESSION_KEY)
    if viewer_id is None:
        return None
    try:
        return selectors.watch_profile(viewer_id=viewer_id).viewer
    except Viewer.DoesNotExist:  # no longer a profile (another world loaded since)
        return None


def _body(request: HttpRequest) -> Any:
    """The JSON body of a fetch, or the `batch` field of the beacon's form."""
    if request.content_type == "application/json":
        raw = request.body
    elif "batch" in request.POST:
        raw = request.POST["batch"].encode()
    else:
        raise BadInput("batch", "Send JSON (application/json) or a form with a batch field.")
    try:
        return json.loads(raw)
    except ValueError:
        raise BadInput("batch", "The body is not valid JSON.") from None


def _whole(value: Any, field: str, smallest: int = 0, largest: int | None = None) -> int:
    if type(value) is not int or value < smallest or (largest is not None and value > largest):
        bound = f" and at most {largest}" if largest is not None else ""
        raise BadInput(field, f"Must be a whole number of at least {smallest}{bound}.")
    return value


@require_POST
def session_open(request: HttpRequest) -> JsonResponse:
    """POST {"title_id", "device"} → 201 {"session_id", "started_at"}: a new open session of
    the profile's viewer with a title the profile may watch (404 for any other title)."""
    viewer = _profile_viewer(request)
    if viewer is None:
        return _error("no_profile", "Choose a profile on /watch/ first.", 403)
    try:
        data = _body(request)
        if type(data) is not dict:
            raise BadInput("batch", "Send a JSON object.")
        title_id = _whole(data.get("title_id"), "title_id", smallest=1)
        device = data.get("device")
        if device not in Device.values:
            raise BadInput("device", f"One of: {', '.join(Device.values)}.")
    except BadInput as error:
        return _error("invalid", error.message, 400, error.field)
    try:
        title = selectors.watch_title(viewer=viewer, title_id=title_id)
    except Title.DoesNotExist:
        return _error("not_found", "No such title for this profile.", 404, "title_id")
    session = services.viewing_session_start(
        viewer_id=viewer.pk, title_id=title.pk, device=device, started_at=timezone.now()
    )
    return JsonResponse(
        {"session_id": session.pk, "started_at": session.started_at.isoformat()}, status=201
    )


@require_POST
def session_events(request: HttpRequest, session_id: int) -> JsonResponse:
    """POST {"events": [{"event_id", "kind", "position_seconds", "offset_ms", "detail"}],
    "watched_seconds"} → 200 {"stored", "duplicates", "ended"}: the batch appended to the
    profile's session, each event once per `event_id` (a batch sent again stores nothing)."""
    # The binding was checked when the profile was chosen: the viewer's id is enough here (two
    # queries fewer on the busiest endpoint of the viewer app).
    viewer_id = request.session.get(PROFILE_SESSION_KEY)
    if viewer_id is None:
        return _error("no_profile", "Choose a profile on /watch/ first.", 403)
    try:
        session = selectors.viewer_session(viewer_id=viewer_id, session_id=session_id)
    except ViewingSession.DoesNotExist:
        return _error("not_found", "No such viewing session for this profile.", 404)
    try:
        data = _body(request)
        events, watched_seconds = _parse_batch(data, session=session)
        outcome = services.playback_events_append(
            session=session, events=events, watched_seconds=watched_seconds
        )
    except BadInput as error:
        return _error("invalid", error.message, 400, error.field)
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        return _error("invalid", messages[0], 400, field)
    return JsonResponse(
        {"stored": outcome.stored, "duplicates": outcome.duplicates, "ended": outcome.ended}
    )


def _parse_batch(
    data: Any, *, session: ViewingSession
) -> tuple[list[services.PlayerEvent], int | None]:
    if type(data) is not dict:
        raise BadInput("batch", "Send a JSON object.")
    raw_events = data.get("events")
    if type(raw_events) is not list or not 1 <= len(raw_events) <= MAX_EVENTS:
        raise BadInput("events", f"A list of 1 to {MAX_EVENTS} events.")
    watched_seconds = data.get("watched_seconds")
    if watched_seconds is not None:
        _whole(watched_seconds, "watched_seconds")
    latest = timezone.now() + CLOCK_SLACK - session.started_at
    latest_ms = int(latest.total_seconds() * 1000)
    events = []
    for index, raw in enumerate(raw_events):
        name = f"events[{index}]"
        if type(raw) is not dict:
            raise BadInput(name, "Each event is a JSON object.")
        event_id = raw.get("event_id")
        if type(event_id) is not str or not 0 < len(event_id) <= MAX_EVENT_ID:
            raise BadInput(f"{name}.event_id", f"A string of 1 to {MAX_EVENT_ID} characters.")
        kind = raw.get("kind")
        if kind not in PlaybackEvent.Kind.values:
            raise BadInput(f"{name}.kind", f"One of: {', '.join(PlaybackEvent.Kind.values)}.")
        position = _whole(
            raw.get("position_seconds"),
            f"{name}.position_seconds",
            largest=session.title.duration_seconds,
        )
        offset_ms = _whole(raw.get("offset_ms"), f"{name}.offset_ms", largest=max(latest_ms, 0))
        detail = _detail(raw.get("detail", {}), kind, f"{name}.detail")
        events.append(
            services.PlayerEvent(
                event_id=event_id,
                kind=kind,
                position_seconds=position,
                at=session.started_at + timedelta(milliseconds=offset_ms),
                detail=detail,
            )
        )
    return events, watched_seconds


def _detail(detail: Any, kind: str, name: str) -> dict[str, Any]:
    if type(detail) is not dict:
        raise BadInput(name, "A JSON object.")
    if len(json.dumps(detail)) > MAX_DETAIL_CHARS:
        raise BadInput(name, f"At most {MAX_DETAIL_CHARS} characters of JSON.")
    for key, expected in REQUIRED_DETAIL.get(kind, {}).items():
        value = detail.get(key)
        if expected is int:
            _whole(value, f"{name}.{key}")
        elif type(value) not in (int, float) or not SPEEDS[0] <= value <= SPEEDS[1]:
            raise BadInput(f"{name}.{key}", f"A number from {SPEEDS[0]} to {SPEEDS[1]}.")
    return detail
