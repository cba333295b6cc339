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

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

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
