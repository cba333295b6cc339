"""config/api_wsgi.HotPath for the ad tags: GET /vast/4.2 and /vmap/1.0 are answered without
Django's request machinery, byte for byte as the views answer them through Django's API stack
(status, headers, body), over a spread of requests: pods, bad parameters, unknown, inactive and
rate-limited players, bots, kids, another title's break, odd query strings, Redis down; and
every request the lean path is not sure of is handed to Django."""

from __future__ import annotations

import io
import re
import socket
from urllib.parse import urlencode

import pytest
from django.core.exceptions import TooManyFieldsSent
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ads import api
from ads.delivery.counters import counters
from ads.models import Player
from ads.services.players import players_forget
from ads.vast import answers
from ads.vast.limits import limiter
from config.api_wsgi import APIHandler, HotPath
from config.wsgi_server import called
from tests.ads.conftest import tag
from tests.ads.test_hot_path import Counted
from tests.ads.vast_schema import VAST, valid_vast, vmap_breaks
from tests.factories import AdBreakFactory, PlayerFactory, TitleFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_exploration")]

PLAYER_AGENT = "SmartTV VASTPlayer/2.0"


@pytest.fixture
def apps():
    # As Django's test client does: a request's end must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    django = Counted()
    yield APIHandler(), HotPath(django, api, answers), django
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def get(application, path, query, *, method="GET", **extra):
    query_string = query if isinstance(query, str) else urlencode(query)
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": query_string,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "198.51.100.7",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "HTTP_USER_AGENT": PLAYER_AGENT,
    } | extra
    environ = {name: value for name, value in environ.items() if value is not None}
    status, headers, content = called(application, environ)
    return status, sorted(headers), content


def _stable(content: bytes) -> bytes:
    """A pod's decision id and tokens are new each time."""
    content = re.sub(rb"<AdServingId>\w+</AdServingId>", b"<AdServingId>-</AdServingId>", content)
    return re.sub(rb"/t/[\w-]+/", b"/t/-/", content)


def same_answer(apps, path, query, **extra):
    """Django's answer and the lean path's for the same request (the limiter and the player
    cache as fresh for each); returns (whether the lean path answered itself, the answer)."""
    django, hot, counted = apps
    limiter.reset()
    players_forget()
    expected = get(django, path, query, **extra)
    limiter.reset()
    players_forget()
    before = counted.calls
    answer = get(hot, path, query, **extra)
    assert answer[0] == expected[0]
    assert answer[1] == expected[1]
    assert _stable(answer[2]) == _stable(expected[2])
    return counted.calls == before, answer


def vast_ads(content: bytes) -> list:
    return valid_vast(content).findall(f"{VAST}Ad")


def error_reason(content: bytes) -> str:
    (error,) = valid_vast(content).findall(f"{VAST}Error")
    return re.search(r"reason=(\w+)", error.text).group(1)


def test_a_pod_is_answered_by_the_lean_path_as_django_answers_it(
    apps, world, player, pod_of_two, settings
):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "ads.example.com"]
    hot, (status, headers, content) = same_answer(apps, "/vast/4.2", tag(world))

    assert hot
    assert status == "200 OK"
    assert len(vast_ads(content)) == 2
    names = dict(headers)
    assert names["Content-Type"] == "application/xml; charset=utf-8"
    assert names["Content-Length"] == str(len(content))
    assert names["Cache-Control"] == "no-store"
    assert names["Access-Control-Allow-Origin"] == "*"
    assert names["X-Frame-Options"] == "DENY"  # API_MIDDLEWARE's, as Django adds them
    # The links point at the host the player asked.
    assert (
        b"<![CDATA[http://ads.example.com/t/"
        in same_answer(apps, "/vast/4.2", tag(world), HTTP_HOST="ads.example.com")[1][2]
    )


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"device": "toaster"}, "invalid_parameter"),
        ({"title": "abc"}, "invalid_parameter"),
        ({"viewer": None}, "invalid_parameter"),
        ({"break": None}, "invalid_parameter"),
        ({"pod_ad_slots": "11"}, "invalid_parameter"),
        ({"engagement": "nan"}, "invalid_parameter"),
        ({"region": "mars"}, "invalid_parameter"),
        ({"title": "９"}, "invalid_parameter"),  # full-width digit
        ({"player": "someone-else"}, "unknown_player"),
        ({"player": "<x>]]>--"}, "unknown_player"),
        ({"viewer": "kid-1"}, "kids_profile"),
        ({"viewer": "nobody"}, "unknown_viewer"),
        ({"break": "999999"}, "invalid_parameter"),  # no such break
        ({"title": "999999"}, "invalid_parameter"),
    ],
)
def test_refusals_are_answered_by_the_lean_path_as_django_answers_them(
    apps, world, player, pod_of_two, overrides, reason
):
    hot, (status, _, content) = same_answer(apps, "/vast/4.2", tag(world, **overrides))

    assert hot
    assert status == "200 OK"
    assert vast_ads(content) == []
    assert error_reason(content) == reason


def test_another_titles_break_and_an_offset_are_the_lean_paths_too(apps, world, player, pod_of_two):
    other = AdBreakFactory(title=TitleFactory(duration_seconds=3000), offset_seconds=60)
    _, (_, _, content) = same_answer(apps, "/vast/4.2", tag(world, **{"break": other.pk}))
    assert error_reason(content) == "invalid_parameter"
    _, (_, _, content) = same_answer(
        apps, "/vast/4.2", tag(world, **{"break": None, "offset": "600", "pod_ad_slots": "1"})
    )
    assert len(vast_ads(content)) == 1


def test_an_inactive_player_and_bots_get_no_ads_on_either_path(apps, world, player, pod_of_two):
    for agent in ("Googlebot/2.1", "curl/8.5.0", "   ", None):
        _, (_, _, content) = same_answer(apps, "/vast/4.2", tag(world), HTTP_USER_AGENT=agent)
        assert error_reason(content) == "bot"
    Player.objects.filter(pk=player.pk).update(is_active=False)
    _, (_, _, content) = same_answer(apps, "/vast/4.2", tag(world))
    assert error_reason(content) == "inactive_player"
    _, (_, _, content) = same_answer(apps, "/vmap/1.0", tag(world))
    assert vmap_breaks(content) == []


def test_a_request_naming_no_player_is_the_same_json_400(apps, world):
    for query in ("", "foo=bar", urlencode(tag(world, player=None))):
        hot, (status, headers, content) = same_answer(apps, "/vast/4.2", query)
        assert hot
        assert status == "400 Bad Request"
        assert dict(headers)["Content-Type"] == "application/json"
        assert content == (
            b'{"error": {"code": "invalid", "message": "An ad tag names its player: '
            b'player=<public id>.", "fields": {"player": ["An ad tag names its player: '
            b'player=<public id>."]}}}'
        )


def test_over_the_limit_both_paths_answer_429_with_the_same_retry_after(
    apps, world, pod_of_two, monkeypatch
):
    PlayerFactory(public_id="web-player", requests_per_minute=2)
    django, hot, counted = apps
    answers_of = {}
    # Each path in a minute of its own (the shared counters keep a minute's counts), 30 s
    # before its end.
    for name, application, now in (
        ("django", django, 1_800_000_030.0),
        ("hot", hot, 1_800_000_090.0),
    ):
        monkeypatch.setattr("time.time", lambda now=now: now)
        limiter.reset()
        answers_of[name] = [
            get(application, path, tag(world))
            for path in ("/vast/4.2", "/vmap/1.0", "/vast/4.2", "/vmap/1.0")
        ]
    assert counted.calls == 0
    for expected, answer in zip(answers_of["django"], answers_of["hot"], strict=True):
        assert answer[:2] == expected[:2]
        assert _stable(answer[2]) == _stable(expected[2])
    statuses = [answer[0] for answer in answers_of["hot"]]
    assert statuses == ["200 OK", "200 OK", "429 Too Many Requests", "429 Too Many Requests"]
    vast_429, vmap_429 = answers_of["hot"][2:]
    assert dict(vast_429[1])["Retry-After"] == dict(vmap_429[1])["Retry-After"] == "30"
    assert error_reason(vast_429[2]) == "rate_limited"
    assert b'"code": "throttled"' in vmap_429[2]


@override_settings(VAST_REQUESTS_PER_ADDRESS_PER_MINUTE=1)
def test_an_address_over_its_limit_is_refused_on_either_path(apps, world, player, pod_of_two):
    django, hot, _ = apps
    for application in (django, hot):
        limiter.reset()
        first = get(application, "/vast/4.2", tag(world))
        second = get(application, "/vast/4.2", tag(world), REMOTE_ADDR="198.51.100.7")
        other = get(application, "/vast/4.2", tag(world), REMOTE_ADDR="198.51.100.8")
        assert [first[0], second[0], other[0]] == ["200 OK", "429 Too Many Requests", "200 OK"]


def test_the_vmap_is_answered_by_the_lean_path_as_django_answers_it(
    apps, world, player, pod_of_two
):
    AdBreakFactory(title=world.title, offset_seconds=0)
    hot, (status, _, content) = same_answer(
        apps, "/vmap/1.0", tag(world, **{"break": None, "region": "us_west"})
    )
    assert hot and status == "200 OK"
    assert [b["break_id"] for b in vmap_breaks(content)] == ["preroll", "midroll-1"]
    for overrides in ({"title": "99999"}, {"device": "toaster"}, {"player": "someone-else"}):
        hot, (status, _, content) = same_answer(apps, "/vmap/1.0", tag(world, **overrides))
        assert hot and status == "400 Bad Request"
    _, (_, _, content) = same_answer(apps, "/vmap/1.0", tag(world, viewer="kid-1"))
    assert vmap_breaks(content) == []


@pytest.mark.parametrize(
    "query",
    [
        # Percent-encoding, `+` for a space, a repeated name (the last wins), a field without
        # `=`, empty fields: as Django's QueryDict reads them.
        "player=web%2Dplayer&viewer=viewer%2D1&title=1&title={title}&break={ad_break}"
        "&device=ctv&&flag&cb=1+2",
        "player=web-player&viewer=viewer+1&title={title}&break={ad_break}&device=ctv",
        "player=web-player&viewer=%FF&title={title}&break={ad_break}&device=ctv",  # not UTF-8
        "player=web-player&viewer=\xe9&title={title}&break={ad_break}&device=ctv",  # Latin-1
        "player=web-player&viewer=%C3%A9&title={title}&break={ad_break}&device=ctv",
        "player=%00&viewer=a%00&title={title}&break={ad_break}&device=ctv",
        "player=web-player&viewer=viewer-1&title={title}&offset=1e3&device=ctv",
    ],
)
def test_odd_query_strings_are_read_as_django_reads_them(apps, world, player, pod_of_two, query):
    query = query.format(title=world.title.pk, ad_break=world.ad_break.pk)
    for path in ("/vast/4.2", "/vmap/1.0"):
        hot, (status, _, content) = same_answer(apps, path, query)
        assert hot
        if path == "/vast/4.2":
            valid_vast(content)


@pytest.mark.parametrize(
    "extra",
    [
        {"HTTP_HOST": "evil.example"},  # not an allowed host: Django's 400
        {"REQUEST_METHOD": "POST"},  # require_GET's 405
        {"REQUEST_METHOD": "HEAD"},
        {"QUERY_STRING": "a=1&" * 1001},  # more fields than Django reads: its 400
    ],
)
def test_anything_else_is_handed_to_django(apps, world, player, pod_of_two, extra):
    hot, (status, _, _) = same_answer(apps, "/vast/4.2", tag(world), **extra)
    assert not hot
    assert status.startswith(("400", "405"))


def test_other_get_paths_are_djangos(apps, world, player):
    hot, (status, _, _) = same_answer(apps, "/vast/error", {"code": "303", "reason": "bot"})
    assert not hot and status.startswith("204")


@pytest.fixture
def redis_down(settings):
    """The counters in a Redis that does not answer (a port nothing listens on)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.COUNTERS_BACKEND = "redis"
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    counters.cache_clear()
    yield
    counters.cache_clear()


def test_with_redis_down_both_paths_answer_degraded_never_a_500(
    apps, world, player, pod_of_two, redis_down
):
    for _ in range(2):  # the limiter's first sync, then one that waited for it
        hot, (status, _, content) = same_answer(apps, "/vast/4.2", tag(world))
        assert hot and status == "200 OK"
        assert error_reason(content) == "degraded"
    hot, (status, _, content) = same_answer(apps, "/vmap/1.0", tag(world))
    assert hot and status == "200 OK" and len(vmap_breaks(content)) == 1


def _as_django_reads(query_string: str) -> dict[str, str]:
    """What request.GET holds for this WSGI query string, each name's last value."""
    request = WSGIRequest(
        {"REQUEST_METHOD": "GET", "QUERY_STRING": query_string, "wsgi.input": io.BytesIO()}
    )
    return {name: request.GET[name] for name in request.GET}


@pytest.mark.parametrize(
    "query_string",
    [
        "",
        "a=1&b=2&a=3",
        "a=1+2&b=%2B&c=%&d=%zz&e=%e9&f=%C3%A9",
        "&&a&=b&c=d=e&+=+",
        "\xe9=\xe9&x=\xc3\xa9",  # the WSGI string's bytes: Latin-1 é, then UTF-8 é
        "\xff\xfe=%FF",
        "a;b=1&c=2;d=3",
    ],
)
def test_the_query_is_read_as_djangos_query_dict_reads_it(query_string):
    assert answers.query_of(query_string) == _as_django_reads(query_string)


@given(st.text(alphabet=st.characters(max_codepoint=255), max_size=60))
@hypothesis_settings(max_examples=300, deadline=None)
def test_any_query_string_is_read_as_django_reads_it(query_string):
    assert answers.query_of(query_string) == _as_django_reads(query_string)


def test_too_many_fields_are_refused_as_django_refuses_them(settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    assert answers.query_of("a=1&b=2&c=3") == {"a": "1", "b": "2", "c": "3"}
    with pytest.raises(TooManyFieldsSent):
        answers.query_of("a=1&b=2&c=3&d=4")
    with pytest.raises(TooManyFieldsSent):
        _as_django_reads("a=1&b=2&c=3&d=4")


def test_players_naming_themselves_differently_share_one_origin(apps, world, player, pod_of_two):
    """The ad tags come from viewers' devices: the lean path works out a host's origin once,
    whatever the agents."""
    _, hot, counted = apps
    for number in range(20):
        status, _, _ = get(hot, "/vast/4.2", tag(world), HTTP_USER_AGENT=f"SmartTV Player/{number}")
        assert status == "200 OK"
    assert counted.calls == 0
    assert len(hot._origins) == 1


@override_settings(DISALLOWED_USER_AGENTS=[re.compile("BadAgent")])
def test_with_disallowed_agents_django_answers_every_tag(apps, world, player, pod_of_two):
    _, hot, counted = apps
    refused = get(hot, "/vast/4.2", tag(world), HTTP_USER_AGENT="BadAgent/1.0")
    allowed = get(hot, "/vast/4.2", tag(world))
    assert counted.calls == 2
    assert refused[0].startswith("403") and allowed[0] == "200 OK"


# -- found in review: what a forged id, a lost database or a proxy's header must not break ----


@pytest.mark.parametrize("which", [0, 1], ids=["django", "lean"])
def test_a_player_id_that_cannot_exist_is_unknown_without_a_query(
    apps, world, player, pod_of_two, which, django_assert_num_queries
):
    """A NUL byte (PostgreSQL's text refuses it: the lookup raised, a 500) or any id that is not
    a slug of at most 64 characters names no player: answered unknown, the database not asked."""
    for public_id in ("web\x00player", "web player", "w" * 65):
        with django_assert_num_queries(0):
            status, _, content = get(apps[which], "/vast/4.2", tag(world, player=public_id))
            assert (status, error_reason(content)) == ("200 OK", "unknown_player")
            status, _, content = get(apps[which], "/vmap/1.0", tag(world, player=public_id))
            assert status.startswith("400")
            assert b"No player has the id" in content


def test_forged_player_ids_do_not_grow_the_process_cache_without_end(world):
    from ads.services import players

    players_forget()
    for number in range(players.KNOWN_KEPT + 10):
        assert players.player_for_tag(public_id=f"forged-{number}") is None
    assert 0 < len(players._known) <= players.KNOWN_KEPT


@pytest.mark.parametrize("which", [0, 1], ids=["django", "lean"])
def test_with_the_database_out_of_reach_the_tags_answer_degraded(
    apps, world, player, pod_of_two, which, monkeypatch
):
    """A player not in this process's cache cannot be looked up: the VAST tag answers its empty
    document with reason `degraded` (200: players take other statuses for network failures),
    VMAP a 503 with Retry-After, as the JSON decision does; never a 500."""
    from django.db import OperationalError

    def unreachable(**_):
        raise OperationalError("the database is out of reach")

    players_forget()
    monkeypatch.setattr(Player.objects, "filter", unreachable)
    status, _, content = get(apps[which], "/vast/4.2", tag(world))
    assert (status, error_reason(content)) == ("200 OK", "degraded")
    status, headers, content = get(apps[which], "/vmap/1.0", tag(world))
    assert status.startswith("503")
    assert ("Retry-After", "1") in headers
    assert b'"code": "unavailable"' in content


@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_SCHEME", "https"), SECURE_SSL_REDIRECT=False)
def test_the_origin_follows_the_configured_proxy_header():
    """The lean path caches a host's origin: the key holds the header the settings name (not
    only X-Forwarded-Proto), or the first request's scheme would answer every later one."""
    hot = HotPath(lambda environ, start_response: [], api, answers)
    plain = {
        "wsgi.url_scheme": "http",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/vast/4.2",
        "HTTP_HOST": "localhost",
        "wsgi.input": io.BytesIO(b""),
    }
    behind_tls = plain | {"HTTP_X_SCHEME": "https"}
    django = WSGIRequest(dict(behind_tls))
    assert (django.build_absolute_uri("/"), django.is_secure()) == ("https://localhost/", True)
    assert hot._origin(dict(plain)) == ("http://localhost/", False)
    assert hot._origin(behind_tls) == ("https://localhost/", True)


@pytest.mark.parametrize("overrides", [{"player": "---"}, {"title": "1---"}, {"player": "a-"}])
def test_an_error_comment_stays_well_formed(apps, world, player, pod_of_two, overrides):
    """The reason in words goes in an XML comment, which may hold no `--`: "---" became "- --"."""
    status, _, content = get(apps[1], "/vast/4.2", tag(world, **overrides))
    assert status == "200 OK"
    assert error_reason(content) in {"unknown_player", "invalid_parameter"}
