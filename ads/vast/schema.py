"""The ad tags in the API's OpenAPI schema (/api/docs/): they are plain Django views (an XML
answer on the hot path, no DRF), so a drf-spectacular postprocessing hook adds their paths,
from the same parameter list the views read."""

from __future__ import annotations

from typing import Any

from ads.vast import params

REQUIRED = {"player", "viewer", "title", "device"}
INTEGERS = {"title", "break", "offset", "pod_max_dur", "pod_ad_slots"}
VMAP_PARAMETERS = ("player", "viewer", "title", "device", "region", "cb")
EXAMPLE_VAST = (
    '<?xml version="1.0" encoding="UTF-8"?><VAST xmlns="http://www.iab.com/VAST" version="4.2">'
    '<Ad id="12" sequence="1"><InLine><AdSystem version="1.0">Interlude</AdSystem>'
    "<Error><![CDATA[https://ads.example.com/vast/error?code=[ERRORCODE]&reason=playback]]>"
    '</Error><Impression id="interlude"><![CDATA[https://ads.example.com/t/TOKEN/impression]]>'
    "</Impression><AdServingId>5f0c2b9e8a2d4c1f9b7e6d5c4b3a2910</AdServingId>"
    "<AdTitle>Summer 30s</AdTitle><Advertiser>Fizzy Cola</Advertiser>…</InLine></Ad></VAST>"
)
EXAMPLE_VMAP = (
    '<?xml version="1.0" encoding="UTF-8"?><vmap:VMAP '
    'xmlns:vmap="http://www.iab.net/videosuite/vmap" version="1.0">'
    '<vmap:AdBreak timeOffset="start" breakType="linear" breakId="preroll">'
    '<vmap:AdSource id="break-31" allowMultipleAds="true" followRedirects="true">'
    '<vmap:AdTagURI templateType="vast4"><![CDATA[https://ads.example.com/vast/4.2?'
    "player=interlude-web&viewer=ml%3A2&title=1&break=31&device=ctv&cb=[CACHEBUSTING]]]>"
    "</vmap:AdTagURI></vmap:AdSource></vmap:AdBreak>…</vmap:VMAP>"
)


def _schema(name: str) -> dict[str, Any]:
    """What the views accept: ids are positive, offsets and pod limits are not negative, and a
    required text parameter is not empty."""
    if name in INTEGERS:
        return {"type": "integer", "minimum": 1 if name in {"title", "break"} else 0}
    return {"type": "string", "minLength": 1} if name in REQUIRED else {"type": "string"}


def _parameter(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": name in REQUIRED,
        "description": params.PARAMETERS[name],
        "schema": _schema(name),
    }


def _xml(description: str, example: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/xml": {"schema": {"type": "string"}, "example": example}},
    }


def _json_error(description: str) -> dict[str, Any]:
    """The API's one error envelope (config.api.error_body)."""
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "example": {
                    "error": {
                        "code": "invalid",
                        "message": "An ad tag names its player: player=<public id>.",
                        "fields": {"player": ["An ad tag names its player: player=<public id>."]},
                    }
                },
            }
        },
    }


def ad_tag_paths(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOKS entry: adds GET /vast/4.2 and GET /vmap/1.0."""
    no_key: list[dict] = []  # fetched by viewers' devices: no key, the player id names them
    result["paths"]["/vast/4.2"] = {
        "get": {
            "operationId": "vast_tag",
            "summary": "The pod for an ad break, as IAB VAST 4.2",
            "description": (
                "One `<Ad sequence>` per ad, its trackers the signed tracking links. Where no "
                "ad may play (no fill, kids profile, bad parameter, unknown or inactive "
                "player, bot) a VAST with no `<Ad>` and an `<Error>` URL (the player reports "
                "303 there), the reason in it. Give `break` or `offset`."
            ),
            "tags": ["ad tags"],
            "security": no_key,
            "parameters": [_parameter(name) for name in params.PARAMETERS],
            "responses": {
                "200": _xml("A VAST 4.2 document (a pod, or no ad and an Error).", EXAMPLE_VAST),
                "400": _json_error("No `player`: not an ad request."),
                "429": _xml("Over the player's or the address's limit (Retry-After).", ""),
            },
        }
    }
    result["paths"]["/vmap/1.0"] = {
        "get": {
            "operationId": "vmap_schedule",
            "summary": "A title's ad breaks for a viewer, as IAB VMAP 1.0",
            "description": (
                "One linear `<vmap:AdBreak>` per break of the title (`start` for the "
                "pre-roll), each with an `AdTagURI`: the VAST tag with the break filled in. "
                "No breaks for a kids profile, an unknown viewer, an inactive player or a bot."
            ),
            "tags": ["ad tags"],
            "security": no_key,
            "parameters": [_parameter(name) for name in VMAP_PARAMETERS],
            "responses": {
                "200": _xml("A VMAP 1.0 document.", EXAMPLE_VMAP),
                "400": _json_error("A bad parameter, an unknown title or player id."),
                "429": _json_error("Over the player's or the address's limit (Retry-After)."),
            },
        }
    }
    return result
