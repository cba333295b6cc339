"""The line item form's reach preview: the selector's figures from the catalog and recent
traffic, and its htmx endpoint (bad input named, tenancy, roles)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from ads.models import Advertiser
from ads.selectors import reach
from tests.factories import (
    AdBreakFactory,
    AdEventFactory,
    GenreFactory,
    TitleFactory,
    ViewerFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2031, 5, 10, 21, 0, tzinfo=UTC)


@pytest.fixture
def catalog(tenancy):
    """Two titles (a drama with two breaks, a comedy with one), three adult viewers and a kid,
    and impressions over the last two days: three decisions on the drama (one of them in the
    morning), one on the comedy."""
    Advertiser.objects.filter(pk=tenancy.advertiser.pk).update(timezone="UTC")
    tenancy.advertiser.refresh_from_db()
    drama, comedy = GenreFactory(name="Drama"), GenreFactory(name="Comedy")
    heist = TitleFactory(name="The Heist", maturity_rating="R")
    heist.genres.set([drama])
    picnic = TitleFactory(name="Picnic", maturity_rating="PG")
    picnic.genres.set([comedy])
    AdBreakFactory(title=heist, offset_seconds=0)
    heist_break = AdBreakFactory(title=heist, offset_seconds=900)
    picnic_break = AdBreakFactory(title=picnic, offset_seconds=0)
    west = ViewerFactory(region="us_west", age_band="25_34", device="ctv")
    south = ViewerFactory(region="us_south", age_band="35_44", device="mobile")
    ViewerFactory(region="us_west", age_band="45_54", device="web")
    ViewerFactory(region="us_west", age_band="under_18", is_kids=True)
    creative = tenancy.creative
    events = [
        (heist, heist_break, west, "us_west", NOW - timedelta(hours=1)),  # 20:00 prime time
        (heist, heist_break, south, "us_south", NOW - timedelta(hours=2)),
        (heist, heist_break, west, "us_west", NOW - timedelta(hours=13)),  # 08:00 morning
        (picnic, picnic_break, south, "us_south", NOW - timedelta(hours=30)),
    ]
    for title, ad_break, viewer, region, at in events:
        AdEventFactory(
            creative=creative,
            title=title,
            ad_break=ad_break,
            viewer=viewer,
            region=region,
            device=viewer.device,
            occurred_at=at,
        )
    # A second ad of the first pod: one break, not two.
    first = tenancy.creative.events.order_by("occurred_at").last()
    AdEventFactory(
        creative=creative,
        title=heist,
        ad_break=heist_break,
        viewer=west,
        region="us_west",
        decision_id=first.decision_id,
        pod_position=2,
        occurred_at=first.occurred_at,
    )
    # Not an impression, and too old: neither counts.
    AdEventFactory(creative=creative, title=heist, viewer=west, event_type="click", occurred_at=NOW)
    AdEventFactory(creative=creative, title=heist, viewer=west, occurred_at=NOW - timedelta(days=8))
    return {"drama": drama, "heist": heist, "picnic": picnic, "tenancy": tenancy}


def estimate(catalog, **rules):
    return reach.line_item_reach(
        advertiser=catalog["tenancy"].advertiser, targeting=reach.Targeting(**rules), at=NOW
    )


def test_everyone_reaches_the_whole_catalog_and_every_recent_break(
    catalog, django_assert_num_queries
):
    with django_assert_num_queries(4):
        result = estimate(catalog)
    # The tenancy fixture's own titles have no breaks; the catalog fixture's two do.
    assert (result.ad_breaks, result.ad_breaks_total) == (3, 3)
    assert result.titles == result.titles_total
    assert (result.viewers, result.viewers_total) == (3, 3)  # the kid never sees ads
    # The oldest impression in the window is 30 h old: two 24-hour periods.
    assert result.days == 2
    assert result.breaks_per_day == 2.0  # 4 decisions / 2
    assert result.all_breaks_per_day == 2.0
    assert result.recent_viewers == 2


def test_targeting_narrows_catalog_and_traffic(catalog):
    result = estimate(catalog, genre_ids=[catalog["drama"].pk], dayparts=["primetime"])
    assert (result.titles, result.ad_breaks) == (1, 2)
    assert result.breaks_per_day == 1.0  # 2 prime-time drama decisions / 2 days
    assert result.all_breaks_per_day == 2.0
    result = estimate(catalog, regions=["us_west"], age_bands=["25_34"])
    assert (result.viewers, result.recent_viewers) == (1, 1)
    assert result.breaks_per_day == 1.0  # the west viewer's two heist decisions
    result = estimate(catalog, exclude_title_ids=[catalog["heist"].pk], maturity_ratings=["PG"])
    assert (result.titles, result.ad_breaks, result.breaks_per_day) == (1, 1, 0.5)


def test_dayparts_are_read_in_the_accounts_time_zone(catalog):
    Advertiser.objects.filter(pk=catalog["tenancy"].advertiser.pk).update(
        timezone="America/Los_Angeles"
    )
    catalog["tenancy"].advertiser.refresh_from_db()
    # 20:00 and 19:00 UTC are 13:00 and 12:00 in Los Angeles (daytime), 08:00 UTC is 01:00.
    assert estimate(catalog, dayparts=["primetime"]).breaks_per_day == 0.0
    assert estimate(catalog, dayparts=["daytime"]).breaks_per_day == 1.0


def test_budget_against_traffic():
    result = reach.Reach(
        **dict.fromkeys(("titles", "titles_total", "ad_breaks", "ad_breaks_total", "viewers"), 1),
        viewers_total=1,
        days=1,
        breaks_per_day=500.0,
        all_breaks_per_day=900.0,
        recent_viewers=1,
        impressions_per_day=float(Decimal("2") / Decimal("10") * 1000),
    )
    assert result.impressions_per_day == 200.0
    assert result.budget_limited


# The endpoint


def preview_url(slug="acme"):
    return reverse("line_item_reach", args=[slug])


@pytest.mark.parametrize("role", ["owner", "manager", "analyst"])
def test_members_get_the_preview_fragment(client, catalog, role):
    tenancy = catalog["tenancy"]
    client.force_login(getattr(tenancy, role))
    response = client.get(
        preview_url(),
        {
            "target_genres": catalog["drama"].pk,
            "target_regions": "us_west",
            "pricing": "cpm",
            "bid": "10",
            "daily_budget": "5",
            "campaign": tenancy.campaign.pk,
        },
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # a fragment
    reached = response.context["reach"]
    assert (reached.titles, reached.ad_breaks) == (1, 2)
    assert reached.viewers == 2  # two adult west profiles
    assert reached.impressions_per_day == 500.0
    assert "Ad breaks a day" in html and "500 impressions" in html


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"target_regions": "mars"}, "Regions"),
        ({"target_genres": "drama"}, "Genres"),
        ({"include_titles": "999999"}, "Only these titles"),
        ({"bid": "-1"}, "Bid"),
        ({"daily_budget": "lots"}, "Daily budget"),
        ({"target_dayparts": "brunch", "pricing": "cpa"}, "Dayparts"),
    ],
)
def test_bad_input_answers_a_fragment_naming_it(client, tenancy, params, named):
    client.force_login(tenancy.owner)
    response = client.get(preview_url(), params)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Cannot estimate reach" in html
    assert f"{named}:" in html


def test_outsider_gets_404_for_the_preview(client, tenancy):
    client.force_login(tenancy.outsider)
    assert client.get(preview_url()).status_code == 404
    # Its own account answers; the other account's campaign id under it does not.
    assert client.get(preview_url("globex")).status_code == 200
    response = client.get(preview_url("globex"), {"campaign": tenancy.campaign.pk})
    assert response.status_code == 404
    assert client.get(preview_url("globex"), {"campaign": "x"}).status_code == 404


def test_rival_campaign_under_this_account_is_404(client, tenancy):
    client.force_login(tenancy.owner)
    response = client.get(preview_url(), {"campaign": tenancy.rival_campaign.pk})
    assert response.status_code == 404
    assert client.get(preview_url(), {"campaign": tenancy.campaign.pk}).status_code == 200


def test_anonymous_is_sent_to_log_in(client, tenancy):
    assert client.get(preview_url()).status_code == 302


def test_preview_counts_the_campaigns_remaining_days(client, tenancy):
    """Counted from the account's today (New York), not the server's: from 00:00 to 05:00 UTC
    the UTC date is a day ahead of it."""

    def account_today():
        return timezone.localdate(timezone=tenancy.advertiser.tzinfo)

    campaign = tenancy.campaign
    campaign.end_date = account_today() + timedelta(days=9)
    campaign.save()
    client.force_login(tenancy.owner)
    before = account_today()
    response = client.get(preview_url(), {"campaign": campaign.pk})
    # Today and the nine days after; one fewer if the account's day turned during the request.
    assert response.context["remaining_days"] in {10, 10 - (account_today() - before).days}
    assert "Rest of the campaign" in response.content.decode()
