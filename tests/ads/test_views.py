"""The advertiser web app: tenancy and roles on every page, the forms' writes and errors,
and the htmx status buttons."""

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.urls import reverse
from django.utils import timezone

from ads.forms import CampaignForm, add_service_errors
from ads.models import Campaign, Creative, DeliveryStatus, LineItem, Membership
from tests.factories import (
    CampaignFactory,
    CreativeFactory,
    GenreFactory,
    LineItemFactory,
    MembershipFactory,
    TitleFactory,
)

pytestmark = pytest.mark.django_db

# (URL name, the tenancy attribute of the object in the URL, or None). The account's home page,
# `overview`, is the analytics dashboard: tests/analytics/test_dashboards.py.
READ_PAGES = [
    ("campaigns", None),
    ("campaign_detail", "campaign"),
    ("line_items", None),
    ("line_item_detail", "line_item"),
    ("creatives", None),
    ("creative_detail", "creative"),
]
FORM_PAGES = [
    ("campaign_new", None),
    ("campaign_edit", "campaign"),
    ("line_item_new", None),
    ("line_item_edit", "line_item"),
    ("creative_new", None),
    ("creative_edit", "creative"),
]
STATUS_PAGES = [
    ("campaign_status", "campaign"),
    ("line_item_status", "line_item"),
    ("creative_status", "creative"),
]
PAGES_WITH_IDS = [page for page in READ_PAGES + FORM_PAGES + STATUS_PAGES if page[1]]
EDITORS = ["owner", "manager"]
WRITABLE = [Campaign, LineItem, Creative]


@pytest.fixture
def named(tenancy):
    """Give every row a distinct name, so that "absent from the HTML" means something."""
    for attr, name in [
        ("campaign", "Acme summer refresh"),
        ("line_item", "Acme evenings flight"),
        ("rival_campaign", "Globex EV reveal"),
        ("rival_line_item", "Globex commuters flight"),
    ]:
        item = getattr(tenancy, attr)
        type(item).objects.filter(pk=item.pk).update(name=name)
        item.refresh_from_db()
    return tenancy


def url(tenancy, name, attr=None, *, slug=None):
    args = [slug or tenancy.advertiser.slug]
    if attr:
        args.append(getattr(tenancy, attr).pk)
    return reverse(name, args=args)


def campaign_data(**changes):
    data = {
        "name": "Acme winter push",
        "objective": Campaign.Objective.CONSIDERATION,
        "start_date": "2020-01-01",
        "end_date": "2030-12-31",
    }
    return {**data, **changes}


def line_item_data(tenancy, **changes):
    data = {
        "campaign": tenancy.campaign.pk,
        "name": "Acme late flight",
        "start_at": "2030-01-15T09:30",
        "end_at": "2030-07-01T18:00",
        "pricing": LineItem.Pricing.CPC,
        "bid": "1.25",
        "daily_budget": "200.00",
        "lifetime_budget": "9000.00",
        "pacing": LineItem.Pacing.ASAP,
        "frequency_cap_hour": "1",
        "frequency_cap_day": "3",
        "frequency_cap_lifetime": "",
    }
    return {**data, **changes}


def creative_data(tenancy, **changes):
    data = {
        "line_item": tenancy.line_item.pk,
        "name": "Acme fizz 15",
        "duration_seconds": "15",
        "media_url": "https://cdn.acme.example/fizz15.mp4",
        "click_url": "https://acme.example/fizz",
        "category": Creative.Category.BEVERAGES,
    }
    return {**data, **changes}


def valid_data(tenancy, name):
    if name.startswith("campaign"):
        return campaign_data()
    if name.startswith("line_item"):
        return line_item_data(tenancy)
    return creative_data(tenancy)


def htmx_post(client, path, data):
    return client.post(path, data, headers={"HX-Request": "true"})


# Who may see what


@pytest.mark.parametrize("role", ["owner", "manager", "analyst"])
@pytest.mark.parametrize(("name", "attr"), READ_PAGES)
def test_members_read_every_page(client, named, role, name, attr):
    client.force_login(getattr(named, role))
    response = client.get(url(named, name, attr))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme Sodas" in html
    if attr:
        assert getattr(named, attr).name in html


@pytest.mark.parametrize("role", EDITORS)
@pytest.mark.parametrize(("name", "attr"), FORM_PAGES)
def test_editors_open_every_form(client, tenancy, role, name, attr):
    client.force_login(getattr(tenancy, role))
    response = client.get(url(tenancy, name, attr))
    assert response.status_code == 200
    assert "<form" in response.content.decode()


@pytest.mark.parametrize("role", EDITORS)
@pytest.mark.parametrize(("name", "attr"), FORM_PAGES)
def test_editors_save_every_form(client, tenancy, role, name, attr):
    client.force_login(getattr(tenancy, role))
    data = valid_data(tenancy, name)
    response = client.post(url(tenancy, name, attr), data)
    assert response.status_code == 302
    kind = name.rsplit("_", 1)[0]
    model = {"campaign": Campaign, "line_item": LineItem, "creative": Creative}[kind]
    saved = model.objects.get(name=data["name"])
    assert response.url == reverse(f"{kind}_detail", args=["acme", saved.pk])
    assert saved.advertiser == tenancy.advertiser
    if attr:  # an edit changes the row in place
        assert saved.pk == getattr(tenancy, attr).pk


@pytest.mark.parametrize("role", EDITORS)
@pytest.mark.parametrize(("name", "attr"), STATUS_PAGES)
def test_editors_pause_every_kind(client, tenancy, role, name, attr):
    client.force_login(getattr(tenancy, role))
    response = client.post(url(tenancy, name, attr), {"status": "paused"})
    assert response.status_code == 302
    item = getattr(tenancy, attr)
    assert response.url == url(tenancy, f"{attr}_detail", attr)
    item.refresh_from_db()
    assert item.status == DeliveryStatus.PAUSED


@pytest.mark.parametrize(("name", "attr"), FORM_PAGES)
def test_analyst_gets_403_on_every_form(client, tenancy, name, attr):
    client.force_login(tenancy.analyst)
    counts = (Campaign.objects.count(), LineItem.objects.count(), Creative.objects.count())
    assert client.get(url(tenancy, name, attr)).status_code == 403
    assert client.post(url(tenancy, name, attr), valid_data(tenancy, name)).status_code == 403
    assert (Campaign.objects.count(), LineItem.objects.count(), Creative.objects.count()) == counts
    if attr:
        item = getattr(tenancy, attr)
        assert type(item).objects.get(pk=item.pk).name == item.name


@pytest.mark.parametrize(("name", "attr"), STATUS_PAGES)
def test_analyst_gets_403_on_every_status_change(client, tenancy, name, attr):
    client.force_login(tenancy.analyst)
    assert client.post(url(tenancy, name, attr), {"status": "archived"}).status_code == 403
    assert htmx_post(client, url(tenancy, name, attr), {"status": "paused"}).status_code == 403
    item = getattr(tenancy, attr)
    item.refresh_from_db()
    assert item.status == DeliveryStatus.ACTIVE


def test_analyst_sees_no_write_buttons(client, tenancy):
    client.force_login(tenancy.analyst)
    for name, attr in READ_PAGES:
        html = client.get(url(tenancy, name, attr)).content.decode()
        assert "hx-post" not in html
        assert "/new/" not in html
        assert "/edit/" not in html


def test_editor_sees_the_write_buttons(client, tenancy):
    client.force_login(tenancy.manager)
    html = client.get(url(tenancy, "campaigns")).content.decode()
    assert url(tenancy, "campaign_new") in html
    assert f'hx-post="{url(tenancy, "campaign_status", "campaign")}"' in html
    assert "hx-confirm=" in html  # archiving asks first
    html = client.get(url(tenancy, "campaign_detail", "campaign")).content.decode()
    assert url(tenancy, "campaign_edit", "campaign") in html


@pytest.mark.parametrize(("name", "attr"), READ_PAGES + FORM_PAGES + STATUS_PAGES)
def test_outsider_gets_404_for_this_account_and_changes_nothing(client, tenancy, name, attr):
    def every_row():
        return [list(model.objects.order_by("pk").values()) for model in WRITABLE]

    before = every_row()
    client.force_login(tenancy.outsider)
    path = url(tenancy, name, attr)
    assert client.get(path).status_code == 404
    # Data the form would accept from a member: refused for the account, not for the input.
    data = valid_data(tenancy, name) | {"status": "archived", "name": "Hijacked"}
    assert client.post(path, data).status_code == 404
    # A 404 after a write would still have written: every field of every row is as it was.
    assert every_row() == before
    if attr:
        item = getattr(tenancy, attr)
        item.refresh_from_db()
        assert item.status == DeliveryStatus.ACTIVE


def test_unknown_account_is_404(client, tenancy):
    client.force_login(tenancy.owner)
    assert client.get(reverse("campaigns", args=["no-such-account"])).status_code == 404


def test_inactive_account_is_404(client, tenancy):
    tenancy.advertiser.is_active = False
    tenancy.advertiser.save()
    client.force_login(tenancy.owner)
    assert client.get(url(tenancy, "campaigns")).status_code == 404


@pytest.mark.parametrize(("name", "attr"), PAGES_WITH_IDS)
def test_rival_ids_under_this_account_are_404(client, tenancy, name, attr):
    client.force_login(tenancy.owner)
    path = url(tenancy, name, f"rival_{attr}")
    get_status = 405 if name.endswith("_status") else 404  # status URLs are POST-only
    assert client.get(path).status_code == get_status
    assert client.post(path, {"status": "archived", **valid_data(tenancy, name)}).status_code == 404
    rival_item = getattr(tenancy, f"rival_{attr}")
    rival_item.refresh_from_db()
    assert rival_item.status == DeliveryStatus.ACTIVE


@pytest.mark.parametrize(("name", "attr"), PAGES_WITH_IDS)
def test_this_accounts_ids_under_the_rivals_slug_are_404(client, tenancy, name, attr):
    client.force_login(tenancy.outsider)
    path = url(tenancy, name, attr, slug=tenancy.rival.slug)
    assert client.get(path).status_code == (405 if name.endswith("_status") else 404)
    assert client.post(path, {"status": "archived"}).status_code == 404


@pytest.mark.parametrize(
    ("name", "attr"), [("accounts", None), *READ_PAGES, *FORM_PAGES, *STATUS_PAGES]
)
def test_anonymous_is_sent_to_login(client, tenancy, name, attr):
    path = reverse("accounts") if name == "accounts" else url(tenancy, name, attr)
    for response in (client.get(path), client.post(path, {"status": "archived"})):
        assert response.status_code == 302
        assert response.url == f"{reverse('login')}?next={path}"


@pytest.mark.parametrize("name", ["campaigns", "line_items", "creatives"])
def test_lists_never_show_the_rivals_rows(client, named, name):
    client.force_login(named.owner)
    html = client.get(url(named, name) + "?archived=1").content.decode()
    for rival_name in ("Globex", "Globex EV reveal", "Globex commuters flight"):
        assert rival_name not in html
    assert "Globex launch spot" not in html


def test_forms_offer_only_this_accounts_live_parents(client, named):
    CampaignFactory(advertiser=named.advertiser, name="Acme old", status=DeliveryStatus.ARCHIVED)
    client.force_login(named.owner)
    html = client.get(url(named, "line_item_new")).content.decode()
    assert "Acme summer refresh" in html
    assert "Acme old" not in html
    assert "Globex EV reveal" not in html
    html = client.get(url(named, "creative_new")).content.decode()
    assert "Acme evenings flight" in html
    assert "Globex commuters flight" not in html


# Account list


def test_account_list_shows_each_account_with_the_users_role(client, tenancy):
    MembershipFactory(advertiser=tenancy.rival, user=tenancy.manager, role="analyst")
    client.force_login(tenancy.manager)
    response = client.get(reverse("accounts"))
    assert response.status_code == 200
    accounts = [(advertiser.name, role) for advertiser, role in response.context["accounts"]]
    assert accounts == [("Acme Sodas", "Manager"), ("Globex Motors", "Analyst (read-only)")]


def test_account_list_of_an_outsider_hides_other_accounts(client, tenancy):
    client.force_login(tenancy.outsider)
    html = client.get(reverse("accounts")).content.decode()
    assert "Globex Motors" in html
    assert "Acme Sodas" not in html


def test_logout_is_a_post_button_and_login_page_renders(client, tenancy):
    client.force_login(tenancy.owner)
    html = client.get(url(tenancy, "campaigns")).content.decode()
    assert f'action="{reverse("logout")}"' in html
    assert client.post(reverse("logout")).status_code == 302
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert 'name="password"' in response.content.decode()


# Creating and editing


def test_create_campaign(client, tenancy):
    client.force_login(tenancy.manager)
    response = client.post(url(tenancy, "campaign_new"), campaign_data())
    campaign = Campaign.objects.get(name="Acme winter push")
    assert response.url == reverse("campaign_detail", args=["acme", campaign.pk])
    assert campaign.advertiser == tenancy.advertiser
    assert campaign.objective == Campaign.Objective.CONSIDERATION
    assert str(campaign.start_date) == "2020-01-01"
    assert str(campaign.end_date) == "2030-12-31"
    assert campaign.status == DeliveryStatus.ACTIVE


def test_create_line_item_reads_times_in_the_accounts_time_zone(client, tenancy):
    drama, comedy = GenreFactory(name="Drama"), GenreFactory(name="Comedy")
    included, excluded = TitleFactory(name="Heat"), TitleFactory(name="Ronin")
    client.force_login(tenancy.owner)
    data = line_item_data(
        tenancy,
        target_regions=["us_west", "us_south"],
        target_devices=["ctv"],
        target_age_bands=["25_34", "35_44"],
        target_maturity_ratings=["PG", "PG-13"],
        target_dayparts=["primetime"],
        target_genres=[drama.pk],
        include_titles=[included.pk],
        exclude_titles=[excluded.pk],
    )
    response = client.post(url(tenancy, "line_item_new"), data)
    assert response.status_code == 302
    line_item = LineItem.objects.get(name="Acme late flight")
    assert line_item.advertiser == tenancy.advertiser
    assert line_item.campaign == tenancy.campaign
    # New York: UTC-5 in January, UTC-4 (daylight time) in July.
    assert line_item.start_at == datetime(2030, 1, 15, 14, 30, tzinfo=UTC)
    assert line_item.end_at == datetime(2030, 7, 1, 22, 0, tzinfo=UTC)
    assert line_item.pricing == LineItem.Pricing.CPC
    assert line_item.bid == Decimal("1.25")
    assert line_item.daily_budget == Decimal("200.00")
    assert line_item.lifetime_budget == Decimal("9000.00")
    assert line_item.pacing == LineItem.Pacing.ASAP
    assert (line_item.frequency_cap_hour, line_item.frequency_cap_day) == (1, 3)
    assert line_item.frequency_cap_lifetime is None
    assert sorted(line_item.target_regions) == ["us_south", "us_west"]
    assert line_item.target_devices == ["ctv"]
    assert sorted(line_item.target_age_bands) == ["25_34", "35_44"]
    assert sorted(line_item.target_maturity_ratings) == ["PG", "PG-13"]
    assert line_item.target_dayparts == ["primetime"]
    assert list(line_item.target_genres.all()) == [drama]
    assert comedy not in line_item.target_genres.all()
    assert list(line_item.include_titles.all()) == [included]
    assert list(line_item.exclude_titles.all()) == [excluded]


def test_line_item_page_shows_times_in_the_accounts_time_zone(client, tenancy):
    LineItem.objects.filter(pk=tenancy.line_item.pk).update(
        start_at=datetime(2030, 1, 15, 14, 30, tzinfo=UTC), target_devices=["ctv"]
    )
    client.force_login(tenancy.analyst)
    html = client.get(url(tenancy, "line_item_detail", "line_item")).content.decode()
    assert "2030-01-15 09:30" in html
    assert "14:30" not in html
    assert "Connected TV" in html  # targeting shown by label
    html = client.get(url(tenancy, "line_items")).content.decode()
    assert "2030-01-15 09:30" in html


def test_edit_form_shows_the_stored_time_in_the_accounts_time_zone(client, tenancy):
    LineItem.objects.filter(pk=tenancy.line_item.pk).update(
        start_at=datetime(2030, 1, 15, 14, 30, tzinfo=UTC)
    )
    client.force_login(tenancy.owner)
    html = client.get(url(tenancy, "line_item_edit", "line_item")).content.decode()
    assert 'type="datetime-local" name="start_at" value="2030-01-15T09:30"' in html


def test_create_creative(client, tenancy):
    client.force_login(tenancy.owner)
    response = client.post(url(tenancy, "creative_new"), creative_data(tenancy))
    creative = Creative.objects.get(name="Acme fizz 15")
    assert response.url == reverse("creative_detail", args=["acme", creative.pk])
    assert creative.advertiser == tenancy.advertiser
    assert creative.line_item == tenancy.line_item
    assert creative.duration_seconds == 15
    assert creative.media_url == "https://cdn.acme.example/fizz15.mp4"
    assert creative.click_url == "https://acme.example/fizz"
    assert creative.category == Creative.Category.BEVERAGES


def test_create_forms_preselect_the_parent_from_the_query(client, tenancy):
    client.force_login(tenancy.owner)
    path = url(tenancy, "line_item_new") + f"?campaign={tenancy.campaign.pk}"
    assert client.get(path).context["form"]["campaign"].value() == str(tenancy.campaign.pk)
    path = url(tenancy, "creative_new") + f"?line_item={tenancy.line_item.pk}"
    assert client.get(path).context["form"]["line_item"].value() == str(tenancy.line_item.pk)


def test_edit_campaign(client, tenancy):
    client.force_login(tenancy.owner)
    data = campaign_data(name="Acme renamed", start_date="2020-01-01", end_date="")
    response = client.post(url(tenancy, "campaign_edit", "campaign"), data)
    assert response.status_code == 302
    tenancy.campaign.refresh_from_db()
    assert tenancy.campaign.name == "Acme renamed"
    assert tenancy.campaign.end_date is None


def test_edit_line_item_changes_targeting(client, tenancy):
    client.force_login(tenancy.owner)
    data = line_item_data(tenancy, start_at="2030-02-01T20:00", target_dayparts=["late_night"])
    response = client.post(url(tenancy, "line_item_edit", "line_item"), data)
    assert response.status_code == 302
    tenancy.line_item.refresh_from_db()
    assert tenancy.line_item.target_dayparts == ["late_night"]
    assert tenancy.line_item.start_at == datetime(2030, 2, 2, 1, 0, tzinfo=UTC)


# Validation errors: shown on the page, status 200, nothing saved


@pytest.mark.parametrize(
    ("name", "changes", "field", "message"),
    [
        (
            "campaign_new",
            {"start_date": "2030-05-01", "end_date": "2030-04-01"},
            "end_date",
            "The end date must be on or after the start date.",
        ),
        (
            "line_item_new",
            {"end_at": "2030-01-15T09:00"},
            "end_at",
            "The end must be after the start.",
        ),
        ("line_item_new", {"bid": "0"}, "bid", "Must be greater than zero."),
        ("line_item_new", {"bid": "-3"}, "bid", "Must be greater than zero."),
        (
            "line_item_new",
            {"daily_budget": "500", "lifetime_budget": "100"},
            "daily_budget",
            "The daily budget cannot exceed the lifetime budget.",
        ),
        (
            "line_item_new",
            {"frequency_cap_hour": "5", "frequency_cap_day": "2"},
            "frequency_cap_day",
            "A cap over a longer period cannot be lower than a shorter one",
        ),
        (
            "creative_new",
            {"click_url": "ftp://acme.example/fizz"},
            "click_url",
            "Enter an http:// or https:// URL.",
        ),
    ],
)
def test_validation_errors_show_on_their_field(client, tenancy, name, changes, field, message):
    client.force_login(tenancy.owner)
    data = {**valid_data(tenancy, name), **changes}
    counts = (Campaign.objects.count(), LineItem.objects.count(), Creative.objects.count())
    response = client.post(url(tenancy, name), data)
    assert response.status_code == 200
    assert any(message in error for error in response.context["form"].errors[field])
    assert message.replace("'", "&#x27;") in response.content.decode()
    assert (Campaign.objects.count(), LineItem.objects.count(), Creative.objects.count()) == counts


def test_another_accounts_campaign_in_the_line_item_form_is_an_error(client, tenancy):
    client.force_login(tenancy.owner)
    data = line_item_data(tenancy, campaign=tenancy.rival_campaign.pk)
    response = client.post(url(tenancy, "line_item_new"), data)
    assert response.status_code == 200
    assert "Select a valid choice" in response.context["form"].errors["campaign"][0]
    assert not LineItem.objects.filter(name="Acme late flight").exists()
    assert tenancy.rival_campaign.line_items.count() == 1


def test_another_accounts_line_item_in_the_creative_form_is_an_error(client, tenancy):
    client.force_login(tenancy.owner)
    data = creative_data(tenancy, line_item=tenancy.rival_line_item.pk)
    response = client.post(url(tenancy, "creative_new"), data)
    assert response.status_code == 200
    assert "Select a valid choice" in response.context["form"].errors["line_item"][0]
    assert not Creative.objects.filter(name="Acme fizz 15").exists()


def test_an_archived_campaign_is_not_offered_for_a_line_item(client, tenancy):
    Campaign.objects.filter(pk=tenancy.campaign.pk).update(status=DeliveryStatus.ARCHIVED)
    client.force_login(tenancy.owner)
    response = client.post(url(tenancy, "line_item_new"), line_item_data(tenancy))
    assert response.status_code == 200
    assert "campaign" in response.context["form"].errors
    assert not LineItem.objects.filter(name="Acme late flight").exists()


def test_a_service_error_shows_on_the_form(client, tenancy):
    # Included-and-excluded is checked by the service only: the form passes it through.
    title = TitleFactory(name="Heat")
    client.force_login(tenancy.owner)
    data = line_item_data(tenancy, include_titles=[title.pk], exclude_titles=[title.pk])
    response = client.post(url(tenancy, "line_item_new"), data)
    assert response.status_code == 200
    assert response.context["form"].errors["exclude_titles"] == [
        "A title cannot be both included and excluded."
    ]
    assert not LineItem.objects.filter(name="Acme late flight").exists()


def test_service_errors_land_on_the_field_or_above_the_form():
    form = CampaignForm(campaign_data())
    assert form.is_valid()
    add_service_errors(
        form,
        ValidationError(
            {"name": "Too loud.", "budget": "Not here.", NON_FIELD_ERRORS: ["Whole thing."]}
        ),
    )
    assert form.errors["name"] == ["Too loud."]
    assert form.non_field_errors() == ["budget: Not here.", "Whole thing."]


@pytest.mark.parametrize(("name", "attr"), [p for p in FORM_PAGES if p[1]])
def test_editing_an_archived_item_shows_an_error(client, tenancy, name, attr):
    item = getattr(tenancy, attr)
    type(item).objects.filter(pk=item.pk).update(status=DeliveryStatus.ARCHIVED)
    client.force_login(tenancy.owner)
    assert "is archived" in client.get(url(tenancy, name, attr)).content.decode()
    data = {**valid_data(tenancy, name), "name": "Renamed while archived"}
    response = client.post(url(tenancy, name, attr), data)
    assert response.status_code == 200
    assert "is archived; it cannot change." in response.content.decode()
    assert type(item).objects.get(pk=item.pk).name == item.name


# Status actions


def test_status_buttons_pause_resume_and_archive(client, named):
    client.force_login(named.owner)
    path = url(named, "campaign_status", "campaign")
    campaigns = url(named, "campaigns")
    for status in ("paused", "active", "archived"):
        response = client.post(path, {"status": status, "next": campaigns})
        assert response.status_code == 302
        assert response.url == campaigns
        named.campaign.refresh_from_db()
        assert named.campaign.status == status
    # Archived rows leave the list unless asked for.
    assert list(client.get(campaigns).context["campaigns"]) == []
    assert "Acme summer refresh" in client.get(campaigns + "?archived=1").content.decode()


def test_status_redirect_ignores_an_offsite_next(client, tenancy):
    client.force_login(tenancy.owner)
    path = url(tenancy, "creative_status", "creative")
    response = client.post(path, {"status": "paused", "next": "https://evil.example/"})
    assert response.url == url(tenancy, "creative_detail", "creative")


@pytest.mark.parametrize(("name", "attr"), STATUS_PAGES)
def test_htmx_status_change_returns_only_the_row(client, tenancy, name, attr):
    client.force_login(tenancy.manager)
    response = htmx_post(client, url(tenancy, name, attr), {"status": "paused", "fragment": "row"})
    assert response.status_code == 200
    html = response.content.decode().strip()
    item = getattr(tenancy, attr)
    assert html.startswith(f'<tr id="{attr.replace("_", "-")}-{item.pk}">')
    assert html.endswith("</tr>")
    assert "<html" not in html and "<nav" not in html
    assert 'class="badge badge-paused"' in html
    assert ">Resume<" in html
    item.refresh_from_db()
    assert item.status == DeliveryStatus.PAUSED


def test_htmx_status_change_on_a_detail_page_returns_the_panel(client, tenancy):
    client.force_login(tenancy.owner)
    path = url(tenancy, "line_item_status", "line_item")
    response = htmx_post(client, path, {"status": "archived", "fragment": "panel"})
    html = response.content.decode().strip()
    assert html.startswith('<div class="status-panel">')
    assert 'class="badge badge-archived"' in html
    assert "hx-post" not in html  # nothing left to do with an archived item
    assert "/edit/" not in html


def test_htmx_row_keeps_the_list_counts(client, tenancy):
    client.force_login(tenancy.owner)
    path = url(tenancy, "campaign_status", "campaign")
    response = htmx_post(client, path, {"status": "paused", "fragment": "row"})
    assert response.context["campaign"].line_item_count == 1


def test_status_change_of_an_archived_item_shows_the_error(client, tenancy):
    Creative.objects.filter(pk=tenancy.creative.pk).update(status=DeliveryStatus.ARCHIVED)
    client.force_login(tenancy.owner)
    path = url(tenancy, "creative_status", "creative")
    response = client.post(path, {"status": "active"}, follow=True)
    assert response.status_code == 200
    assert "is archived; it cannot change." in response.content.decode()
    response = htmx_post(client, path, {"status": "active", "fragment": "row"})
    assert response.status_code == 200
    assert "is archived; it cannot change." in response.content.decode()
    tenancy.creative.refresh_from_db()
    assert tenancy.creative.status == DeliveryStatus.ARCHIVED


def test_an_unknown_status_is_an_error_not_a_500(client, tenancy):
    client.force_login(tenancy.owner)
    path = url(tenancy, "campaign_status", "campaign")
    response = client.post(path, {"status": "deleted"}, follow=True)
    assert response.status_code == 200
    assert "Unknown status" in response.content.decode()
    tenancy.campaign.refresh_from_db()
    assert tenancy.campaign.status == DeliveryStatus.ACTIVE


def test_status_urls_are_post_only(client, tenancy):
    client.force_login(tenancy.owner)
    assert client.get(url(tenancy, "campaign_status", "campaign")).status_code == 405


# Query counts


def test_campaign_list_queries_stay_bounded(client, tenancy, django_assert_max_num_queries):
    for campaign in CampaignFactory.create_batch(30, advertiser=tenancy.advertiser):
        LineItemFactory(campaign=campaign)
    client.force_login(tenancy.owner)
    # Session, user, membership with its account, the count for the pages, a page of campaigns
    # with their counts and budgets, their line items for the delivery: no N+1.
    with django_assert_max_num_queries(6):
        response = client.get(url(tenancy, "campaigns"), {"sort": "-budget", "q": "campaign"})
    assert len(response.context["campaigns"]) == 25
    assert all(campaign.delivery is not None for campaign in response.context["campaigns"])
    with django_assert_max_num_queries(6):
        response = client.get(url(tenancy, "campaigns"), {"sort": "-budget", "page": "2"})
    assert len(response.context["campaigns"]) == 6


def test_line_item_and_creative_lists_queries_stay_bounded(
    client, tenancy, django_assert_max_num_queries
):
    LineItemFactory.create_batch(30, campaign=tenancy.campaign)
    CreativeFactory.create_batch(30, line_item=tenancy.line_item)
    client.force_login(tenancy.owner)
    # Session, user, membership, the count, a page of rows, the campaigns of the filter menu,
    # and with ?campaign= that campaign: the delivery is a counter read, not a query.
    with django_assert_max_num_queries(6):
        page = client.get(url(tenancy, "line_items"), {"sort": "start"}).context["line_items"]
    assert len(page) == 25
    with django_assert_max_num_queries(7):
        response = client.get(
            url(tenancy, "line_items"), {"campaign": tenancy.campaign.pk, "status": "active"}
        )
    assert len(response.context["line_items"]) == 25
    with django_assert_max_num_queries(6):
        assert len(client.get(url(tenancy, "creatives")).context["creatives"]) == 25
    with django_assert_max_num_queries(7):
        response = client.get(url(tenancy, "creatives"), {"campaign": tenancy.campaign.pk})
    assert len(response.context["creatives"]) == 25


def test_membership_is_checked_per_account(client, tenancy):
    # A manager of Acme who is an analyst at Globex may not write there.
    MembershipFactory(advertiser=tenancy.rival, user=tenancy.manager, role="analyst")
    client.force_login(tenancy.manager)
    rival_new = reverse("campaign_new", args=[tenancy.rival.slug])
    assert client.get(rival_new).status_code == 403
    assert client.get(url(tenancy, "campaign_new")).status_code == 200
    assert Membership.objects.filter(user=tenancy.manager).count() == 2


# An htmx status change updates everything it changes on a detail page (out-of-band swaps)


def oob(html: str, element_id: str) -> str:
    """The out-of-band element `element_id` of an htmx response, up to its closing tag."""
    start = html.index(f'id="{element_id}"')
    tag = html[html.rindex("<", 0, start) + 1 :].split(" ", 1)[0]
    return html[start : html.index(f"</{tag}>\n", start)]


def status_change_on_page(client, tenancy, attr, status, *, page_query=""):
    page = url(tenancy, f"{attr}_detail", attr) + page_query
    data = {"status": status, "fragment": "panel", "next": page}
    response = htmx_post(client, url(tenancy, f"{attr}_status", attr), data)
    assert response.status_code == 200
    return response.content.decode()


def test_htmx_pause_and_resume_on_a_line_item_page_update_its_delivery_checks(client, tenancy):
    client.force_login(tenancy.manager)
    html = status_change_on_page(client, tenancy, "line_item", "paused")
    assert 'id="delivery-checks" hx-swap-oob="innerHTML"' in html
    checks = oob(html, "delivery-checks")
    assert (
        '<th scope="row">Status</th>\n'
        '          <td><span class="badge badge-blocked">Blocks delivery</span></td>\n'
        "          <td>The line item is paused.</td>"
    ) in checks
    assert "Not in the decision index yet" not in checks

    html = status_change_on_page(client, tenancy, "line_item", "active")
    checks = oob(html, "delivery-checks")
    assert (
        '<th scope="row">Status</th>\n'
        '          <td><span class="badge badge-active">OK</span></td>\n'
        "          <td>The line item and its campaign are active.</td>"
    ) in checks


def test_htmx_archive_on_a_line_item_page_updates_checks_and_creatives(client, tenancy):
    client.force_login(tenancy.owner)
    page = client.get(url(tenancy, "line_item_detail", "line_item")).content.decode()
    assert "Add creative" in page and 'id="line-item-creatives"' in page

    html = status_change_on_page(client, tenancy, "line_item", "archived")
    checks = oob(html, "delivery-checks")
    assert "<td>The line item is archived.</td>" in checks
    assert "decision index" not in checks  # the status says why it is not there
    creatives = oob(html, "line-item-creatives")
    assert creatives.startswith('id="line-item-creatives" aria-labelledby="creatives-heading"')
    assert 'hx-swap-oob="true"' in creatives
    assert "Add creative" not in creatives
    assert "No creatives (archived ones are hidden)." in creatives  # archiving reached them


def test_htmx_archive_on_a_campaign_page_removes_add_line_item(client, tenancy):
    client.force_login(tenancy.owner)
    html = status_change_on_page(client, tenancy, "campaign", "paused")
    line_items = oob(html, "campaign-line-items")
    assert "Add line item" in line_items  # a paused campaign still takes line items
    assert f'id="line-item-{tenancy.line_item.pk}"' in line_items

    html = status_change_on_page(client, tenancy, "campaign", "archived", page_query="?archived=1")
    assert html.strip().startswith('<div class="status-panel">')
    line_items = oob(html, "campaign-line-items")
    assert 'hx-swap-oob="true"' in line_items
    assert "Add line item" not in line_items
    # The page shows archived rows (?archived=1): the line item is there, archived, no actions.
    row = oob(line_items, f"line-item-{tenancy.line_item.pk}")
    assert '<span class="badge badge-archived">Archived</span>' in row
    assert "hx-post" not in row


def test_detail_pages_carry_the_ids_the_status_change_swaps(client, tenancy):
    client.force_login(tenancy.analyst)
    campaign_page = client.get(url(tenancy, "campaign_detail", "campaign")).content.decode()
    assert '<section id="campaign-line-items"' in campaign_page
    assert 'class="striped list-table in-campaign"' in campaign_page  # no campaign column
    line_item_page = client.get(url(tenancy, "line_item_detail", "line_item")).content.decode()
    assert '<div id="delivery-checks" hx-get=' in line_item_page
    assert '<section id="line-item-creatives"' in line_item_page


# The line item form: sections, currency, the title picker, a prefilled start, the preview


def test_line_item_form_in_sections_with_currency_and_the_preview(client, tenancy):
    tenancy.advertiser.currency = "EUR"
    tenancy.advertiser.save()
    client.force_login(tenancy.owner)
    response = client.get(url(tenancy, "line_item_new"))
    html = response.content.decode()
    sections = re.findall(r'<fieldset class="form-section[^"]*">\s*<legend>([^<]+)<', html)
    assert sections == [
        "Flight",
        "Price and budget",
        "Frequency caps (empty: no cap)",
        "Audience",
        "Titles",
    ]
    assert html.count('class="form-section wide"') == 2
    for label in ("Bid (EUR)", "Daily budget (EUR)", "Lifetime budget (EUR)"):
        assert label in html
    assert html.count("data-title-picker") == 2
    assert "js/title_picker.js" in html
    assert f'hx-get="{reverse("line_item_reach", args=["acme"])}"' in html
    assert 'hx-include="#item-form"' in html
    # No asset from another host.
    assert not re.search(r'(src|href)="https?://', html)


def test_new_line_item_starts_at_the_next_full_hour_in_the_accounts_zone(client, tenancy):
    client.force_login(tenancy.owner)
    html = client.get(url(tenancy, "line_item_new")).content.decode()
    local = timezone.localtime(timezone.now(), tenancy.advertiser.tzinfo)
    starts = {
        (local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)).strftime(
            "%Y-%m-%dT%H:%M"
        )
        for hours in (1, 2)  # the hour may turn while the test runs
    }
    value = re.search(r'name="start_at" value="([^"]+)"', html).group(1)
    assert value in starts


def test_new_line_item_of_a_later_campaign_starts_with_it(client, tenancy):
    later = CampaignFactory(advertiser=tenancy.advertiser, start_date=date(2031, 2, 1))
    client.force_login(tenancy.owner)
    html = client.get(url(tenancy, "line_item_new") + f"?campaign={later.pk}").content.decode()
    assert 'name="start_at" value="2031-02-01T00:00"' in html


def test_edit_form_previews_with_its_campaign(client, tenancy):
    client.force_login(tenancy.manager)
    html = client.get(url(tenancy, "line_item_edit", "line_item")).content.decode()
    assert f'hx-vals=\'{{"campaign": "{tenancy.campaign.pk}"}}\'' in html


# A creative's page previews it


def test_creative_page_previews_the_video_with_a_placeholder(client, tenancy):
    client.force_login(tenancy.analyst)
    html = client.get(url(tenancy, "creative_detail", "creative")).content.decode()
    creative = tenancy.creative
    assert f'<video src="{creative.media_url}"' in html
    assert 'preload="metadata"' in html
    poster = html[html.index("data-poster>") : html.index("</figure>")]
    assert creative.name in poster and "30 s" in poster and "Beverages" in poster
    assert f'href="{creative.click_url}"' in html
    # The only URL from elsewhere the page names is the creative's own (and its link).
    foreign = set(re.findall(r'(?:src|href)="(https?://[^"]+)"', html))
    assert foreign == {creative.media_url, creative.click_url}
    assert 'poster="' not in html
