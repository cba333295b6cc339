"""The ad tags' rate limits: counted in memory, shared through the counters every
SYNC_SECONDS, so two processes enforce one total and a new minute starts afresh."""

import pytest
from django.test import override_settings

from ads.services.players import PlayerState
from ads.vast.limits import SYNC_SECONDS, TagLimiter

pytestmark = pytest.mark.django_db

MINUTE_START = 1_800_000_000.0  # a whole minute (divisible by 60)


def player(limit: int) -> PlayerState:
    return PlayerState(public_id="web", is_active=True, requests_per_minute=limit)


def test_one_process_counts_to_the_limit_then_refuses_until_the_minute_ends():
    limiter = TagLimiter()
    answers = [limiter.seconds_over(player(3), "198.51.100.1", MINUTE_START + i) for i in range(4)]

    assert answers == [None, None, None, 57]
    assert limiter.seconds_over(player(3), "198.51.100.1", MINUTE_START + 60) is None


def test_two_processes_share_the_players_total_after_a_sync():
    first, second = TagLimiter(), TagLimiter()
    web = player(5)
    for tick in range(4):  # each call syncs: SYNC_SECONDS apart
        assert first.seconds_over(web, f"198.51.100.{tick}", MINUTE_START + tick) is None
    # The second process reads the shared total (4) at its first sync and counts its own.
    assert second.seconds_over(web, "203.0.113.1", MINUTE_START + 10) is None
    assert second.seconds_over(web, "203.0.113.1", MINUTE_START + 10 + SYNC_SECONDS) == 50


@override_settings(VAST_REQUESTS_PER_ADDRESS_PER_MINUTE=2)
def test_an_address_is_limited_across_players_and_processes():
    first, second = TagLimiter(), TagLimiter()
    other = PlayerState(public_id="ctv", is_active=True, requests_per_minute=100)

    assert first.seconds_over(player(100), "198.51.100.7", MINUTE_START) is None
    assert second.seconds_over(other, "198.51.100.7", MINUTE_START + 1) is None
    # The first process has not read the second's count yet: the overshoot the design allows
    # (what other processes counted since the last sync), then this sync reads the total, 3.
    assert first.seconds_over(other, "198.51.100.7", MINUTE_START + 2) is None
    assert first.seconds_over(other, "198.51.100.7", MINUTE_START + 3) == 57
    assert second.seconds_over(player(100), "198.51.100.7", MINUTE_START + 4) == 56
    assert first.seconds_over(other, "198.51.100.8", MINUTE_START + 6) is None
