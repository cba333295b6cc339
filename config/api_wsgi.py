"""The integration API's WSGI stack: the same Django project, with only the middleware a
platform-key API needs.

Players and SSAI servers call a few paths many times a second: decisions, event batches,
tracking links and the VAST/VMAP ad tags. They authenticate with a platform key, a signed
token or a public player id, never a session, so
the session, CSRF, authentication, messages, htmx and static-file middleware only cost time;
worse, the objects they hang on each request (session store, lazy user, message storage, htmx
details) refer back to it, so every request left ~40 objects for the cyclic garbage collector,
whose pauses land in the latency tail. Everything else (pages, admin, the schema, probes) goes
through the full stack, so a misrouted page still works.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterable
from http.client import responses
from types import ModuleType
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.cache import close_caches
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import DisallowedHost, TooManyFieldsSent
from django.core.handlers.base import reset_urlconf
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.db import close_old_connections, connections, reset_queries
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from rest_framework.exceptions import APIException, ValidationError

# Paths served by the lean stack (see ads/api_urls.py, ads/vast/urls.py and config/urls.py):
# the ad tags are fetched by players as often as decisions (not /vast/try/, a page).
API_PATHS = (
    "/api/v1/decisions",
    "/api/v1/events",
    "/t/",
    "/vast/4.2",
    "/vmap/1.0",
    "/vast/error",
)
API_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]


class APIHandler(WSGIHandler):
    """A WSGIHandler whose middleware chain is API_MIDDLEWARE instead of settings.MIDDLEWARE."""

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler builds the chain from settings.MIDDLEWARE; swap the list while it
        # does (at start-up, before any request thread runs) rather than copy that code.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def routed(full: WSGIApp, api: WSGIApp) -> WSGIApp:
    """A WSGI application that sends API_PATHS to `api` and everything else to `full`."""

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(API_PATHS):
            return api(environ, start_response)
        return full(environ, start_response)

    return application


DECISIONS_PATH = "/api/v1/decisions"
EVENTS_PATH = "/api/v1/events"
# Answered on the `api` server loop's own thread (config/wsgi_server.py): a decision and an ad
# tag wait on Redis (one round trip), on PostgreSQL only now and then (a key not yet cached).
# Everything else may wait on PostgreSQL (an event batch's transaction, a tracking link's
# insert, reports) and runs on the server's pool.
INLINE_PATHS = frozenset({DECISIONS_PATH, "/vast/4.2", "/vmap/1.0"})


def inline(path: str) -> bool:
    """Whether config/wsgi_server.py runs a request for this path on its loop's thread."""
    return path in INLINE_PATHS


JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8"})


class HotPath:
    """The two hot POSTs and the two ad tags' GETs without Django's request machinery: a
    plain request (a known platform key, a JSON body orjson reads, fields valid as the API's
    parsers check them; for a tag, any GET from an allowed host) is answered here, through
    the same functions as the views (ads.api.decision_answer and events_answer, and
    ads.vast.answers, whose answers include the tags' own errors, rate limits and refusals),
    with the headers API_MIDDLEWARE adds; anything else (no or a bad key, invalid input,
    another method, a refused host) goes to `django`, which words each answer as it always
    has. The WSGIRequest, URL resolution and middleware chain cost about as much CPU as the
    decision itself.

    The request signals' work is done as Django's receivers do it (they close database
    connections that outlived their age or broke), for this thread's connections directly
    when nothing but Django's own receivers listens (`_lean_signals`): sending the two signals
    through the dispatcher cost a tenth of a request; when anything else listens, the signals
    are sent. An exception is answered by Django's own handling (`response_for_exception`):
    where a degraded answer belongs, it belongs in ads.api's *_answer functions, shared by both
    paths."""

    def __init__(self, django: WSGIApp, api: ModuleType, tags: ModuleType | None = None) -> None:
        # `api` is ads.api, `tags` ads.vast.answers (config, the bottom layer, does not import
        # the apps; config.wsgi hands them over).
        self.django = django
        self.api = api
        self.tags = tags
        self._origins: dict[tuple, tuple[str, bool] | None] = {}
        self._headers: dict[bool, list[tuple[str, str]]] = {}
        self._lean: bool | None = None  # whether _lean_signals apply (known at the first POST)
        self._thread = threading.local()
        self._caches_close: bool | None = None  # whether close_caches does anything here

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if (
            path in (DECISIONS_PATH, EVENTS_PATH)
            and environ.get("REQUEST_METHOD") == "POST"
            and environ.get("CONTENT_TYPE", "").lower() in JSON_TYPES
        ):
            answered = self._post(path, environ, start_response)
            if answered is not None:
                return answered
        elif (
            self.tags is not None
            and path in self.tags.ANSWERS
            and environ.get("REQUEST_METHOD") == "GET"
        ):
            answered = self._tag(path, environ, start_response)
            if answered is not None:
                return answered
        return self.django(environ, start_response)

    def _signals(self, environ: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
        """The request_started and request_finished work (see the class's docstring)."""
        if self._lean is None:
            self._lean = _lean_signals()
        if self._lean:
            return self._started, self._finished
        started = lambda: signals.request_started.send(  # noqa: E731
            sender=self.__class__, environ=environ
        )
        finished = lambda: signals.request_finished.send(sender=self.__class__)  # noqa: E731
        return started, finished

    def _tag(
        self, path: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes] | None:
        """An ad tag (GET /vast/4.2, /vmap/1.0), answered by ads.vast.answers as the view
        answers it; None (Django answers) for a request Django must word itself: a refused
        host or agent, or a query string Django refuses (too many fields, or not the bytes
        a WSGI string carries)."""
        origin = self._origin(environ)
        if origin is None:
            return None
        site, secure = origin
        try:
            query = self.tags.query_of(environ.get("QUERY_STRING", ""))  # type: ignore[union-attr]
        except (TooManyFieldsSent, UnicodeError):
            return None
        started, finished = self._signals(environ)
        started()
        try:
            try:
                answer = self.tags.ANSWERS[path](  # type: ignore[union-attr]
                    query,
                    site=site,
                    user_agent=environ.get("HTTP_USER_AGENT", ""),
                    address=environ.get("REMOTE_ADDR") or "unknown",
                )
            except Exception as error:
                return self._django_response(
                    response_for_exception(WSGIRequest(environ), error),
                    secure,
                    environ,
                    start_response,
                )
            headers = [
                ("Content-Type", answer.content_type),
                *answer.headers,
                ("Content-Length", str(len(answer.body))),
            ]
            present = {name for name, _ in headers}
            headers += [h for h in self._middleware_headers(secure, environ) if h[0] not in present]
            start_response(f"{answer.status} {responses[answer.status]}", headers)
            return [answer.body]
        finally:
            finished()

    def _post(
        self, path: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes] | None:
        api = self.api
        origin = self._origin(environ)
        length = environ.get("CONTENT_LENGTH") or ""
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if origin is None or not length.isdigit() or (limit is not None and int(length) > limit):
            return None
        site, secure = origin
        tracking_base = site + "t/"  # as request.build_absolute_uri("/t/") writes it
        started, finished = self._signals(environ)
        started()
        try:
            if api.platform_key_id(environ.get("HTTP_AUTHORIZATION", "")) is None:
                return None
            body = environ["wsgi.input"].read(int(length))
            environ["wsgi.input"] = io.BytesIO(body)  # for Django, if it answers after all
            data = api.plain_json(body)
            try:
                if path == DECISIONS_PATH:
                    parsed = api.parse_decision_request(data)
                    if parsed is None:
                        return None
                    status, payload = api.decision_answer(parsed, tracking_base)
                    headers = [("Content-Type", "application/json")]
                else:
                    try:
                        events = api.parse_event_batch(data)
                    except ValidationError:
                        return None
                    status = 200
                    payload = api.events_answer(events, environ.get("HTTP_USER_AGENT", ""))
                    # As DRF's Response for the view carries it.
                    headers = [("Content-Type", "application/json"), ("Allow", "POST, OPTIONS")]
                content = api.json_bytes(payload)
            except APIException:
                # An answer DRF words (a 503 while the database is out of reach): the view
                # gives it, in the envelope with its headers.
                environ["wsgi.input"].seek(0)
                return None
            except Exception as error:
                environ["wsgi.input"].seek(0)
                return self._django_response(
                    response_for_exception(WSGIRequest(environ), error),
                    secure,
                    environ,
                    start_response,
                )
            headers.append(("Content-Length", str(len(content))))
            start_response(
                f"{status} {responses[status]}", headers + self._middleware_headers(secure, environ)
            )
            return [content]
        finally:
            finished()

    def _connections(self) -> list:
        """This thread's database connections (Django keeps one wrapper per alias and
        thread)."""
        found = getattr(self._thread, "connections", None)
        if found is None:
            found = self._thread.connections = [connections[alias] for alias in connections]
        return found

    def _started(self) -> None:
        """request_started's receivers: reset_queries, close_old_connections."""
        for connection in self._connections():
            connection.queries_log.clear()
            _close_if_unusable_or_obsolete(connection)

    def _finished(self) -> None:
        """request_finished's receivers: close_old_connections, close_caches (when a
        configured cache closes anything: memcached does, Redis and local memory do not) and
        reset_urlconf (set_urlconf(None): this path never sets one, so there is nothing to
        reset)."""
        for connection in self._connections():
            _close_if_unusable_or_obsolete(connection)
        if self._caches_close is None:
            self._caches_close = any(
                import_string(cache["BACKEND"]).close is not BaseCache.close
                for cache in settings.CACHES.values()
            )
        if self._caches_close:
            close_caches()

    def _origin(self, environ: dict[str, Any]) -> tuple[str, bool] | None:
        """(The site's root, `http://host/`, whether the request is secure) as Django works them out
        from these headers (allowed hosts, the proxy's scheme header); None for a request
        Django must answer itself (a refused host, a redirect to HTTPS, a refused agent)."""
        proxy_header = settings.SECURE_PROXY_SSL_HEADER
        key = tuple(map(environ.get, ORIGIN_KEYS)) + (
            (environ.get(proxy_header[0]),) if proxy_header else ()
        )
        if key in self._origins:
            return self._origins[key]
        request = WSGIRequest({**environ, "wsgi.input": io.BytesIO(b"")})
        try:
            origin: tuple[str, bool] | None = (
                request.build_absolute_uri("/"),
                request.is_secure(),
            )
        except DisallowedHost:
            origin = None
        if origin is not None and (
            (settings.SECURE_SSL_REDIRECT and not origin[1])
            or settings.DISALLOWED_USER_AGENTS
            or settings.PREPEND_WWW
        ):
            origin = None
        if len(self._origins) >= 256:  # forged Host headers must not grow it without end
            self._origins.clear()
        self._origins[key] = origin
        return origin

    def _middleware_headers(self, secure: bool, environ: dict[str, Any]) -> list[tuple[str, str]]:
        """The headers API_MIDDLEWARE adds to an answer (X-Frame-Options, nosniff, ...), taken
        once from the middleware themselves (on a request of an allowed host, as `environ` is)."""
        if secure not in self._headers:
            chain: Callable[[HttpRequest], HttpResponse] = lambda request: HttpResponse()  # noqa: E731
            for name in reversed(API_MIDDLEWARE):
                chain = import_string(name)(chain)
            probe = WSGIRequest({**environ, "wsgi.input": io.BytesIO(b"")})
            response = chain(probe)
            self._headers[secure] = [
                (name, value)
                for name, value in response.items()
                if name not in ("Content-Type", "Content-Length")
            ]
        return self._headers[secure]

    def _django_response(
        self,
        response: HttpResponse,
        secure: bool,
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        headers = list(response.items())
        present = {name.lower() for name, _ in headers}
        headers += [
            h for h in self._middleware_headers(secure, environ) if h[0].lower() not in present
        ]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        return [response.content]


def _close_if_unusable_or_obsolete(connection: Any) -> None:
    """`connection.close_if_unusable_or_obsolete()`, called only when it has something to do:
    its checks go through the wrapper's guard against use from an event loop (a lookup that
    raises and catches an exception) twice a request even when, as nearly always here, the
    connection is open, in autocommit, without errors and young enough, when all it does is
    ask for a health check at the next query. The same checks on the same attributes."""
    if connection.connection is None:
        return
    if (
        connection.autocommit != connection.settings_dict["AUTOCOMMIT"]
        or connection.errors_occurred
        or (connection.close_at is not None and time.monotonic() >= connection.close_at)
    ):
        connection.close_if_unusable_or_obsolete()
    else:
        connection.health_check_done = False


def _lean_signals() -> bool:
    """Whether the request signals have only Django's own receivers, whose work HotPath then
    does itself (tests disconnect close_old_connections, as Django's test client does: then
    the signals are sent)."""
    started = signals.request_started._live_receivers(None)
    finished = signals.request_finished._live_receivers(None)
    return (
        not started[1]
        and not finished[1]
        and sorted(map(id, started[0])) == sorted(map(id, [reset_queries, close_old_connections]))
        and sorted(map(id, finished[0]))
        == sorted(map(id, [close_old_connections, close_caches, reset_urlconf]))
    )


# What _origin depends on: the scheme (or the proxy's header for it) and the host. Not the
# User-Agent: with DISALLOWED_USER_AGENTS set, every request goes to Django whatever its agent,
# and the ad tags come from viewers' devices, each naming itself its own way (a key per agent
# would clear the cache every 256 of them, and build a WSGIRequest for each).
ORIGIN_KEYS = (
    "wsgi.url_scheme",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_HOST",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "SERVER_NAME",
    "SERVER_PORT",
)
