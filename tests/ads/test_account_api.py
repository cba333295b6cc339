"""The account API's resources: campaigns, line items and creatives of the key's account,
listed, read, created, changed, paused, resumed and archived through the services the web
forms use; Idempotency-Key on creates, ETag / If-Match on changes; the delivery diagnosis."""

import datetime as dt
import zoneinfo

import pytest
from django.test import Client
from django.utils import timezone

from ads import services
from ads.models import Campaign, Creative, LineItem
from tests.factories import (
    AdvertiserFactory,
    CampaignFactory,
    GenreFactory,
    LineItemFactory,
    TitleFactory,
)

pytestmark = pytest.mark.django_db


def api_client(tenancy, scope="write", advertiser=None):
    _, raw_key = services.account_key_create(
        advertiser=advertiser or tenancy.advertiser,
        created_by=tenancy.owner if advertiser is None else tenancy.outsider,
        name=f"Integration ({scope})",
        scope=scope,
    )
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw_key}"
    return client


@pytest.fixture
def writer(tenancy):
    return api_client(tenancy, "write")


@pytest.fixture
def reader(tenancy):
    return api_client(tenancy, "read")


@pytest.fixture
def outsider(tenancy):
    """A read-and-write key of the rival account, whose owner is the outsider."""
    tenancy.rival.memberships.filter(user=tenancy.outsider).update(role="owner")
    return api_client(tenancy, "write", advertiser=tenancy.rival)


def post(client, url, body=None, **headers):
    return client.post(url, body or {}, content_type="application/json", headers=headers)


def patch(client, url, body, **headers):
    return client.patch(url, body, content_type="application/json", headers=headers)


def account_today():
    """The tenancy account's date (its advertiser is in New York): a campaign's dates are the
    account's, so from 19:00 to midnight in New York (00:00–05:00 UTC) the server's date is a
    day ahead and a line item starting in two hours would start before a campaign dated by it."""
    return timezone.localdate(timezone=zoneinfo.ZoneInfo(AdvertiserFactory.timezone))


def campaign_body(**overrides):
    today = account_today()
    return {
        "name": "Winter Warmers",
        "objective": "awareness",
        "start_date": today.isoformat(),
        "end_date": (today + dt.timedelta(days=30)).isoformat(),
    } | overrides


def line_item_body(campaign_id, **overrides):
    return {
        "campaign": campaign_id,
        "name": "Evenings on TV",
        "start_at": (timezone.now() + dt.timedelta(hours=2)).isoformat(),
        "bid": "12.50",
        "daily_budget": "200.00",
        "lifetime_budget": "5000.00",
        "target_devices": ["ctv"],
    } | overrides


def creative_body(line_item_id, **overrides):
    return {
        "line_item": line_item_id,
        "name": "Cocoa 30s",
        "duration_seconds": 30,
        "media_url": "https://cdn.example.com/cocoa-30.mp4",
        "click_url": "https://example.com/cocoa",
        "category": "beverages",
    } | overrides


def every_route(tenancy):
    """(method, url, body) of every account API route, for the tenancy's own objects."""
    ids = {
        "campaigns": tenancy.campaign.pk,
        "line_items": tenancy.line_item.pk,
        "creatives": tenancy.creative.pk,
    }
    routes = []
    for plural, pk in ids.items():
        base = f"/api/v1/{plural}"
        routes += [
            ("get", base, None),
            ("post", base, {}),
            ("get", f"{base}/{pk}", None),
            ("patch", f"{base}/{pk}", {"name": "Mine now"}),
            *[("post", f"{base}/{pk}/{action}", {}) for action in ("pause", "resume", "archive")],
        ]
    routes.append(("get", f"/api/v1/line_items/{tenancy.line_item.pk}/delivery", None))
    return routes


def call(client, method, url, body):
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, body, content_type="application/json")


def test_an_integration_creates_a_campaign_a_line_item_and_a_creative(writer, tenancy):
    genre, title = GenreFactory(), TitleFactory()
    created = post(writer, "/api/v1/campaigns", campaign_body())
    assert created.status_code == 201, created.json()
    campaign = Campaign.objects.get(pk=created.json()["id"])
    assert (campaign.advertiser, campaign.name, campaign.status) == (
        tenancy.advertiser,
        "Winter Warmers",
        "active",
    )
    assert created["Location"].endswith(f"/api/v1/campaigns/{campaign.pk}")
    assert created["ETag"] == writer.get(f"/api/v1/campaigns/{campaign.pk}")["ETag"]

    body = line_item_body(
        campaign.pk, target_genres=[genre.pk], include_titles=[title.pk], pricing="cpc"
    )
    created = post(writer, "/api/v1/line_items", body)
    assert created.status_code == 201, created.json()
    line_item = LineItem.objects.get(pk=created.json()["id"])
    assert (line_item.advertiser, line_item.campaign, line_item.pricing) == (
        tenancy.advertiser,
        campaign,
        "cpc",
    )
    assert line_item.target_devices == ["ctv"]
    assert list(line_item.target_genres.all()) == [genre]
    assert list(line_item.include_titles.all()) == [title]
    shown = created.json()
    assert (shown["bid"], shown["target_genres"], shown["include_titles"]) == (
        "12.5000",
        [genre.pk],
        [title.pk],
    )

    created = post(writer, "/api/v1/creatives", creative_body(line_item.pk))
    assert created.status_code == 201, created.json()
    creative = Creative.objects.get(pk=created.json()["id"])
    assert (creative.advertiser, creative.line_item, creative.duration_seconds) == (
        tenancy.advertiser,
        line_item,
        30,
    )
    assert created.json()["campaign"] == campaign.pk


def test_naive_times_are_the_accounts_local_time_and_shown_in_it(writer, tenancy):
    tenancy.advertiser.timezone = "America/New_York"
    tenancy.advertiser.save()
    start = (account_today() + dt.timedelta(days=3)).isoformat()
    # New York's offset on that day: EST (-05:00) from November to March, EDT (-04:00) from
    # March to November (the suite runs on any day of the year).
    hours = {dt.timedelta(hours=-5): -5, dt.timedelta(hours=-4): -4}[
        dt.datetime.fromisoformat(f"{start}T18:00")
        .replace(tzinfo=zoneinfo.ZoneInfo("America/New_York"))
        .utcoffset()
    ]
    body = line_item_body(tenancy.campaign.pk, start_at=f"{start}T18:00:00")
    created = post(writer, "/api/v1/line_items", body)
    assert created.status_code == 201, created.json()
    line_item = LineItem.objects.get(pk=created.json()["id"])
    local = timezone.localtime(line_item.start_at, tenancy.advertiser.tzinfo)
    assert (local.isoformat()[:16], local.utcoffset()) == (
        f"{start}T18:00",
        dt.timedelta(hours=hours),
    )
    assert line_item.start_at == dt.datetime.fromisoformat(f"{start}T18:00+00:00") - dt.timedelta(
        hours=hours
    )
    assert created.json()["start_at"] == f"{start}T18:00:00{hours:03d}:00"


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/campaigns", campaign_body(name=""), "name"),
        ("/api/v1/campaigns", campaign_body(objective="fame"), "objective"),
        ("/api/v1/campaigns", campaign_body(end_date="2000-01-01"), "end_date"),
        ("/api/v1/campaigns", campaign_body(status="paused"), "status"),
    ],
)
def test_bad_campaign_input_is_a_400_naming_the_field(writer, tenancy, url, body, field):
    response = post(writer, url, body)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]
    assert Campaign.objects.filter(advertiser=tenancy.advertiser).count() == 1


def test_line_items_and_creatives_are_validated_by_the_services_as_on_the_forms(writer, tenancy):
    campaign = tenancy.campaign
    cases = [
        (line_item_body(campaign.pk, daily_budget="9000.00"), "daily_budget"),  # model rule
        (line_item_body(campaign.pk, target_devices=["toaster"]), "target_devices"),
        (line_item_body(tenancy.rival_campaign.pk), "campaign"),  # another account's
        (line_item_body(campaign.pk, campaign=None), "campaign"),
    ]
    title = TitleFactory()
    both = line_item_body(campaign.pk, include_titles=[title.pk], exclude_titles=[title.pk])
    cases.append((both, "exclude_titles"))  # the service's own rule
    for body, field in cases:
        response = post(writer, "/api/v1/line_items", body)
        assert response.status_code == 400, body
        assert field in response.json()["error"]["fields"], response.json()
    assert LineItem.objects.filter(advertiser=tenancy.advertiser).count() == 1
    bad_url = creative_body(tenancy.line_item.pk, media_url="javascript:alert(1)")
    response = post(writer, "/api/v1/creatives", bad_url)
    assert (response.status_code, list(response.json()["error"]["fields"])) == (400, ["media_url"])
    rival = post(writer, "/api/v1/creatives", creative_body(tenancy.rival_line_item.pk))
    assert (rival.status_code, list(rival.json()["error"]["fields"])) == (400, ["line_item"])


def test_patch_changes_what_it_names_through_the_service(writer, tenancy):
    url = f"/api/v1/line_items/{tenancy.line_item.pk}"
    changed = patch(writer, url, {"bid": "3.25", "target_regions": ["us_west"]})
    assert changed.status_code == 200, changed.json()
    tenancy.line_item.refresh_from_db()
    assert (str(tenancy.line_item.bid), tenancy.line_item.target_regions) == ("3.2500", ["us_west"])
    assert changed.json()["bid"] == "3.2500"
    # What the forms cannot change, the API cannot either: named, not ignored.
    for body, field in [
        ({"campaign": tenancy.campaign.pk}, "campaign"),
        ({"status": "paused"}, "status"),
        ({"daily_budget": "9000.00"}, "daily_budget"),
    ]:
        refused = patch(writer, url, body)
        assert (refused.status_code, list(refused.json()["error"]["fields"])) == (400, [field])
    # A campaign's new dates must still hold its line items' flights (campaign_update's rule).
    later = (timezone.localdate() + dt.timedelta(days=40)).isoformat()
    refused = patch(writer, f"/api/v1/campaigns/{tenancy.campaign.pk}", {"start_date": later})
    assert refused.status_code == 400
    assert "start_date" in refused.json()["error"]["fields"]


def test_pause_resume_archive(writer, tenancy):
    url = f"/api/v1/campaigns/{tenancy.campaign.pk}"
    assert post(writer, f"{url}/pause").json()["status"] == "paused"
    assert post(writer, f"{url}/resume").json()["status"] == "active"
    archived = post(writer, f"{url}/archive")
    assert archived.json()["status"] == "archived"
    tenancy.creative.refresh_from_db()
    assert tenancy.creative.status == "archived"  # archiving reaches what hangs below
    refused = post(writer, f"{url}/resume")
    assert refused.status_code == 400
    assert "archived" in refused.json()["error"]["message"]
    refused = patch(writer, url, {"name": "Back"})
    assert refused.status_code == 400


def test_lists_filter_order_and_page(writer, tenancy):
    today = timezone.localdate()
    for number, days in enumerate((5, 10, 15)):
        CampaignFactory(
            advertiser=tenancy.advertiser,
            name=f"Wave {number}",
            start_date=today + dt.timedelta(days=days),
            status="paused" if number else "active",
        )
    by_name = writer.get("/api/v1/campaigns?ordering=-name&limit=2").json()
    seen = [campaign["name"] for campaign in by_name["results"]]
    seen += [c["name"] for c in writer.get(by_name["next"]).json()["results"]]
    names = sorted(
        Campaign.objects.filter(advertiser=tenancy.advertiser).values_list("name", flat=True)
    )
    assert seen == list(reversed(names))
    since, until = today + dt.timedelta(days=6), today + dt.timedelta(days=15)
    dated = writer.get(f"/api/v1/campaigns?starts_from={since}&starts_until={until}")
    assert [c["name"] for c in dated.json()["results"]] == ["Wave 2", "Wave 1"]
    paused = writer.get("/api/v1/campaigns?status=paused&ordering=start").json()["results"]
    assert [c["name"] for c in paused] == ["Wave 1", "Wave 2"]
    other = LineItemFactory(campaign=CampaignFactory(advertiser=tenancy.advertiser))
    of_campaign = writer.get(f"/api/v1/line_items?campaign={tenancy.campaign.pk}").json()
    assert [item["id"] for item in of_campaign["results"]] == [tenancy.line_item.pk]
    everything = writer.get("/api/v1/line_items?ordering=created").json()["results"]
    assert [item["id"] for item in everything] == [tenancy.line_item.pk, other.pk]
    creatives = writer.get(f"/api/v1/creatives?line_item={tenancy.line_item.pk}").json()
    assert [c["id"] for c in creatives["results"]] == [tenancy.creative.pk]
    for query, field in [
        ("ordering=budget", "ordering"),
        ("starts_from=1999-12-31", "starts_from"),
        ("starts_until=tomorrow", "starts_until"),
    ]:
        bad = writer.get(f"/api/v1/campaigns?{query}")
        assert (bad.status_code, list(bad.json()["error"]["fields"])) == (400, [field])
    # A cursor of a name ordering read as an id ordering is not ours: a 404, never a 500.
    name_cursor = by_name["next"].split("cursor=")[1].split("&")[0]
    assert writer.get(f"/api/v1/campaigns?cursor={name_cursor}").status_code == 404


def test_an_outsider_key_gets_404_on_every_route_and_changes_nothing(outsider, tenancy):
    before = tenancy.line_item.updated_at
    for method, url, body in every_route(tenancy):
        response = call(outsider, method, url, body)
        if url.endswith(("campaigns", "line_items", "creatives")):
            # Lists and creates are of the key's own account: they never show ours.
            if method == "get":
                ids = {row["id"] for row in response.json()["results"]}
                ours = {tenancy.campaign.pk, tenancy.line_item.pk, tenancy.creative.pk}
                theirs = {
                    tenancy.rival_campaign.pk,
                    tenancy.rival_line_item.pk,
                    tenancy.rival_creative.pk,
                }
                assert ids and ids <= theirs and not ids & ours - theirs
            continue
        assert response.status_code == 404, (method, url, response.content)
        assert response.json()["error"]["code"] == "not_found"
    for query in (
        f"campaign={tenancy.campaign.pk}",
        f"line_item={tenancy.line_item.pk}",
    ):
        assert outsider.get(f"/api/v1/creatives?{query}").status_code == 404
    assert outsider.get(f"/api/v1/line_items?campaign={tenancy.campaign.pk}").status_code == 404
    tenancy.line_item.refresh_from_db()
    assert (tenancy.line_item.name, tenancy.line_item.status) != ("Mine now", "archived")
    assert tenancy.line_item.updated_at == before


def test_a_read_key_reads_everything_and_writes_nothing(reader, tenancy):
    for method, url, body in every_route(tenancy):
        response = call(reader, method, url, body)
        if method == "get":
            assert response.status_code == 200, url
        else:
            assert response.status_code == 403, (method, url)
            assert response.json()["error"]["code"] == "permission_denied"
    tenancy.campaign.refresh_from_db()
    assert tenancy.campaign.status == "active"
    assert Campaign.objects.filter(advertiser=tenancy.advertiser).count() == 1


# Idempotency-Key ---------------------------------------------------------------------------


def test_the_same_idempotency_key_and_body_replays_the_first_answer(writer, tenancy):
    first = post(writer, "/api/v1/campaigns", campaign_body(), **{"Idempotency-Key": "k-1"})
    again = post(writer, "/api/v1/campaigns", campaign_body(), **{"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Location"] == first["Location"] and again["Idempotent-Replayed"] == "true"
    assert Campaign.objects.filter(name="Winter Warmers").count() == 1
    # Another key creates again; so does no key.
    post(writer, "/api/v1/campaigns", campaign_body(), **{"Idempotency-Key": "k-2"})
    post(writer, "/api/v1/campaigns", campaign_body())
    assert Campaign.objects.filter(name="Winter Warmers").count() == 3


def test_the_same_idempotency_key_with_another_body_is_a_409(writer, tenancy):
    post(writer, "/api/v1/campaigns", campaign_body(), **{"Idempotency-Key": "k-1"})
    other = post(
        writer, "/api/v1/campaigns", campaign_body(name="Other"), **{"Idempotency-Key": "k-1"}
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    # The same key on another route is another request too.
    elsewhere = post(
        writer,
        "/api/v1/line_items",
        line_item_body(tenancy.campaign.pk),
        **{"Idempotency-Key": "k-1"},
    )
    assert elsewhere.status_code == 409
    assert not Campaign.objects.filter(name="Other").exists()
    assert LineItem.objects.filter(advertiser=tenancy.advertiser).count() == 1


def test_idempotency_keys_are_per_account_key(writer, tenancy):
    other_writer = api_client(tenancy, "write")
    post(writer, "/api/v1/campaigns", campaign_body(), **{"Idempotency-Key": "k-1"})
    second = post(
        other_writer,
        "/api/v1/campaigns",
        campaign_body(name="Theirs"),
        **{"Idempotency-Key": "k-1"},
    )
    assert second.status_code == 201
    assert Campaign.objects.filter(name__in=["Winter Warmers", "Theirs"]).count() == 2


def test_a_refused_body_is_replayed_refused_and_a_bad_key_is_named(writer, tenancy):
    bad = campaign_body(name="")
    first = post(writer, "/api/v1/campaigns", bad, **{"Idempotency-Key": "k-9"})
    again = post(writer, "/api/v1/campaigns", bad, **{"Idempotency-Key": "k-9"})
    assert (first.status_code, again.status_code) == (400, 400)
    assert again.json() == first.json()
    too_long = post(writer, "/api/v1/campaigns", campaign_body(), **{"Idempotency-Key": "k" * 256})
    assert too_long.status_code == 400
    assert list(too_long.json()["error"]["fields"]) == ["Idempotency-Key"]


# ETag / If-Match ---------------------------------------------------------------------------


def test_etag_and_if_match_guard_against_lost_updates(writer, tenancy):
    url = f"/api/v1/creatives/{tenancy.creative.pk}"
    read = writer.get(url)
    etag = read["ETag"]
    assert etag.startswith('"') and len(etag) == 34
    assert writer.get(url)["ETag"] == etag  # stable while nothing changes
    changed = patch(writer, url, {"name": "Spring spot v2"}, **{"If-Match": etag})
    assert changed.status_code == 200
    assert changed["ETag"] != etag and changed["ETag"] == writer.get(url)["ETag"]
    # A second writer still holding the old tag is refused, and changes nothing.
    stale = patch(writer, url, {"name": "Overwritten"}, **{"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "precondition_failed"
    paused = post(writer, f"{url}/pause", **{"If-Match": etag})
    assert paused.status_code == 412
    tenancy.creative.refresh_from_db()
    assert (tenancy.creative.name, tenancy.creative.status) == ("Spring spot v2", "active")
    # Optional: without If-Match (or with *), the write applies.
    assert post(writer, f"{url}/pause", **{"If-Match": "*"}).json()["status"] == "paused"
    assert patch(writer, url, {"name": "Last"}).json()["name"] == "Last"


# Why a line item is not delivering ----------------------------------------------------------


def test_the_delivery_diagnosis_is_the_line_item_pages(writer, tenancy):
    from ads import selectors

    url = f"/api/v1/line_items/{tenancy.line_item.pk}/delivery"
    post(writer, f"/api/v1/line_items/{tenancy.line_item.pk}/pause")
    body = writer.get(url).json()
    checks = selectors.line_item_delivery(
        advertiser=tenancy.advertiser, line_item_id=tenancy.line_item.pk
    )
    assert body["line_item"] == tenancy.line_item.pk
    assert body["delivering"] is False
    assert [(c["name"], c["ok"], c["detail"]) for c in body["checks"]] == [
        (check.name, check.ok, check.detail) for check in checks
    ]
    assert body["checks"][0] == {
        "name": "Status",
        "ok": False,
        "detail": "The line item is paused.",
        "pending": False,
    }
