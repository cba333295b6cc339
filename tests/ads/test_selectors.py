import pytest

from ads import selectors
from ads.models import Campaign, Creative, DeliveryStatus, LineItem, Membership
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_advertisers_for_user_lists_only_the_users_accounts(tenancy):
    assert list(selectors.advertisers_for_user(user=tenancy.owner)) == [tenancy.advertiser]
    assert list(selectors.advertisers_for_user(user=tenancy.outsider)) == [tenancy.rival]
    assert list(selectors.advertisers_for_user(user=UserFactory())) == []


def test_membership_get_refuses_an_outsider(tenancy):
    membership = selectors.membership_get(user=tenancy.manager, advertiser_slug="acme")
    assert membership.role == Membership.Role.MANAGER
    with pytest.raises(Membership.DoesNotExist):
        selectors.membership_get(user=tenancy.outsider, advertiser_slug="acme")


@pytest.mark.parametrize(
    ("list_selector", "own", "rival"),
    [
        (selectors.campaign_list, "campaign", "rival_campaign"),
        (selectors.line_item_list, "line_item", "rival_line_item"),
        (selectors.creative_list, "creative", "rival_creative"),
    ],
)
def test_lists_never_show_another_accounts_rows(tenancy, list_selector, own, rival):
    rows = list(list_selector(advertiser=tenancy.advertiser, include_archived=True))
    assert rows == [getattr(tenancy, own)]
    assert getattr(tenancy, rival) not in rows


@pytest.mark.parametrize(
    ("get_selector", "id_argument", "rival", "model"),
    [
        (selectors.campaign_get, "campaign_id", "rival_campaign", Campaign),
        (selectors.line_item_get, "line_item_id", "rival_line_item", LineItem),
        (selectors.creative_get, "creative_id", "rival_creative", Creative),
    ],
)
def test_another_accounts_id_does_not_exist(tenancy, get_selector, id_argument, rival, model):
    with pytest.raises(model.DoesNotExist):
        get_selector(advertiser=tenancy.advertiser, **{id_argument: getattr(tenancy, rival).pk})
    found = get_selector(advertiser=tenancy.rival, **{id_argument: getattr(tenancy, rival).pk})
    assert found == getattr(tenancy, rival)


def test_archived_rows_are_hidden_unless_asked_for(tenancy):
    Campaign.objects.filter(pk=tenancy.campaign.pk).update(status=DeliveryStatus.ARCHIVED)
    assert list(selectors.campaign_list(advertiser=tenancy.advertiser)) == []
    assert list(selectors.campaign_list(advertiser=tenancy.advertiser, include_archived=True)) == [
        tenancy.campaign
    ]


def test_campaign_list_counts_live_line_items(tenancy):
    (campaign,) = selectors.campaign_list(advertiser=tenancy.advertiser)
    assert campaign.line_item_count == 1
    LineItem.objects.filter(pk=tenancy.line_item.pk).update(status=DeliveryStatus.ARCHIVED)
    (campaign,) = selectors.campaign_list(advertiser=tenancy.advertiser)
    assert campaign.line_item_count == 0


def test_account_summary_counts_by_status(tenancy):
    LineItem.objects.filter(pk=tenancy.line_item.pk).update(status=DeliveryStatus.PAUSED)
    summary = selectors.account_summary(advertiser=tenancy.advertiser)
    assert summary["campaigns"] == {"active": 1, "paused": 0, "archived": 0}
    assert summary["line_items"] == {"active": 0, "paused": 1, "archived": 0}
    assert summary["creatives"] == {"active": 1, "paused": 0, "archived": 0}
