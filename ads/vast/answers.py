"""The ad tags' answers, from what a request carries: its query string, the site it reached
(`http://host/`), the caller's User-Agent and address. The views (ads/vast/views.py) and the
api process's lean path (config/api_wsgi.HotPath) both answer through these functions, so a
tag is answered the same, byte for byte, whichever path it takes; and neither builds Django's
QueryDict or request headers for it (together a tenth of a tag's CPU).

Answers, so that a player always has something it understands:
- a request naming no player is not an ad request: 400 with the API's JSON error;
- a VAST tag with a bad parameter, an unknown or inactive player, a kids profile, a bot or no
  fill: a VAST with no `<Ad>` and an `<Error>` URL (the player reports 303 there), the reason
  in the URL and, in words, in a comment; always 200, since many players treat any other
  status as a network failure;
- over a rate limit: 429 with Retry-After (and, for VAST, the same empty document);
- VMAP has no error document: a bad parameter or unknown player is a 400 (JSON), and where
  no ads may play (kids profile, inactive player, bot) the schedule has no breaks;
- with the database out of reach (after the retries on a lost connection) while the tag's
  player is not in this process's cache: a VAST with no `<Ad>`, reason `degraded`, 200 as
  above; for VMAP, 503 with Retry-After (the API's JSON error), as the JSON decision answers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import quote, unquote, urlencode

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.core.serializers.json import DjangoJSONEncoder

from ads.decisioning.engine import DecisionRequestError, decide
from ads.decisioning.index import current_index
from ads.delivery import latency
from ads.delivery.tokens import TOKEN_TTL
from ads.services.events import is_bot
from ads.services.players import player_for_tag
from ads.vast import params
from ads.vast import render as documents
from ads.vast.limits import limiter
from config.api import error_body
from config.db import LOST, retried_on_lost_connection

logger = logging.getLogger(__name__)

VAST_PATH = "/vast/4.2"
VMAP_PATH = "/vmap/1.0"
ERROR_PATH = "/vast/error"
XML = "application/xml; charset=utf-8"
JSON = "application/json"
EXPIRES_SECONDS = int(TOKEN_TTL.total_seconds())  # the tracking links' lifetime
# Fetched by players on any site, with no credentials; a pod is one viewer's, never cached.
XML_HEADERS = (("Access-Control-Allow-Origin", "*"), ("Cache-Control", "no-store"))
JSON_HEADERS = (("Access-Control-Allow-Origin", "*"),)
# The engine's field names → the tag's parameters.
TAG_FIELDS = {"title_id": "title", "ad_break_id": "break", "offset_seconds": "offset"}


# A player's answer when the database cannot say whether the player exists.
UNREACHABLE = object()
DATABASE_MESSAGE = "The platform cannot reach its database for a moment; retry shortly."


class Answer(NamedTuple):
    """An ad tag's answer: status, Content-Type, body and the other headers it sets."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...]


def query_of(query_string: str) -> dict[str, str]:
    """The query string's parameters, each name's last value: what Django's request.GET (a
    QueryDict over the WSGI string) answers to `.get(name)`, without building it. As Django:
    the string's bytes read as UTF-8, or as Latin-1 when they are not UTF-8; `+` is a space;
    a field without `=` has an empty value; more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS
    raise TooManyFieldsSent (Django answers it 400)."""
    if not query_string:
        return {}
    if not query_string.isascii():
        raw = query_string.encode("iso-8859-1")  # PEP 3333: the WSGI string holds the bytes
        try:
            query_string = raw.decode("utf-8")
        except UnicodeDecodeError:
            query_string = raw.decode("iso-8859-1")
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    if limit is not None and query_string.count("&") + 1 > limit:
        raise TooManyFieldsSent(
            "The number of GET/POST parameters exceeded settings.DATA_UPLOAD_MAX_NUMBER_FIELDS."
        )
    values = {}
    for field in query_string.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in field or "+" in field:  # as urllib.parse.parse_qsl decodes them
            name = unquote(name.replace("+", " "))
            value = unquote(value.replace("+", " "))
        values[name] = value
    return values


def _xml(document: str, status: int = 200, retry_after: int | None = None) -> Answer:
    headers = (
        XML_HEADERS if retry_after is None else (*XML_HEADERS, ("Retry-After", str(retry_after)))
    )
    return Answer(status, XML, document.encode(), headers)


def _json_error(
    code: str, field: str, message: str, status: int = 400, retry_after: int | None = None
) -> Answer:
    # As JsonResponse writes it (the views answered with one).
    body = json.dumps(error_body(code, message, {field: [message]}), cls=DjangoJSONEncoder)
    headers = (
        JSON_HEADERS if retry_after is None else (*JSON_HEADERS, ("Retry-After", str(retry_after)))
    )
    return Answer(status, JSON, body.encode(), headers)


def _error_url(site: str, *, player: str, reason: str, field: str = "") -> str:
    query = f"?code=[ERRORCODE]&reason={reason}&player={quote(player[:64], safe='')}"
    if field:
        query += f"&field={field}"
    return site + ERROR_PATH[1:] + query


def _no_ads(
    site: str,
    *,
    player: str,
    reason: str,
    message: str,
    field: str = "",
    status: int = 200,
    retry_after: int | None = None,
) -> Answer:
    error_url = _error_url(site, player=player, reason=reason, field=field)
    return _xml(documents.vast_empty(error_url=error_url, message=message), status, retry_after)


def _player(public_id: str):
    """The tag's player (None when unknown), or UNREACHABLE when the database stays out of
    reach after the retries on a lost connection."""
    try:
        return retried_on_lost_connection(lambda: player_for_tag(public_id=public_id))
    except LOST:
        logger.warning("Ad tag answered without its player: database out of reach.", exc_info=True)
        return UNREACHABLE


def _is_bot(user_agent: str) -> bool:
    """As the tracking links judge: a tag is fetched by a viewer's player or browser, which
    always names itself, so a missing or blank User-Agent is a script's too (its trackers
    would not count: serving it would spend caps and budget on nothing)."""
    return not user_agent.strip() or is_bot(user_agent)


def vast_answer(query: Mapping[str, str], *, site: str, user_agent: str, address: str) -> Answer:
    """GET /vast/4.2: the pod for one ad break, as VAST 4.2 (parameters: `params.PARAMETERS`).
    `site` is the request's scheme and host with a slash (`https://ads.example.com/`),
    `address` the server's peer (X-Forwarded-For is not trusted: any client can write it;
    behind a load balancer, have it pass the client's address as the peer, e.g. with the
    PROXY protocol)."""
    player_id = query.get("player", "")
    try:
        tag, decision_request = params.decision_request_of(query)
    except params.NotAnAdRequest as error:
        return _json_error("invalid", "player", str(error))
    except params.TagError as error:
        return _no_ads(
            site,
            player=player_id,
            reason="invalid_parameter",
            field=error.field,
            message=error.message,
        )
    player = _player(tag.player)
    if player is UNREACHABLE:
        return _no_ads(site, player=player_id, reason="degraded", message=DATABASE_MESSAGE)
    if player is None:
        return _no_ads(
            site,
            player=player_id,
            reason="unknown_player",
            field="player",
            message=f"No player has the id {tag.player[:64]!r}.",
        )
    if not player.is_active:
        return _no_ads(
            site, player=player_id, reason="inactive_player", message="This player is off."
        )
    if _is_bot(user_agent):
        return _no_ads(site, player=player_id, reason="bot", message="No ads for automated agents.")
    retry_after = limiter.seconds_over(player, address)
    if retry_after is not None:
        return _no_ads(
            site,
            player=player_id,
            reason="rate_limited",
            message="Too many ad requests; try again later.",
            status=429,
            retry_after=retry_after,
        )
    started = time.perf_counter()
    try:
        decision = decide(decision_request)
    except DecisionRequestError as error:
        return _no_ads(
            site,
            player=player_id,
            reason="invalid_parameter",
            field=TAG_FIELDS.get(error.field, error.field),
            message=error.message,
        )
    latency.recorder.record((time.perf_counter() - started) * 1000)
    if not decision.pod:
        reason = decision.reason or "no_eligible_ads"
        return _no_ads(site, player=player_id, reason=reason, message=reason.replace("_", " "))
    return _xml(
        documents.vast_pod(
            decision,
            advertiser_names=current_index().advertiser_name,
            links=site + "t/",
            error_url=_error_url(site, player=player_id, reason="playback"),
            expires_seconds=EXPIRES_SECONDS,
        )
    )


def vmap_answer(query: Mapping[str, str], *, site: str, user_agent: str, address: str) -> Answer:
    """GET /vmap/1.0: a title's ad breaks for one viewer, each with its VAST tag (`site`,
    `user_agent`, `address` as for vast_answer)."""
    try:
        tag = params.tag_of(query)
    except params.NotAnAdRequest as error:
        return _json_error("invalid", "player", str(error))
    except params.TagError as error:
        return _json_error("invalid", error.field, error.message)
    player = _player(tag.player)
    if player is UNREACHABLE:
        return _json_error("unavailable", "player", DATABASE_MESSAGE, status=503, retry_after=1)
    if player is None:
        return _json_error("invalid", "player", f"No player has the id {tag.player[:64]!r}.")
    retry_after = limiter.seconds_over(player, address)
    if retry_after is not None:
        return _json_error(
            "throttled",
            "player",
            "Too many ad requests; try again later.",
            status=429,
            retry_after=retry_after,
        )
    index = current_index()
    title = index.titles.get(tag.title)
    if title is None:
        return _json_error("invalid", "title", f"No title with id {tag.title}.")
    viewer = index.viewers.get(tag.viewer)
    if not player.is_active or viewer is None or viewer.is_kids or _is_bot(user_agent):
        return _xml(documents.vmap([]))
    base = site + VAST_PATH[1:] + "?"
    common = {"player": tag.player, "viewer": tag.viewer, "title": title.id}
    breaks = []
    mid_rolls = 0
    for ad_break in index.breaks_by_title.get(title.id, ()):
        offset = ad_break.offset_seconds
        mid_rolls += 0 < offset < title.duration_seconds
        tag_query = common | {"break": ad_break.id, "device": tag.device}
        if tag.region:
            tag_query["region"] = tag.region
        breaks.append(
            (
                documents.vmap_time_offset(offset, title.duration_seconds),
                documents.break_id(offset, title.duration_seconds, mid_rolls),
                ad_break.id,
                # [CACHEBUSTING]: the VAST macro players replace with a random number.
                base + urlencode(tag_query) + "&cb=[CACHEBUSTING]",
            )
        )
    return _xml(documents.vmap(breaks))


# What each path answers with (the lean path's routing).
ANSWERS = {VAST_PATH: vast_answer, VMAP_PATH: vmap_answer}
