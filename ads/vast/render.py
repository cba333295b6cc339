"""VAST 4.2 and VMAP 1.0 documents, written as strings: the pod is a handful of elements, and
building a tree to serialize it would cost more than the decision's own Python.

Element order is the one IAB Tech Lab's `vast_4.2.xsd` requires (it differs from the order the
spec's prose lists: in `<InLine>` the shared elements AdSystem, Error, Impression come first,
and in `<Creative>` `UniversalAdId` comes after `<Linear>`). URLs are CDATA, so a query
string's `&` needs no escaping, and text is escaped as XML character data.

Macros: `Error` URLs carry `[ERRORCODE]` as the spec writes it, the form every player replaces
(the Dailymotion client also knows `%%ERRORCODE%%`, none knows a percent-encoded bracket). The
schema's anyURI type refuses a bracket, so the tests validate a document as a player uses it,
with its macros replaced (tests/ads/vast_schema.py)."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

from ads.decisioning.engine import Decision, Slot
from ads.decisioning.index import CreativeEntry

VAST_NAMESPACE = "http://www.iab.com/VAST"
VMAP_NAMESPACE = "http://www.iab.net/videosuite/vmap"
AD_SYSTEM = '<AdSystem version="1.0">Interlude</AdSystem>'
CATEGORY_AUTHORITY = "urn:interlude:creative-category"  # the platform's own list
UNIVERSAL_AD_ID_REGISTRY = "interlude"
# VAST tracking event → the platform's event of the signed link (with its query). `start` is
# the impression's link too: a player that fires both counts once (the event is idempotent),
# one that fires only `start` (some stitchers) still counts its impression. Its own query
# keeps the URL distinct, or a browser firing both at once makes one request of the two
# images. pause, resume and skip are not counted, so they are not asked for.
TRACKED_EVENTS = (
    ("start", "impression?vast=start"),
    ("firstQuartile", "first_quartile"),
    ("midpoint", "midpoint"),
    ("thirdQuartile", "third_quartile"),
    ("complete", "complete"),
)
# The creative records no frame size: the platform's creatives are 1080p.
MEDIA_WIDTH, MEDIA_HEIGHT = 1920, 1080
STREAMING_TYPES = {".m3u8": "application/x-mpegURL", ".mpd": "application/dash+xml"}
PROGRESSIVE_TYPES = {".webm": "video/webm", ".mov": "video/quicktime", ".ogv": "video/ogg"}
# XML 1.0 allows no control characters but tab, newline and return.
_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))


def _text(value: str) -> str:
    return escape(value.translate(_CONTROL))


def _url(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _timecode(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.000"


def _media_file(url: str) -> str:
    path = url.split("?", 1)[0].lower()
    extension = path[path.rfind(".") :] if "." in path.rsplit("/", 1)[-1] else ""
    if extension in STREAMING_TYPES:
        delivery, media_type = "streaming", STREAMING_TYPES[extension]
    else:
        delivery, media_type = "progressive", PROGRESSIVE_TYPES.get(extension, "video/mp4")
    return (
        f'<MediaFile delivery="{delivery}" type="{media_type}" width="{MEDIA_WIDTH}" '
        f'height="{MEDIA_HEIGHT}">{_url(url)}</MediaFile>'
    )


# The <Tracking> elements around the slot's link (`https://host/t/<token>/`): they are
# `link.join(TRACKING_PARTS) + link` and the first of `_parts_of`'s middle part.
TRACKING_PARTS = (
    f'<Tracking event="{TRACKED_EVENTS[0][0]}"><![CDATA[',
    *(
        f'{event}]]></Tracking><Tracking event="{vast_event}"><![CDATA['
        for (_, event), (vast_event, _) in zip(TRACKED_EVENTS, TRACKED_EVENTS[1:], strict=False)
    ),
)
CREATIVE_PARTS_KEPT = 4096  # creatives' static parts remembered (a live index holds ~3,000)
# (creative, advertiser's name, expiry) → the ad's parts that depend on nothing else.
_creative_parts: dict[tuple[CreativeEntry, str, int], tuple[str, str, str]] = {}


def _parts_of(creative: CreativeEntry, advertiser: str, expires: int) -> tuple[str, str, str]:
    """The ad's text that depends only on its creative (name, category, media, click-through),
    its advertiser's name and the links' lifetime, in three pieces around what each slot
    adds (its position, its links): written once per creative rather than at every pod. A
    creative changed in admin is a new index entry, so a new key."""
    key = (creative, advertiser, expires)
    parts = _creative_parts.get(key)
    if parts is None:
        if len(_creative_parts) >= CREATIVE_PARTS_KEPT:
            _creative_parts.clear()
        parts = _creative_parts[key] = (
            f"<AdTitle>{_text(creative.name)}</AdTitle>"
            f"<Advertiser>{_text(advertiser)}</Advertiser>"
            f'<Category authority="{CATEGORY_AUTHORITY}">{creative.category}</Category>'
            f'<Creatives><Creative id="{creative.id}" adId="{creative.id}" sequence="',
            # After the links of the tracking events.
            f"{TRACKED_EVENTS[-1][1]}]]></Tracking></TrackingEvents>"
            f"<Duration>{_timecode(creative.duration_seconds)}</Duration>"
            f"<MediaFiles>{_media_file(creative.media_url)}</MediaFiles>"
            # ClickTracking is a pixel: the link counts the click and answers 204 instead of
            # redirecting to the landing page, which the player opens from ClickThrough.
            '<VideoClicks><ClickTracking id="interlude"><![CDATA[',
            # After the click's link.
            'click?redirect=0]]></ClickTracking><ClickThrough id="interlude">'
            f"{_url(creative.click_url)}</ClickThrough></VideoClicks></Linear>"
            f'<UniversalAdId idRegistry="{UNIVERSAL_AD_ID_REGISTRY}">{creative.id}</UniversalAdId>'
            f"</Creative></Creatives>"
            f"<Expires>{expires}</Expires>"
            f"</InLine></Ad>",
        )
    return parts


def _ad(
    slot: Slot, decision_id: str, advertiser: str, links: str, error_cdata: str, expires: int
) -> str:
    creative = slot.creative
    link = f"{links}{slot.token}/"
    if "]]>" in link:  # cannot happen (a token is base64url, a host is validated): as _url
        link = link.replace("]]>", "]]]]><![CDATA[>")
    head, middle, tail = _parts_of(creative, advertiser, expires)
    return (
        f'<Ad id="{creative.id}" sequence="{slot.position}"><InLine>{AD_SYSTEM}'
        f"<Error>{error_cdata}</Error>"
        f'<Impression id="interlude"><![CDATA[{link}impression]]></Impression>'
        f"<AdServingId>{decision_id}</AdServingId>"
        f'{head}{slot.position}"><Linear><TrackingEvents>'
        f"{link.join(TRACKING_PARTS)}{link}{middle}{link}{tail}"
    )


def vast_pod(
    decision: Decision,
    *,
    advertiser_names: dict[int, str],
    links: str,
    error_url: str,
    expires_seconds: int,
) -> str:
    """The pod as VAST 4.2: one `<Ad sequence>` per slot. `links` is the tracking links' base
    (`https://host/t/`); `error_url` is where players report a failed ad (with [ERRORCODE])."""
    error_cdata = _url(error_url)
    ads = "".join(
        _ad(
            slot,
            decision.decision_id,
            advertiser_names.get(slot.line_item.advertiser_id, ""),
            links,
            error_cdata,
            expires_seconds,
        )
        for slot in decision.pod
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<VAST xmlns="{VAST_NAMESPACE}" version="4.2">{ads}</VAST>'
    )


def vast_empty(*, error_url: str, message: str = "") -> str:
    """A VAST with no ad: the `<Error>` a player calls (with 303, "no ads", as the spec asks),
    and the reason in words in a comment, for whoever reads the tag."""
    comment = ""
    if message:
        safe = re.sub("-(?=-)", "- ", message.translate(_CONTROL)).rstrip("-")
        comment = f"<!-- {safe} -->"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<VAST xmlns="{VAST_NAMESPACE}" version="4.2">{comment}'
        f"<Error>{_url(error_url)}</Error></VAST>"
    )


def vmap_time_offset(offset_seconds: int, title_duration_seconds: int) -> str:
    if offset_seconds == 0:
        return "start"
    if offset_seconds >= title_duration_seconds:
        return "end"
    return _timecode(offset_seconds)


def break_id(offset_seconds: int, title_duration_seconds: int, mid_roll_number: int) -> str:
    if offset_seconds == 0:
        return "preroll"
    if offset_seconds >= title_duration_seconds:
        return "postroll"
    return f"midroll-{mid_roll_number}"


def vmap(breaks: list[tuple[str, str, int, str]]) -> str:
    """VMAP 1.0: for each (timeOffset, breakId, ad break id, VAST tag URL) a linear
    `<vmap:AdBreak>` whose `<vmap:AdTagURI>` is that break's VAST tag."""
    ad_breaks = "".join(
        f'<vmap:AdBreak timeOffset="{offset}" breakType="linear" breakId={quoteattr(name)}>'
        f'<vmap:AdSource id="break-{ad_break_id}" allowMultipleAds="true" followRedirects="true">'
        f'<vmap:AdTagURI templateType="vast4">{_url(tag_url)}</vmap:AdTagURI>'
        "</vmap:AdSource></vmap:AdBreak>"
        for offset, name, ad_break_id, tag_url in breaks
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<vmap:VMAP xmlns:vmap="{VMAP_NAMESPACE}" version="1.0">{ad_breaks}</vmap:VMAP>'
    )
