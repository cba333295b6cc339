"""The audit trail (ads.services.audit): every create, change, pause, resume and archive of a
campaign, line item or creative, and every account key made or revoked, records who, when,
through which path (page, API key, admin) and what changed, field by field; the object's page
shows its History to the account's members only; admin shows the entries read-only."""

from decimal import Decimal

import pytest
from django.urls import reverse

from ads import selectors, services
from ads.models import AuditEntry, Campaign, DeliveryStatus, LineItem
from ads.services.audit import OBJECT_TYPES
from tests.ads.test_views import campaign_data, line_item_data, url
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def entries(item) -> list[AuditEntry]:
    kind = OBJECT_TYPES[type(item)]
    return list(AuditEntry.objects.filter(object_type=kind, object_id=item.pk).order_by("id"))


def test_a_line_item_edited_on_its_page_records_who_the_path_and_each_change(client, tenancy):
    line_item = tenancy.line_item
    old_bid = format(line_item.bid.normalize(), "f")
    client.force_login(tenancy.manager)
    data = line_item_data(tenancy, name=line_item.name, bid="3.75")
    data.pop("campaign")
    response = client.post(url(tenancy, "line_item_edit", "line_item"), data)
    assert response.status_code == 302

    entry = AuditEntry.objects.get(object_type="line_item", object_id=line_item.pk)
    assert (entry.action, entry.path, entry.user, entry.key) == (
        "update",
        "page",
        tenancy.manager,
        None,
    )
    assert entry.advertiser == tenancy.advertiser
    assert entry.changes["bid"] == [old_bid, "3.75"]
    assert "name" not in entry.changes  # unchanged fields are not listed
    assert f"bid: {old_bid} → 3.75" in entry.change_lines

    page = client.get(url(tenancy, "line_item_detail", "line_item")).content.decode()
    assert 'id="history-heading"' in page
    assert f"bid: {old_bid} → 3.75" in page
    assert "manager" in page and "Page" in page


def test_saving_the_same_values_records_nothing(tenancy):
    line_item = tenancy.line_item
    services.line_item_update(line_item=line_item, bid=line_item.bid, name=line_item.name)
    assert entries(line_item) == []


def test_pause_resume_and_archive_are_named_and_archive_covers_what_hangs_below(client, tenancy):
    client.force_login(tenancy.owner)
    status_url = url(tenancy, "campaign_status", "campaign")
    for status in ("paused", "active", "archived"):
        assert client.post(status_url, {"status": status}).status_code in (200, 302)
    campaign_entries = entries(tenancy.campaign)
    assert [entry.action for entry in campaign_entries] == ["pause", "resume", "archive"]
    assert campaign_entries[0].changes == {"status": ["active", "paused"]}
    assert {entry.user for entry in campaign_entries} == {tenancy.owner}
    # The line item and creative archived with it have their own entries.
    for child in (tenancy.line_item, tenancy.creative):
        (archived,) = entries(child)
        assert (archived.action, archived.changes) == (
            "archive",
            {"status": ["active", "archived"]},
        )
        assert archived.user == tenancy.owner


def test_a_creation_through_the_page_is_recorded(client, tenancy):
    client.force_login(tenancy.owner)
    assert client.post(reverse("campaign_new", args=["acme"]), campaign_data()).status_code == 302
    campaign = Campaign.objects.get(name="Acme winter push")
    (created,) = entries(campaign)
    assert (created.action, created.path, created.user) == ("create", "page", tenancy.owner)
    assert created.changes["name"] == [None, "Acme winter push"]
    assert created.change_lines == []  # the page shows what it is now


def test_an_account_key_acts_through_the_api_path(tenancy):
    key, _ = services.account_key_create(
        advertiser=tenancy.advertiser, created_by=tenancy.owner, name="Planner", scope="write"
    )
    services.line_item_update(
        line_item=tenancy.line_item, daily_budget=Decimal("55"), actor=services.Actor.api(key)
    )
    (entry,) = entries(tenancy.line_item)
    assert (entry.path, entry.key, entry.user) == ("api", key, None)
    assert entry.actor == "API key “Planner”"


def test_account_keys_made_and_revoked_are_recorded_and_listed_on_the_keys_page(client, tenancy):
    client.force_login(tenancy.owner)
    keys_url = reverse("account_keys", args=["acme"])
    assert client.post(keys_url, {"name": "Reporting", "scope": "read"}).status_code == 201
    key = AuditEntry.objects.get(object_type="account_key", action="create").object_id
    revoke = reverse("account_key_revoke", args=["acme", key])
    assert client.post(revoke).status_code == 302
    assert client.post(revoke).status_code == 302  # twice: one revocation
    actions = [(entry.action, entry.path) for entry in AuditEntry.objects.order_by("id")]
    assert actions == [("create", "page"), ("revoke", "page")]
    page = client.get(keys_url).content.decode()
    assert "Revoked" in page and "Reporting" in page


def test_admin_saves_and_revocations_are_recorded_as_admin(client, tenancy):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    campaign = tenancy.campaign
    change = reverse("admin:ads_campaign_change", args=[campaign.pk])
    form = {
        "advertiser": campaign.advertiser_id,
        "name": "Renamed by staff",
        "objective": campaign.objective,
        "status": campaign.status,
        "start_date": campaign.start_date.isoformat(),
        "end_date": campaign.end_date.isoformat() if campaign.end_date else "",
    }
    response = client.post(change, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    (entry,) = entries(campaign)
    assert (entry.action, entry.path, entry.user) == ("update", "admin", staff)
    assert entry.changes["name"] == [campaign.name, "Renamed by staff"]
    # The change page shows it; the audit entries are read-only in admin.
    assert "Renamed by staff" in client.get(change).content.decode()
    audit_list = reverse("admin:ads_auditentry_changelist")
    assert client.get(audit_list).status_code == 200
    assert client.get(reverse("admin:ads_auditentry_add")).status_code == 403
    entry_page = client.get(reverse("admin:ads_auditentry_change", args=[entry.pk]))
    assert entry_page.status_code == 200 and b'name="_save"' not in entry_page.content

    key, _ = services.account_key_create(
        advertiser=tenancy.advertiser, created_by=tenancy.owner, name="Leaked", scope="read"
    )
    keys = reverse("admin:ads_accountkey_changelist")
    client.post(keys, {"action": "revoke", "_selected_action": [key.pk]})
    revoked = AuditEntry.objects.get(object_type="account_key", action="revoke")
    assert (revoked.path, revoked.user) == ("admin", staff)


def test_an_outsider_sees_no_history_of_another_account(client, tenancy):
    services.delivery_status_set(
        item=tenancy.line_item,
        status=DeliveryStatus.PAUSED,
        actor=services.Actor.page(tenancy.owner),
    )
    client.force_login(tenancy.outsider)
    assert client.get(url(tenancy, "line_item_detail", "line_item")).status_code == 404
    # Through the outsider's own account, the id finds nothing either.
    own = url(tenancy, "line_item_detail", "line_item", slug=tenancy.rival.slug)
    assert client.get(own).status_code == 404
    assert (
        selectors.audit_history(
            advertiser=tenancy.rival, object_type="line_item", object_id=tenancy.line_item.pk
        )
        == []
    )
    # The rival's own line item page shows none of Acme's entries.
    client.get(url(tenancy, "line_item_detail", "rival_line_item", slug=tenancy.rival.slug))
    assert LineItem.objects.get(pk=tenancy.rival_line_item.pk).status == "active"
    rival_page = client.get(
        url(tenancy, "line_item_detail", "rival_line_item", slug=tenancy.rival.slug)
    ).content.decode()
    assert "No changes recorded yet." in rival_page


def test_the_account_api_records_its_key_as_the_actor(client, tenancy):
    key, raw_key = services.account_key_create(
        advertiser=tenancy.advertiser, created_by=tenancy.owner, name="Planner", scope="write"
    )
    auth = {"Authorization": f"Bearer {raw_key}"}
    line_item = tenancy.line_item
    response = client.patch(
        f"/api/v1/line_items/{line_item.pk}",
        {"daily_budget": "55.00"},
        content_type="application/json",
        headers=auth,
    )
    assert response.status_code == 200, response.content
    paused = client.post(f"/api/v1/line_items/{line_item.pk}/pause", headers=auth)
    assert paused.status_code == 200, paused.content
    changed, pause = entries(line_item)
    assert (changed.action, changed.path, changed.key, changed.user) == ("update", "api", key, None)
    assert changed.changes["daily_budget"][1] == "55"
    assert (pause.action, pause.path, pause.key) == ("pause", "api", key)
