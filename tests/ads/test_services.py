"""The rules a person would expect of campaigns, line items and creatives, each with its message."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from ads import services
from ads.models import Campaign, DeliveryStatus, LineItem, daypart_at
from tests.factories import CampaignFactory, TitleFactory

pytestmark = pytest.mark.django_db
UTC = ZoneInfo("UTC")


def line_item_fields(campaign: Campaign, **overrides) -> dict:
    fields = {
        "advertiser": campaign.advertiser,
        "campaign": campaign,
        "name": "Spring flight",
        "start_at": datetime(2026, 3, 1, 12, tzinfo=UTC),
        "end_at": datetime(2026, 3, 31, 12, tzinfo=UTC),
        "bid": Decimal("20"),
        "daily_budget": Decimal("100"),
        "lifetime_budget": Decimal("1000"),
    }
    return fields | overrides


def errors_of(excinfo) -> dict[str, list[str]]:
    return excinfo.value.message_dict


@pytest.fixture
def campaign(tenancy):
    return CampaignFactory(advertiser=tenancy.advertiser, start_date=date(2026, 3, 1))


def test_campaign_end_before_start_is_refused(tenancy):
    with pytest.raises(ValidationError) as excinfo:
        services.campaign_create(
            advertiser=tenancy.advertiser,
            name="Backwards",
            start_date=date(2026, 5, 2),
            end_date=date(2026, 5, 1),
        )
    assert errors_of(excinfo) == {"end_date": ["The end date must be on or after the start date."]}
    assert not Campaign.objects.filter(name="Backwards").exists()


def test_campaign_create_saves_the_fields(tenancy):
    campaign = services.campaign_create(
        advertiser=tenancy.advertiser,
        name="Summer",
        start_date=date(2026, 6, 1),
        end_date=date(2026, 6, 30),
        objective=Campaign.Objective.CONVERSION,
    )
    campaign.refresh_from_db()
    assert (campaign.advertiser, campaign.name, campaign.objective, campaign.status) == (
        tenancy.advertiser,
        "Summer",
        "conversion",
        "active",
    )


def test_line_item_end_must_follow_start(campaign):
    fields = line_item_fields(campaign, end_at=datetime(2026, 3, 1, 12, tzinfo=UTC))
    with pytest.raises(ValidationError) as excinfo:
        services.line_item_create(**fields)
    assert errors_of(excinfo)["end_at"] == ["The end must be after the start."]


@pytest.mark.parametrize("field", ["bid", "daily_budget", "lifetime_budget"])
@pytest.mark.parametrize("value", [Decimal("0"), Decimal("-5")])
def test_bid_and_budgets_must_be_positive(campaign, field, value):
    with pytest.raises(ValidationError) as excinfo:
        services.line_item_create(**line_item_fields(campaign, **{field: value}))
    assert "Must be greater than zero." in errors_of(excinfo)[field]
    assert not LineItem.objects.filter(campaign=campaign).exists()


def test_daily_budget_cannot_exceed_lifetime(campaign):
    fields = line_item_fields(campaign, daily_budget=Decimal("2000"))
    with pytest.raises(ValidationError) as excinfo:
        services.line_item_create(**fields)
    assert errors_of(excinfo)["daily_budget"] == [
        "The daily budget cannot exceed the lifetime budget."
    ]


def test_line_item_campaign_must_belong_to_the_same_advertiser(tenancy, campaign):
    fields = line_item_fields(campaign, advertiser=tenancy.rival)
    with pytest.raises(ValidationError) as excinfo:
        services.line_item_create(**fields)
    assert errors_of(excinfo)["campaign"] == ["The campaign belongs to another advertiser."]


def test_line_item_flight_stays_within_its_campaign(campaign):
    campaign.end_date = date(2026, 3, 15)
    campaign.save()
    fields = line_item_fields(campaign, start_at=datetime(2026, 2, 27, 12, tzinfo=UTC))
    with pytest.raises(ValidationError) as excinfo:
        services.line_item_create(**fields)
    assert errors_of(excinfo) == {
        "start_at": ["The line item cannot start before its campaign."],
        "end_at": ["The line item cannot end after its campaign."],
    }


def test_frequency_caps_must_grow_with_the_period(campaign):
    fields = line_item_fields(campaign, frequency_cap_hour=3, frequency_cap_day=2)
    with pytest.raises(ValidationError) as excinfo:
        services.line_item_create(**fields)
    assert errors_of(excinfo)["frequency_cap_day"] == [
        "A cap over a longer period cannot be lower than a shorter one's."
    ]


def test_unknown_targeting_values_are_named(campaign):
    fields = line_item_fields(campaign, target_devices=["ctv", "toaster"])
    with pytest.raises(ValidationError) as excinfo:
        services.line_item_create(**fields)
    assert errors_of(excinfo)["target_devices"] == ["Unknown value(s): toaster."]


def test_a_title_cannot_be_included_and_excluded(campaign):
    title = TitleFactory()
    fields = line_item_fields(campaign, include_titles=[title], exclude_titles=[title])
    with pytest.raises(ValidationError) as excinfo:
        services.line_item_create(**fields)
    assert errors_of(excinfo)["exclude_titles"] == ["A title cannot be both included and excluded."]


def test_line_item_create_saves_targeting(campaign):
    included, excluded = TitleFactory(), TitleFactory()
    line_item = services.line_item_create(
        **line_item_fields(
            campaign,
            pricing=LineItem.Pricing.CPC,
            target_regions=["us_west", "intl"],
            target_dayparts=["primetime"],
            include_titles=[included],
            exclude_titles=[excluded],
            frequency_cap_day=3,
        )
    )
    line_item.refresh_from_db()
    assert line_item.pricing == "cpc"
    assert line_item.target_regions == ["us_west", "intl"]
    assert line_item.target_dayparts == ["primetime"]
    assert list(line_item.include_titles.all()) == [included]
    assert list(line_item.exclude_titles.all()) == [excluded]
    assert line_item.frequency_cap_day == 3


def test_line_item_update_keeps_the_targeting_rule(tenancy):
    title = TitleFactory()
    services.line_item_update(line_item=tenancy.line_item, include_titles=[title])
    with pytest.raises(ValidationError):
        services.line_item_update(line_item=tenancy.line_item, exclude_titles=[title])
    assert list(tenancy.line_item.exclude_titles.all()) == []


@pytest.mark.parametrize(
    "click_url", ["ftp://brand.example.com/", "javascript:alert(1)", "brand.example.com"]
)
def test_creative_click_url_must_be_http(tenancy, click_url):
    with pytest.raises(ValidationError) as excinfo:
        services.creative_create(
            advertiser=tenancy.advertiser,
            line_item=tenancy.line_item,
            name="Bad link",
            media_url="https://cdn.example.com/a.mp4",
            click_url=click_url,
            category="beverages",
        )
    assert "Enter an http:// or https:// URL." in errors_of(excinfo)["click_url"]


def test_creative_duration_is_15_30_or_60(tenancy):
    with pytest.raises(ValidationError) as excinfo:
        services.creative_create(
            advertiser=tenancy.advertiser,
            line_item=tenancy.line_item,
            name="Too long",
            media_url="https://cdn.example.com/a.mp4",
            click_url="https://brand.example.com/",
            category="beverages",
            duration_seconds=45,
        )
    assert errors_of(excinfo)["duration_seconds"] == ["Value 45 is not a valid choice."]


def test_creative_line_item_must_belong_to_the_same_advertiser(tenancy):
    with pytest.raises(ValidationError) as excinfo:
        services.creative_create(
            advertiser=tenancy.advertiser,
            line_item=tenancy.rival_line_item,
            name="Cross-account",
            media_url="https://cdn.example.com/a.mp4",
            click_url="https://brand.example.com/",
            category="beverages",
        )
    assert errors_of(excinfo)["line_item"] == ["The line item belongs to another advertiser."]


def test_archiving_is_final(tenancy):
    services.delivery_status_set(item=tenancy.campaign, status=DeliveryStatus.PAUSED)
    services.delivery_status_set(item=tenancy.campaign, status=DeliveryStatus.ARCHIVED)
    with pytest.raises(ValidationError) as excinfo:
        services.delivery_status_set(item=tenancy.campaign, status=DeliveryStatus.ACTIVE)
    assert excinfo.value.messages == [
        f"The campaign “{tenancy.campaign.name}” is archived; it cannot change."
    ]
    with pytest.raises(ValidationError):
        services.campaign_update(campaign=tenancy.campaign, name="Renamed")
    tenancy.campaign.refresh_from_db()
    assert (tenancy.campaign.status, tenancy.campaign.name) == ("archived", tenancy.campaign.name)


def test_unknown_status_is_refused(tenancy):
    with pytest.raises(ValidationError) as excinfo:
        services.delivery_status_set(item=tenancy.creative, status="deleted")
    assert errors_of(excinfo) == {"status": ["Unknown status 'deleted'."]}


@pytest.mark.parametrize(
    ("hour", "daypart"),
    [
        (5, "late_night"),
        (6, "morning"),
        (11, "morning"),
        (12, "daytime"),
        (17, "primetime"),
        (22, "primetime"),
        (23, "late_night"),
        (0, "late_night"),
    ],
)
def test_daypart_boundaries(hour, daypart):
    assert daypart_at(datetime(2026, 1, 1, hour, 30)) == daypart


def test_archiving_a_campaign_archives_what_hangs_below(tenancy):
    services.delivery_status_set(item=tenancy.campaign, status=DeliveryStatus.ARCHIVED)
    tenancy.line_item.refresh_from_db()
    tenancy.creative.refresh_from_db()
    assert (tenancy.line_item.status, tenancy.creative.status) == ("archived", "archived")
    tenancy.rival_creative.refresh_from_db()
    assert tenancy.rival_creative.status == "active"


def test_nothing_resumes_under_an_archived_line_item(tenancy):
    services.delivery_status_set(item=tenancy.creative, status=DeliveryStatus.PAUSED)
    LineItem.objects.filter(pk=tenancy.line_item.pk).update(status=DeliveryStatus.ARCHIVED)
    tenancy.creative.refresh_from_db()
    with pytest.raises(ValidationError) as excinfo:
        services.delivery_status_set(item=tenancy.creative, status=DeliveryStatus.ACTIVE)
    assert excinfo.value.messages == [
        f"The line item “{tenancy.line_item.name}” is archived; it cannot change."
    ]


def test_campaign_dates_must_keep_holding_its_line_items(tenancy):
    campaign = tenancy.campaign
    with pytest.raises(ValidationError) as excinfo:
        services.campaign_update(campaign=campaign, start_date=date.today() + timedelta(days=30))
    assert errors_of(excinfo)["start_date"] == [
        f"These line items would fall outside the campaign's dates: {tenancy.line_item.name}."
    ]
    campaign.refresh_from_db()
    assert campaign.start_date == date.today() - timedelta(days=7)


def test_line_item_update_refuses_unknown_fields(tenancy):
    with pytest.raises(ValidationError) as excinfo:
        services.line_item_update(line_item=tenancy.line_item, daily_budjet=Decimal("1"))
    assert errors_of(excinfo) == {"daily_budjet": ["This field cannot be changed here."]}
