"""The ad load policy (AD_LOAD_POLICY): off by default, a fixed shorter pod, and the
engagement policy that shortens the pod (or skips the break) only for a session whose live
engagement score says it is at risk, through the engine, the JSON decision and the VAST tag."""

import pytest
from django.test import Client

from ads import services
from ads.decisioning import ad_load
from tests.ads.conftest import line_item_with_creative
from tests.factories import PlayerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_exploration")]


@pytest.fixture
def three_ads(world):
    """Three advertisers in three categories, 30 s each: the 90 s break holds all three."""
    for advertiser, category in (
        (world.acme, "beverages"),
        (world.globex, "travel"),
        (world.initech, "technology"),
    ):
        line_item_with_creative(advertiser, category=category, duration=30)


def pod_seconds(decision) -> int:
    return sum(slot.creative.duration_seconds for slot in decision.pod)


def test_the_policy_is_off_by_default_whatever_the_score(settings, world, three_ads):
    assert settings.AD_LOAD_POLICY == "none"
    for score in (None, 0.0, 0.05, 0.9):
        decision = world.decide(engagement_score=score)
        assert (decision.max_duration_seconds, pod_seconds(decision)) == (90, 90)


def test_shorter_cuts_every_pod_to_its_share(settings, world, three_ads):
    settings.AD_LOAD_POLICY = "shorter"
    settings.AD_LOAD_SHORTER_SHARE = 0.5
    for score in (None, 0.05, 0.9):
        decision = world.decide(engagement_score=score)
        assert decision.max_duration_seconds == 45
        assert pod_seconds(decision) == 30  # one 30 s ad fits in 45 s


def test_engagement_shortens_only_sessions_at_risk_and_skips_below_the_floor(
    settings, world, three_ads
):
    settings.AD_LOAD_POLICY = "engagement"
    settings.AD_LOAD_AT_RISK_BELOW = 0.4
    settings.AD_LOAD_AT_RISK_SHARE = 0.5
    settings.AD_LOAD_SKIP_BELOW = 0.1
    engaged = world.decide(engagement_score=0.8)
    unknown = world.decide(engagement_score=None)  # no score: full load
    at_the_threshold = world.decide(engagement_score=0.4)
    at_risk = world.decide(engagement_score=0.39)
    leaving = world.decide(engagement_score=0.05)
    assert [pod_seconds(d) for d in (engaged, unknown, at_the_threshold)] == [90, 90, 90]
    assert (at_risk.max_duration_seconds, pod_seconds(at_risk)) == (45, 30)
    assert (leaving.pod, leaving.reason, leaving.max_duration_seconds) == (
        [],
        "ad_load_policy",
        0,
    )
    # The player's own bound still applies under the policy's.
    bounded = world.decide(engagement_score=0.8, max_duration_seconds=60)
    assert pod_seconds(bounded) == 60


def test_the_pod_never_goes_below_the_shortest_creative(settings):
    settings.AD_LOAD_POLICY = "engagement"
    settings.AD_LOAD_AT_RISK_BELOW = 0.5
    settings.AD_LOAD_AT_RISK_SHARE = 0.1
    assert ad_load.pod_seconds(max_seconds=90, engagement_score=0.2) == 15


def test_the_json_decision_and_the_vast_tag_carry_the_score(settings, client, world, three_ads):
    settings.AD_LOAD_POLICY = "engagement"
    settings.AD_LOAD_AT_RISK_BELOW = 0.4
    _, raw_key = services.platform_key_create(name="Player")
    body = {
        "viewer_id": world.viewer.external_id,
        "title_id": world.title.pk,
        "ad_break_id": world.ad_break.pk,
        "device": "ctv",
    }
    for score, seconds in ((0.9, 90), (0.2, 45), (1, 90)):
        response = client.post(
            "/api/v1/decisions",
            body | {"engagement_score": score},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {raw_key}",
        )
        assert response.status_code == 200
        assert response.json()["max_duration_seconds"] == seconds

    PlayerFactory(public_id="web-player")
    player = Client(HTTP_USER_AGENT="Mozilla/5.0 (test player)")
    tag = {
        "player": "web-player",
        "viewer": world.viewer.external_id,
        "title": world.title.pk,
        "break": world.ad_break.pk,
        "device": "ctv",
    }
    engaged = player.get("/vast/4.2", tag | {"engagement": "0.9"}).content.count(b"<Ad ")
    at_risk = player.get("/vast/4.2", tag | {"engagement": "0.2"}).content.count(b"<Ad ")
    assert (engaged, at_risk) == (3, 1)
