"""Account API keys: the owner makes them on the account's keys page (shown once, stored
hashed, last use shown, revoked at once); managers, analysts and outsiders cannot; a key reads
its own account's campaigns only, and a read key cannot write."""

import hashlib
import re

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from ads import services
from ads.models import AccountKey, Campaign
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def keys_page(tenancy, slug=None):
    return reverse("account_keys", args=[slug or tenancy.advertiser.slug])


def create_on_page(client, tenancy, name="Warehouse", scope="read") -> str:
    client.force_login(tenancy.owner)
    response = client.post(keys_page(tenancy), {"name": name, "scope": scope})
    assert response.status_code == 201
    (raw_key,) = re.findall(r"<code data-new-key>(ila_[\w-]+)</code>", response.content.decode())
    return raw_key


def bearer(client, raw_key):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw_key}"
    return client


def test_the_owner_creates_a_key_shown_once_and_stored_hashed(client, tenancy):
    raw_key = create_on_page(client, tenancy, name="Reporting warehouse", scope="write")
    key = AccountKey.objects.get()
    assert (key.advertiser, key.name, key.scope, key.created_by) == (
        tenancy.advertiser,
        "Reporting warehouse",
        "write",
        tenancy.owner,
    )
    assert key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key.startswith("ila_") and key.prefix == raw_key[4:12]
    page = client.get(keys_page(tenancy))
    assert page.status_code == 200
    text = page.content.decode()
    assert raw_key not in text  # shown once
    assert f"ila_{key.prefix}…" in text and "Reporting warehouse" in text and "Never" in text
    assert "no-store" in page["Cache-Control"]
    assert f'href="{keys_page(tenancy)}"' in text  # in the account's navigation


def test_a_key_needs_a_name_and_a_known_scope(client, tenancy):
    client.force_login(tenancy.owner)
    response = client.post(keys_page(tenancy), {"name": "", "scope": "admin"})
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"name", "scope"}
    assert not AccountKey.objects.exists()


@pytest.mark.parametrize("role", ["manager", "analyst"])
def test_managers_and_analysts_cannot_manage_keys(client, tenancy, role):
    user = getattr(tenancy, role)
    key, _ = services.account_key_create(
        advertiser=tenancy.advertiser, created_by=tenancy.owner, name="Warehouse", scope="read"
    )
    client.force_login(user)
    assert client.get(keys_page(tenancy)).status_code == 403
    assert client.post(keys_page(tenancy), {"name": "Mine", "scope": "write"}).status_code == 403
    revoke = reverse("account_key_revoke", args=[tenancy.advertiser.slug, key.pk])
    assert client.post(revoke).status_code == 403
    assert (
        f'href="{keys_page(tenancy)}"'
        not in client.get(reverse("campaigns", args=["acme"])).content.decode()
    )
    with pytest.raises(PermissionDenied):
        services.account_key_create(
            advertiser=tenancy.advertiser, created_by=user, name="Mine", scope="write"
        )
    with pytest.raises(PermissionDenied):
        services.account_key_revoke(key=key, revoked_by=user)
    assert list(AccountKey.objects.values_list("name", "revoked_at")) == [("Warehouse", None)]


def test_an_outsider_gets_404_on_another_accounts_keys(client, tenancy):
    key, _ = services.account_key_create(
        advertiser=tenancy.advertiser, created_by=tenancy.owner, name="Warehouse", scope="read"
    )
    client.force_login(tenancy.outsider)  # the rival account's owner
    assert client.get(keys_page(tenancy)).status_code == 404
    assert client.post(keys_page(tenancy), {"name": "x", "scope": "read"}).status_code == 404
    for slug in (tenancy.advertiser.slug, tenancy.rival.slug):
        revoke = reverse("account_key_revoke", args=[slug, key.pk])
        assert client.post(revoke).status_code == 404
    assert AccountKey.objects.get().is_active
    assert (
        "Warehouse" not in client.get(keys_page(tenancy, slug=tenancy.rival.slug)).content.decode()
    )


def test_revoking_takes_effect_at_once_and_last_use_is_shown(client, tenancy):
    raw_key = create_on_page(client, tenancy)
    api = bearer(client.__class__(), raw_key)
    assert api.get("/api/v1/campaigns").status_code == 200
    key = AccountKey.objects.get()
    assert key.last_used_at is not None
    assert (
        key.last_used_at.astimezone(tenancy.advertiser.tzinfo).strftime("%Y-%m-%d %H:%M")
        in client.get(keys_page(tenancy)).content.decode()
    )
    response = client.post(reverse("account_key_revoke", args=["acme", key.pk]), follow=True)
    assert "“Warehouse” is revoked" in response.content.decode()
    refused = api.get("/api/v1/campaigns")
    assert refused.status_code == 401
    assert refused.json()["error"] == {
        "code": "authentication_failed",
        "message": "Unknown or revoked account key.",
        "fields": {},
    }


def test_a_key_reads_its_own_accounts_campaigns_only(
    client, tenancy, django_assert_max_num_queries
):
    _, raw_key = services.account_key_create(
        advertiser=tenancy.advertiser, created_by=tenancy.owner, name="Warehouse", scope="read"
    )
    api = bearer(client, raw_key)
    with django_assert_max_num_queries(3):  # the key (and its account), its last use, the page
        body = api.get("/api/v1/campaigns").json()
    assert [campaign["id"] for campaign in body["results"]] == [tenancy.campaign.pk]
    assert body["results"][0]["name"] == tenancy.campaign.name
    one = api.get(f"/api/v1/campaigns/{tenancy.campaign.pk}")
    assert (one.status_code, one.json()["id"]) == (200, tenancy.campaign.pk)
    rival = api.get(f"/api/v1/campaigns/{tenancy.rival_campaign.pk}")
    assert rival.status_code == 404
    assert rival.json()["error"] == {
        "code": "not_found",
        "message": "No such campaign in this account.",
        "fields": {},
    }


def test_campaigns_come_newest_first_in_cursor_pages(client, tenancy):
    for number in range(4):
        CampaignFactory(advertiser=tenancy.advertiser, name=f"Wave {number}", status="paused")
    _, raw_key = services.account_key_create(
        advertiser=tenancy.advertiser, created_by=tenancy.owner, name="Warehouse", scope="read"
    )
    api = bearer(client, raw_key)
    seen, url = [], "/api/v1/campaigns?limit=2"
    while url:
        page = api.get(url).json()
        assert len(page["results"]) <= 2
        seen += [campaign["id"] for campaign in page["results"]]
        url = page["next"]
    expected = list(
        Campaign.objects.filter(advertiser=tenancy.advertiser)
        .order_by("-id")
        .values_list("pk", flat=True)
    )
    assert seen == expected and len(seen) == 5
    paused = api.get("/api/v1/campaigns?status=paused").json()["results"]
    assert [campaign["name"] for campaign in paused] == ["Wave 3", "Wave 2", "Wave 1", "Wave 0"]
    for query, field in [
        ("status=running", "status"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
    ]:
        bad = api.get(f"/api/v1/campaigns?{query}")
        assert bad.status_code == 400
        assert list(bad.json()["error"]["fields"]) == [field]
    # A cursor that is not one of ours: "p=abc" encoded, as DRF would encode a position.
    for cursor in ("garbage", "cD1hYmM%3D"):
        bad = api.get(f"/api/v1/campaigns?cursor={cursor}")
        assert (bad.status_code, bad.json()["error"]["message"]) == (404, "Invalid cursor")


def test_a_read_key_cannot_write(client, tenancy):
    _, read_key = services.account_key_create(
        advertiser=tenancy.advertiser, created_by=tenancy.owner, name="Reader", scope="read"
    )
    _, write_key = services.account_key_create(
        advertiser=tenancy.advertiser, created_by=tenancy.owner, name="Writer", scope="write"
    )
    refused = bearer(client, read_key).post(
        "/api/v1/campaigns", {}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == (
        "This key is read-only; writing needs a read-and-write key."
    )
    # Past the scope check: the empty body is named field by field.
    allowed = bearer(client, write_key).post(
        "/api/v1/campaigns", {}, content_type="application/json"
    )
    assert allowed.status_code == 400
    assert set(allowed.json()["error"]["fields"]) == {"name", "start_date"}


def test_platform_and_account_keys_do_not_open_each_others_endpoints(client, tenancy):
    _, platform_key = services.platform_key_create(name="Player")
    _, account_key = services.account_key_create(
        advertiser=tenancy.advertiser, created_by=tenancy.owner, name="Warehouse", scope="write"
    )
    assert bearer(client, platform_key).get("/api/v1/campaigns").status_code == 401
    decision = bearer(client, account_key).post(
        "/api/v1/decisions", {"viewer_id": "x"}, content_type="application/json"
    )
    assert decision.status_code == 401
    assert client.__class__().get("/api/v1/campaigns").status_code == 401


def test_a_deactivated_accounts_keys_stop_working(client, tenancy):
    _, raw_key = services.account_key_create(
        advertiser=tenancy.advertiser, created_by=tenancy.owner, name="Warehouse", scope="read"
    )
    tenancy.advertiser.is_active = False
    tenancy.advertiser.save()
    assert bearer(client, raw_key).get("/api/v1/campaigns").status_code == 401


def test_staff_see_every_accounts_keys_in_admin_and_revoke_a_leaked_one(admin_client, tenancy):
    key, raw_key = services.account_key_create(
        advertiser=tenancy.advertiser, created_by=tenancy.owner, name="Leaked", scope="write"
    )
    listing = admin_client.get("/admin/ads/accountkey/").content.decode()
    assert "Leaked" in listing and key.prefix in listing and raw_key not in listing
    assert admin_client.get("/admin/ads/accountkey/add/").status_code == 403
    admin_client.post("/admin/ads/accountkey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert not key.is_active
    assert services.account_key_authenticate(raw_key=raw_key) is None
