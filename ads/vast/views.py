"""The ad tags' views: the answers are ads/vast/answers.py's (shared with the api process's
lean path, config/api_wsgi.HotPath); a view reads the request's query string, site, agent and
address, and makes the answer an HttpResponse."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ads.vast import params
from ads.vast.answers import (
    ERROR_PATH,
    VAST_PATH,
    VMAP_PATH,
    Answer,
    query_of,
    vast_answer,
    vmap_answer,
)

__all__ = [
    "ERROR_PATH",
    "VAST_PATH",
    "VMAP_PATH",
    "vast_error",
    "vast_tag",
    "vast_try",
    "vmap_schedule",
]

logger = logging.getLogger(__name__)


def _response(answer: Answer) -> HttpResponse:
    response = HttpResponse(answer.body, content_type=answer.content_type, status=answer.status)
    for name, value in answer.headers:
        response[name] = value
    return response


def _caller(request: HttpRequest) -> dict[str, str]:
    meta = request.META
    return {
        "site": request.build_absolute_uri("/"),
        "user_agent": meta.get("HTTP_USER_AGENT", ""),
        "address": meta.get("REMOTE_ADDR") or "unknown",
    }


@require_GET
def vast_tag(request: HttpRequest) -> HttpResponse:
    """GET /vast/4.2: the pod for one ad break, as VAST 4.2 (answers.vast_answer)."""
    return _response(
        vast_answer(query_of(request.META.get("QUERY_STRING", "")), **_caller(request))
    )


@require_GET
def vmap_schedule(request: HttpRequest) -> HttpResponse:
    """GET /vmap/1.0: a title's ad breaks for one viewer, each with its VAST tag
    (answers.vmap_answer)."""
    return _response(
        vmap_answer(query_of(request.META.get("QUERY_STRING", "")), **_caller(request))
    )


@require_GET
def vast_error(request: HttpRequest) -> HttpResponse:
    """Where players report a VAST error (the `<Error>` URLs): logged, answered 204."""
    logger.info(
        "VAST error %s (%s) from player %r",
        request.GET.get("code", "")[:8],
        request.GET.get("reason", "")[:40],
        request.GET.get("player", "")[:64],
    )
    return HttpResponse(status=204)


@require_GET
def vast_try(request: HttpRequest) -> HttpResponse:
    """An integrator's page: the Dailymotion VAST client, untouched, plays a title's breaks
    from this server's VMAP and VAST tags and fires every tracker (templates/ads/vast_try.html)."""
    return render(
        request,
        "ads/vast_try.html",
        {"parameters": params.PARAMETERS, "devices": sorted(params.DEVICES)},
    )
