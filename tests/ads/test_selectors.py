from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ads import selectors
from ads.delivery import keys
from ads.delivery.counters import Bump, counters
from ads.models import Advertiser, Campaign, Creative, DeliveryStatus, LineItem, Membership
from tests.factories import LineItemFactory, UserFactory

MICROS = selectors.MICROS

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


# Delivery against goal (the list pages' badges), from the live counters


def _spend(line_item, *, today, lifetime):
    counters().add_many(
        [
            Bump(keys.spent_day(line_item.pk, NOON.date()), int(today * MICROS)),
            Bump(keys.spent_lifetime(line_item.pk), int(lifetime * MICROS)),
        ]
    )


NOON = datetime(2031, 3, 4, 12, 0, tzinfo=UTC)  # half the account's (UTC) day gone by


@pytest.fixture
def noon_account(tenancy):
    Advertiser.objects.filter(pk=tenancy.advertiser.pk).update(timezone="UTC")
    tenancy.advertiser.refresh_from_db()
    return tenancy


@pytest.mark.parametrize(
    ("spent_today", "pacing", "state"),
    [
        (50, "even", "on_track"),  # target at noon: 100 × 1/2 = 50
        (45, "even", "on_track"),  # within a tenth of the target
        (30, "even", "behind"),
        (70, "even", "ahead"),
        (70, "asap", "on_track"),  # ASAP is meant to run ahead
        (30, "asap", "behind"),
    ],
)
def test_line_item_pacing_compares_spend_with_the_even_target(
    noon_account, spent_today, pacing, state
):
    line_item = LineItemFactory(
        campaign=noon_account.campaign,
        daily_budget=Decimal("100.00"),
        lifetime_budget=Decimal("1000.00"),
        pacing=pacing,
        start_at=NOON - timedelta(days=2),
    )
    _spend(line_item, today=spent_today, lifetime=250)
    goals = selectors.line_item_pacing(
        advertiser=noon_account.advertiser, line_items=[line_item], at=NOON
    )
    delivery = goals[line_item.pk]
    assert delivery.target_now == Decimal("50.00")
    assert delivery.spent_today == Decimal(spent_today)
    assert delivery.state == state
    assert delivery.lifetime_percent == pytest.approx(25.0)


def test_line_item_pacing_has_no_badge_when_nothing_should_deliver(noon_account):
    paused = LineItemFactory(campaign=noon_account.campaign, status=DeliveryStatus.PAUSED)
    ended = LineItemFactory(
        campaign=noon_account.campaign,
        start_at=NOON - timedelta(days=9),
        end_at=NOON - timedelta(days=1),
    )
    later = LineItemFactory(campaign=noon_account.campaign, start_at=NOON + timedelta(hours=1))
    goals = selectors.line_item_pacing(
        advertiser=noon_account.advertiser, line_items=[paused, ended, later], at=NOON
    )
    assert [goals[item.pk].state for item in (paused, ended, later)] == ["", "", ""]


def test_line_item_pacing_leaves_out_another_accounts_line_items(noon_account):
    goals = selectors.line_item_pacing(
        advertiser=noon_account.advertiser,
        line_items=[noon_account.line_item, noon_account.rival_line_item],
        at=NOON,
    )
    assert list(goals) == [noon_account.line_item.pk]


def test_campaign_pacing_sums_its_line_items(noon_account, django_assert_num_queries):
    campaign = noon_account.campaign
    LineItem.objects.filter(pk=noon_account.line_item.pk).update(
        daily_budget=Decimal("100.00"), lifetime_budget=Decimal("1000.00"), start_at=NOON
    )
    other = LineItemFactory(
        campaign=campaign,
        daily_budget=Decimal("300.00"),
        lifetime_budget=Decimal("3000.00"),
        start_at=NOON - timedelta(days=1),
    )
    archived = LineItemFactory(campaign=campaign, status=DeliveryStatus.ARCHIVED)
    _spend(noon_account.line_item, today=40, lifetime=400)
    _spend(other, today=100, lifetime=600)
    _spend(archived, today=999, lifetime=999)
    with django_assert_num_queries(1):
        goals = selectors.campaign_pacing(
            advertiser=noon_account.advertiser, campaigns=[campaign], at=NOON
        )
    delivery = goals[campaign.pk]
    assert delivery.spent_today == Decimal(140)
    assert delivery.target_now == Decimal(200)  # (100 + 300) × 1/2
    assert delivery.state == "behind"  # 140 < 200 − 20
    assert delivery.lifetime_percent == pytest.approx(25.0)  # 1,000 of 4,000


def test_lists_search_filter_and_sort(tenancy):
    first = LineItemFactory(campaign=tenancy.campaign, name="Zeta evenings", daily_budget=10)
    second = LineItemFactory(
        campaign=tenancy.campaign,
        name="Alpha mornings",
        daily_budget=900,
        status=DeliveryStatus.PAUSED,
    )
    advertiser = tenancy.advertiser
    names = [item.name for item in selectors.line_item_list(advertiser=advertiser, sort="name")]
    assert names.index("Alpha mornings") < names.index("Zeta evenings")
    reverse = [item.name for item in selectors.line_item_list(advertiser=advertiser, sort="-name")]
    assert reverse == names[::-1]
    by_budget = list(selectors.line_item_list(advertiser=advertiser, sort="-budget"))
    assert by_budget[0] == second and by_budget[-1] == first
    assert list(selectors.line_item_list(advertiser=advertiser, search="EVENINGS")) == [first]
    assert list(selectors.line_item_list(advertiser=advertiser, status="paused")) == [second]
    by_status = list(selectors.line_item_list(advertiser=advertiser, sort="status"))
    assert by_status[-1] == second  # active first, then paused
    creatives = selectors.creative_list(advertiser=advertiser, campaign_id=tenancy.campaign.pk)
    assert list(creatives) == [tenancy.creative]
    rival = selectors.creative_list(advertiser=advertiser, campaign_id=tenancy.rival_campaign.pk)
    assert list(rival) == []
