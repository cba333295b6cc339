"""“Why is my line item not delivering?” on the line item's page."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from ads import services
from ads.delivery import keys
from ads.delivery.counters import Bump, counters
from ads.models import DeliveryStatus
from tests.factories import CreativeFactory, TitleFactory, ViewerFactory

pytestmark = pytest.mark.django_db


def checks_of(client, tenancy, line_item_id=None):
    line_item_id = line_item_id or tenancy.line_item.pk
    response = client.get(f"/a/acme/line-items/{line_item_id}/delivery/")
    assert response.status_code == 200
    return {check.name: check for check in response.context["checks"]}


def test_a_delivering_line_item_passes_every_check(client, tenancy):
    ViewerFactory(region="us_west")
    TitleFactory()
    client.force_login(tenancy.analyst)  # reading is for every member
    checks = checks_of(client, tenancy)
    assert [check for check in checks.values() if not check.ok] == []
    assert set(checks) == {
        "Status",
        "Flight",
        "Creatives",
        "Daily budget",
        "Lifetime budget",
        "Pacing",
        "Audience",
    }
    assert checks["Daily budget"].detail == "Reserved $0.00 of $500.00 today."
    assert checks["Audience"].detail.startswith(
        "Targeting matches 100% of viewer profiles (1) and 100% of titles (1)"
    )


def test_each_blocker_is_named(client, tenancy):
    client.force_login(tenancy.owner)
    line_item = tenancy.line_item
    services.delivery_status_set(item=tenancy.creative, status=DeliveryStatus.PAUSED)
    services.line_item_update(line_item=line_item, target_regions=["intl"])
    ViewerFactory(region="us_west")
    TitleFactory()
    today = timezone.localtime(timezone.now(), tenancy.advertiser.tzinfo).date()
    counters().add_many([Bump(keys.reserved_day(line_item.pk, today), 500_000_000)])
    checks = checks_of(client, tenancy)
    assert not checks["Creatives"].ok and checks["Creatives"].detail == "No active creative."
    assert not checks["Daily budget"].ok
    assert checks["Daily budget"].detail == "Reserved $500.00 of $500.00 today."
    assert not checks["Audience"].ok
    assert checks["Audience"].detail.startswith("Targeting matches 0% of viewer profiles (0)")


def test_a_paused_campaign_and_a_future_flight_are_named(client, tenancy):
    client.force_login(tenancy.owner)
    services.delivery_status_set(item=tenancy.campaign, status=DeliveryStatus.PAUSED)
    checks = checks_of(client, tenancy)
    assert not checks["Status"].ok
    assert checks["Status"].detail == f"The campaign “{tenancy.campaign.name}” is paused."
    services.delivery_status_set(item=tenancy.campaign, status=DeliveryStatus.ACTIVE)
    line_item = tenancy.line_item
    line_item.start_at = line_item.start_at + timedelta(days=3)
    line_item.save()
    assert not checks_of(client, tenancy)["Flight"].ok


def test_the_outsider_gets_404_and_the_page_loads_the_checks(client, tenancy):
    client.force_login(tenancy.outsider)
    assert client.get(f"/a/acme/line-items/{tenancy.line_item.pk}/delivery/").status_code == 404
    assert client.get(f"/a/globex/line-items/{tenancy.line_item.pk}/delivery/").status_code == 404
    client.force_login(tenancy.owner)
    page = client.get(f"/a/acme/line-items/{tenancy.line_item.pk}/").content.decode()
    assert f'hx-get="/a/acme/line-items/{tenancy.line_item.pk}/delivery/"' in page


def test_budget_figures_use_the_accounts_currency(client, tenancy):
    tenancy.advertiser.currency = "EUR"
    tenancy.advertiser.save()
    services.line_item_update(line_item=tenancy.line_item, daily_budget=Decimal("40"))
    client.force_login(tenancy.manager)
    checks = checks_of(client, tenancy)
    assert checks["Daily budget"].detail == "Reserved €0.00 of €40.00 today."


def test_an_archived_or_creative_less_line_item_is_not_said_to_wait_for_the_index(client, tenancy):
    client.force_login(tenancy.owner)
    services.delivery_status_set(item=tenancy.creative, status=DeliveryStatus.ARCHIVED)
    checks = checks_of(client, tenancy)
    assert checks["Creatives"].detail == "No active creative."
    assert "Decision engine" not in checks
    services.delivery_status_set(item=tenancy.line_item, status=DeliveryStatus.ARCHIVED)
    checks = checks_of(client, tenancy)
    assert checks["Status"].detail == "The line item is archived."
    assert "Decision engine" not in checks


def test_a_new_line_item_waits_for_the_index_and_the_page_asks_again(client, tenancy):
    client.force_login(tenancy.owner)
    checks_of(client, tenancy)  # the index is built now; a line item made after is not in it
    new = CreativeFactory(line_item__campaign=tenancy.campaign).line_item
    response = client.get(f"/a/acme/line-items/{new.pk}/delivery/")
    checks = {check.name: check for check in response.context["checks"]}
    assert checks["Decision engine"].pending
    assert [name for name, check in checks.items() if not check.ok] == ["Decision engine"]
    html = response.content.decode()
    assert f'hx-get="/a/acme/line-items/{new.pk}/delivery/?tries=1"' in html
    assert 'hx-trigger="load delay:1500ms" hx-target="#delivery-checks"' in html
    # It stops asking after a few tries.
    response = client.get(f"/a/acme/line-items/{new.pk}/delivery/?tries=5")
    assert "hx-get" not in response.content.decode()
