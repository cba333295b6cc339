"""The VAST 4.2 ad tag and the VMAP 1.0 schedule: every VAST answer validated against IAB Tech
Lab's schema (tests/ads/vast_schema.py), the pod as the engine chose it, its trackers counting
once through the signed links, and what outsiders get: forged or replayed trackers, unknown or
inactive player ids, bad parameters, bots and floods (never a 500)."""

from __future__ import annotations

import gc
import io
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client, override_settings

from ads.models import AdEvent, Creative, Player
from ads.services.players import players_forget
from config.api_wsgi import APIHandler, routed
from tests.ads.conftest import rebuild, tag
from tests.ads.vast_schema import VAST, valid_vast, vmap_breaks, with_macros_replaced
from tests.factories import AdBreakFactory, PlayerFactory

pytestmark = pytest.mark.django_db

PLAYER_AGENT = "SmartTV VASTPlayer/2.0"
TRACKED = {
    "start": "impression?vast=start",
    "firstQuartile": "first_quartile",
    "midpoint": "midpoint",
    "thirdQuartile": "third_quartile",
    "complete": "complete",
}


@pytest.fixture
def client():
    """A player's requests: it names itself (a blank User-Agent is a script's, a bot's)."""
    return Client(HTTP_USER_AGENT=PLAYER_AGENT)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def ads_of(root) -> list:
    return root.findall(f"{VAST}Ad")


def error_query(root) -> dict[str, list[str]]:
    """The query of the document's one `<Error>` URL (its [ERRORCODE] replaced by 303)."""
    (error,) = root.findall(f"{VAST}Error")
    query = parse_qs(urlsplit(error.text).query)
    assert query["code"] == ["303"]
    return query


def test_the_pod_is_vast_4_2_with_one_sequenced_inline_ad_per_creative(
    client, world, player, pod_of_two
):
    acme, globex = pod_of_two
    response = client.get("/vast/4.2", tag(world))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/xml; charset=utf-8"
    assert response["Cache-Control"] == "no-store"
    assert response["Access-Control-Allow-Origin"] == "*"
    root = valid_vast(response.content)
    ads = ads_of(root)
    assert [ad.get("sequence") for ad in ads] == ["1", "2"]
    serving_ids = {ad.findtext(f"{VAST}InLine/{VAST}AdServingId") for ad in ads}
    assert len(serving_ids) == 1 and len(serving_ids.pop()) == 32  # the decision's id
    creatives = {acme.creatives.get().pk: acme, globex.creatives.get().pk: globex}
    assert {int(ad.get("id")) for ad in ads} == set(creatives)
    for ad in ads:
        inline = ad.find(f"{VAST}InLine")
        creative = creatives[int(ad.get("id"))].creatives.get()
        assert inline.findtext(f"{VAST}AdSystem") == "Interlude"
        assert inline.findtext(f"{VAST}AdTitle") == creative.name
        assert inline.findtext(f"{VAST}Advertiser") == creative.advertiser.name
        assert inline.findtext(f"{VAST}Category") == creative.category
        linear = inline.find(f"{VAST}Creatives/{VAST}Creative/{VAST}Linear")
        seconds = creative.duration_seconds
        assert linear.findtext(f"{VAST}Duration") == f"00:00:{seconds:02d}.000"
        media = linear.find(f"{VAST}MediaFiles/{VAST}MediaFile")
        assert (media.text, media.get("type"), media.get("delivery")) == (
            creative.media_url,
            "video/mp4",
            "progressive",
        )
        universal = inline.find(f"{VAST}Creatives/{VAST}Creative/{VAST}UniversalAdId")
        assert universal.text == str(creative.pk)
        assert linear.findtext(f"{VAST}VideoClicks/{VAST}ClickThrough") == creative.click_url
        impression = inline.findtext(f"{VAST}Impression")
        token = urlsplit(impression).path.split("/")[2]
        assert impression == f"http://testserver/t/{token}/impression"
        events = {
            tracking.get("event"): tracking.text
            for tracking in linear.findall(f"{VAST}TrackingEvents/{VAST}Tracking")
        }
        assert events == {
            vast: f"http://testserver/t/{token}/{event}" for vast, event in TRACKED.items()
        }
        click = linear.findtext(f"{VAST}VideoClicks/{VAST}ClickTracking")
        assert click == f"http://testserver/t/{token}/click?redirect=0"


def test_every_tracker_counts_once_and_a_replay_counts_nothing(client, world, player, pod_of_two):
    root = valid_vast(client.get("/vast/4.2", tag(world)).content)
    calls = []
    for ad in ads_of(root):
        inline = ad.find(f"{VAST}InLine")
        linear = inline.find(f"{VAST}Creatives/{VAST}Creative/{VAST}Linear")
        calls.append(inline.findtext(f"{VAST}Impression"))
        calls += [t.text for t in linear.findall(f"{VAST}TrackingEvents/{VAST}Tracking")]
        calls.append(linear.findtext(f"{VAST}VideoClicks/{VAST}ClickTracking"))
    first = [client.get(path_of(url)).status_code for url in calls]
    # Per ad: Impression 204, start (the impression's link again) 400 replayed, then 204s.
    assert first == [204, 400, 204, 204, 204, 204, 204] * 2
    counted = list(AdEvent.objects.values_list("creative_id", "event_type"))
    assert len(counted) == 12 and len(set(counted)) == 12
    assert {event for _, event in counted} == set(AdEvent.Type.values)

    second = [client.get(path_of(url)).status_code for url in calls]
    assert second == [400] * 14
    assert AdEvent.objects.count() == 12


def test_a_forged_or_altered_tracker_counts_nothing(client, world, player, pod_of_two):
    root = valid_vast(client.get("/vast/4.2", tag(world)).content)
    impression = path_of(ads_of(root)[0].findtext(f"{VAST}InLine/{VAST}Impression"))
    token = impression.split("/")[2]
    middle = len(token) // 2
    altered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    forged = f"/t/{altered}/impression"

    response = client.get(forged)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "forged"
    assert AdEvent.objects.count() == 0


def test_a_click_tracker_is_a_pixel_and_the_plain_link_still_redirects(
    client, world, player, pod_of_two
):
    root = valid_vast(client.get("/vast/4.2", tag(world)).content)
    inline = ads_of(root)[0].find(f"{VAST}InLine")
    client.get(path_of(inline.findtext(f"{VAST}Impression")))
    linear = inline.find(f"{VAST}Creatives/{VAST}Creative/{VAST}Linear")
    pixel = path_of(linear.findtext(f"{VAST}VideoClicks/{VAST}ClickTracking"))

    assert client.get(pixel).status_code == 204
    plain = client.get(pixel.removesuffix("?redirect=0"))
    assert plain.status_code == 302
    assert plain["Location"] == linear.findtext(f"{VAST}VideoClicks/{VAST}ClickThrough")
    assert AdEvent.objects.filter(event_type="click").count() == 1


def test_the_break_can_be_named_by_its_offset_and_the_pod_bounded(
    client, world, player, pod_of_two
):
    by_offset = tag(world, **{"break": None, "offset": world.ad_break.offset_seconds})
    assert len(ads_of(valid_vast(client.get("/vast/4.2", by_offset).content))) == 2
    one_ad = tag(world, pod_ad_slots=1)
    assert len(ads_of(valid_vast(client.get("/vast/4.2", one_ad).content))) == 1
    fifteen_seconds = ads_of(
        valid_vast(client.get("/vast/4.2", tag(world, pod_max_dur=15)).content)
    )
    assert [ad.findtext(f".//{VAST}Duration") for ad in fifteen_seconds] == ["00:00:15.000"]


def test_no_fill_is_a_vast_without_ads_and_the_error_url_for_303(client, world, player):
    root = valid_vast(client.get("/vast/4.2", tag(world)).content)

    assert ads_of(root) == []
    query = error_query(root)
    assert query["reason"] == ["no_eligible_ads"]
    assert query["player"] == ["web-player"]
    reported = client.get(path_of(root.findtext(f"{VAST}Error")))
    assert reported.status_code == 204


def test_a_kids_profile_gets_no_ads(client, world, player, pod_of_two):
    root = valid_vast(client.get("/vast/4.2", tag(world, viewer=world.kid.external_id)).content)

    assert ads_of(root) == []
    assert error_query(root)["reason"] == ["kids_profile"]


def test_an_unknown_viewer_gets_no_ads(client, world, player, pod_of_two):
    root = valid_vast(client.get("/vast/4.2", tag(world, viewer="nobody")).content)

    assert ads_of(root) == []
    assert error_query(root)["reason"] == ["unknown_viewer"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"viewer": None}, "viewer"),
        ({"viewer": "x" * 65}, "viewer"),
        ({"title": None}, "title"),
        ({"title": "seven"}, "title"),
        ({"title": "0"}, "title"),
        ({"title": "99999"}, "title"),  # no such title
        ({"break": None}, "break"),
        ({"break": "-3"}, "break"),
        ({"break": "99999"}, "break"),  # not a break of this title
        ({"break": None, "offset": "601"}, "offset"),
        ({"device": None}, "device"),
        ({"device": "toaster"}, "device"),
        ({"region": "mars"}, "region"),
        ({"pod_max_dur": "5"}, "pod_max_dur"),
        ({"pod_ad_slots": "11"}, "pod_ad_slots"),
        ({"title": "１２"}, "title"),  # full-width digits
        ({"engagement": "high"}, "engagement"),
        ({"engagement": "1.5"}, "engagement"),
        ({"engagement": "nan"}, "engagement"),
    ],
)
def test_a_bad_parameter_is_a_vast_error_naming_it(
    client, world, player, pod_of_two, overrides, field
):
    response = client.get("/vast/4.2", tag(world, **overrides))

    assert response.status_code == 200
    root = valid_vast(response.content)
    assert ads_of(root) == []
    query = error_query(root)
    assert query["reason"] == ["invalid_parameter"]
    assert query["field"] == [field]
    assert b"<!-- " in response.content  # the reason in words, for whoever reads the tag
    assert AdEvent.objects.count() == 0


def test_a_request_naming_no_player_is_not_an_ad_request(client, world):
    for query in ({}, {"foo": "bar"}, tag(world, player=None)):
        response = client.get("/vast/4.2", query)
        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {
            "player": ["An ad tag names its player: player=<public id>."]
        }
    assert client.get("/vmap/1.0").status_code == 400
    assert client.post("/vast/4.2", tag(world)).status_code == 405


def test_an_unknown_player_id_gets_an_error_and_no_decision(client, world, pod_of_two):
    root = valid_vast(client.get("/vast/4.2", tag(world, player="someone-else")).content)

    assert ads_of(root) == []
    assert error_query(root)["reason"] == ["unknown_player"]
    response = client.get("/vmap/1.0", tag(world, player="someone-else"))
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["player"]


def test_an_inactive_player_id_gets_no_ads(client, world, player, pod_of_two):
    assert len(ads_of(valid_vast(client.get("/vast/4.2", tag(world)).content))) == 2
    Player.objects.filter(pk=player.pk).update(is_active=False)
    players_forget()  # as the admin's save does

    root = valid_vast(client.get("/vast/4.2", tag(world)).content)
    assert ads_of(root) == []
    assert error_query(root)["reason"] == ["inactive_player"]
    assert vmap_breaks(client.get("/vmap/1.0", tag(world)).content) == []


@pytest.mark.parametrize("agent", ["Googlebot/2.1", "curl/8.5.0", "", "   "])
def test_a_bot_or_a_nameless_client_gets_no_ads(client, world, player, pod_of_two, agent):
    response = client.get("/vast/4.2", tag(world), HTTP_USER_AGENT=agent)

    root = valid_vast(response.content)
    assert ads_of(root) == []
    assert error_query(root)["reason"] == ["bot"]


def test_a_player_over_its_limit_gets_429_and_no_ads(client, world, pod_of_two):
    PlayerFactory(public_id="web-player", requests_per_minute=2)

    answers = [client.get("/vast/4.2", tag(world)) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert 1 <= int(answers[2]["Retry-After"]) <= 60
    root = valid_vast(answers[2].content)
    assert ads_of(root) == []
    assert error_query(root)["reason"] == ["rate_limited"]
    # Another player from the same address is within its own limit.
    PlayerFactory(public_id="ctv-player")
    assert client.get("/vast/4.2", tag(world, player="ctv-player")).status_code == 200


@override_settings(VAST_REQUESTS_PER_ADDRESS_PER_MINUTE=3)
def test_an_address_over_its_limit_gets_429_whatever_the_player(client, world, player):
    PlayerFactory(public_id="ctv-player")
    statuses = [
        client.get("/vast/4.2", tag(world), REMOTE_ADDR="203.0.113.9").status_code,
        client.get("/vmap/1.0", tag(world), REMOTE_ADDR="203.0.113.9").status_code,
        client.get("/vast/4.2", tag(world, player="ctv-player"), REMOTE_ADDR="203.0.113.9"),
        client.get("/vmap/1.0", tag(world), REMOTE_ADDR="203.0.113.9"),
    ]
    assert statuses[:2] == [200, 200]
    assert statuses[2].status_code == 200
    assert statuses[3].status_code == 429
    assert "Retry-After" in statuses[3]
    assert client.get("/vast/4.2", tag(world), REMOTE_ADDR="203.0.113.10").status_code == 200


def test_a_warm_tag_makes_no_database_query(
    client, world, player, pod_of_two, django_assert_max_num_queries
):
    client.get("/vast/4.2", tag(world))  # the index and the player id are read once
    with django_assert_max_num_queries(0):
        assert len(ads_of(valid_vast(client.get("/vast/4.2", tag(world)).content))) == 2


@pytest.mark.parametrize(
    "query",
    [
        {"player": "web-player", "title": "\x00"},
        {"player": "\u202e" * 500, "viewer": "v"},
        {"player": "web-player", "viewer": " viewer-1", "title": "1", "device": "ctv"},
        {"player": "web-player", "title": "9" * 40, "break": "1", "device": "ctv", "viewer": "a"},
        {"player": "web-player", "offset": "1e3", "title": "1", "device": "ctv", "viewer": "a"},
        {"player": "<x>]]>--", "viewer": "a", "title": "1", "break": "1", "device": "ctv"},
    ],
)
def test_odd_requests_never_fail_the_server(client, world, player, query):
    response = client.get("/vast/4.2", query)
    assert response.status_code == 200
    valid_vast(response.content)
    assert client.get("/vmap/1.0", query).status_code in (200, 400)  # VMAP ignores `offset`


def test_the_vmap_lists_pre_mid_and_their_vast_tags(client, world, player, pod_of_two):
    pre_roll = AdBreakFactory(title=world.title, offset_seconds=0)
    late = AdBreakFactory(title=world.title, offset_seconds=3725)

    response = client.get("/vmap/1.0", tag(world, **{"break": None, "region": "us_west"}))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/xml; charset=utf-8"
    breaks = vmap_breaks(response.content)
    assert [(b["time_offset"], b["break_id"], b["source_id"]) for b in breaks] == [
        ("start", "preroll", f"break-{pre_roll.pk}"),
        ("00:10:00.000", "midroll-1", f"break-{world.ad_break.pk}"),
        ("01:02:05.000", "midroll-2", f"break-{late.pk}"),
    ]
    for vmap_break, ad_break in zip(breaks, (pre_roll, world.ad_break, late), strict=True):
        url = vmap_break["ad_tag"]
        assert url.endswith("&cb=[CACHEBUSTING]")
        assert parse_qs(urlsplit(url).query) == {
            "player": ["web-player"],
            "viewer": [world.viewer.external_id],
            "title": [str(world.title.pk)],
            "break": [str(ad_break.pk)],
            "device": ["ctv"],
            "region": ["us_west"],
            "cb": ["[CACHEBUSTING]"],
        }
        pod = client.get(path_of(with_macros_replaced(url)))
        assert len(ads_of(valid_vast(pod.content))) == 2


def test_the_vmap_of_a_kids_profile_or_a_bot_has_no_breaks(client, world, player):
    kids = client.get("/vmap/1.0", tag(world, viewer=world.kid.external_id))
    assert kids.status_code == 200 and vmap_breaks(kids.content) == []
    bot = client.get("/vmap/1.0", tag(world), HTTP_USER_AGENT="python-requests/2.32")
    assert vmap_breaks(bot.content) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"title": "99999"}, "title"),
        ({"device": "toaster"}, "device"),
        ({"viewer": None}, "viewer"),
    ],
)
def test_a_bad_vmap_parameter_is_a_400_naming_it(client, world, player, overrides, field):
    response = client.get("/vmap/1.0", tag(world, **overrides))

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


def test_the_try_it_page_loads_the_vendored_client(client):
    response = client.get("/vast/try/?player=interlude-web")

    assert response.status_code == 200
    assert b"js/vast_player.js" in response.content
    assert b'value="interlude-web"' in response.content


def test_admin_shows_a_players_tags(admin_client, world, player):
    response = admin_client.get(f"/admin/ads/player/{player.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    vmap = f"/vmap/1.0?player=web-player&amp;viewer={world.viewer.external_id}"
    assert vmap in page
    assert f"&amp;title={world.title.pk}&amp;break={world.ad_break.pk}&amp;device=ctv" in page


def test_the_api_schema_documents_the_ad_tags(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)

    vast = schema["paths"]["/vast/4.2"]["get"]
    assert {p["name"] for p in vast["parameters"] if p["required"]} == {
        "player",
        "viewer",
        "title",
        "device",
    }
    assert {p["name"] for p in vast["parameters"]} >= {"break", "offset", "pod_max_dur", "cb"}
    assert set(vast["responses"]) == {"200", "400", "429"}
    assert "application/xml" in vast["responses"]["200"]["content"]
    assert schema["paths"]["/vmap/1.0"]["get"]["security"] == []
    assert "/api/v1/decisions" in schema["paths"]  # the hook adds, it does not replace


def _wsgi_get(application, path: str, query: dict) -> tuple[str, bytes]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": urlencode(query),
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "HTTP_USER_AGENT": PLAYER_AGENT,
    }
    started = []
    # As Django's test client does: a request's end must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        chunks = application(environ, lambda status, headers, exc_info=None: started.append(status))
        try:
            return started[0], b"".join(chunks)
        finally:
            chunks.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_the_api_process_serves_the_ad_tags_through_its_lean_stack(world, player, pod_of_two):
    """config/api_wsgi.py: the tags are as hot as decisions, so they skip the session, auth,
    messages and htmx middleware and leave no cyclic garbage."""
    application = routed(WSGIHandler(), APIHandler())
    status, body = _wsgi_get(application, "/vast/4.2", tag(world))
    assert status.startswith("200")
    assert len(ads_of(valid_vast(body))) == 2
    status, body = _wsgi_get(application, "/vmap/1.0", tag(world))
    assert status.startswith("200") and len(vmap_breaks(body)) == 1
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            _wsgi_get(application, "/vast/4.2", tag(world))
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_a_creative_changed_since_its_last_pod_is_rendered_as_it_is_now(
    client, world, player, pod_of_two
):
    """The creatives' static parts are written once (ads/vast/render.py), keyed by their index
    entry: an edit makes a new entry, so the next pod shows it."""
    acme, _ = pod_of_two
    creative = acme.creatives.get()
    before = valid_vast(client.get("/vast/4.2", tag(world)).content)
    titles = {ad.findtext(f"{VAST}InLine/{VAST}AdTitle") for ad in ads_of(before)}
    assert creative.name in titles
    Creative.objects.filter(pk=creative.pk).update(
        name="Fizzy & Co <summer>", click_url="https://example.com/new?a=1&b=2"
    )
    rebuild()

    after = valid_vast(client.get("/vast/4.2", tag(world)).content)
    (ad,) = [ad for ad in ads_of(after) if ad.get("id") == str(creative.pk)]
    assert ad.findtext(f"{VAST}InLine/{VAST}AdTitle") == "Fizzy & Co <summer>"
    click = f"{VAST}InLine/{VAST}Creatives/{VAST}Creative/{VAST}Linear/{VAST}VideoClicks"
    assert ad.findtext(f"{click}/{VAST}ClickThrough") == "https://example.com/new?a=1&b=2"
