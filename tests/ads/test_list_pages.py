"""The list pages: search, filters and sort in the query string (kept by every link), pages,
delivery against goal with its badge, and their tenancy."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from ads.delivery import keys
from ads.delivery.counters import Bump, counters
from ads.models import DeliveryStatus
from ads.selectors import MICROS
from tests.factories import CampaignFactory, CreativeFactory, LineItemFactory

pytestmark = pytest.mark.django_db

LISTS = ["campaigns", "line_items", "creatives"]


def url(name, slug="acme"):
    return reverse(name, args=[slug])


def names(response, kind):
    return [item.name for item in response.context[kind]]


@pytest.mark.parametrize("name", LISTS)
def test_search_finds_names(client, tenancy, name):
    own = {"campaigns": tenancy.campaign, "line_items": tenancy.line_item}
    own = own.get(name, tenancy.creative)
    client.force_login(tenancy.analyst)  # a read: analysts too
    response = client.get(url(name), {"q": own.name.upper()[2:]})
    assert response.status_code == 200
    assert response.context[name] == [own]
    assert client.get(url(name), {"q": "nothing like it"}).context[name] == []
    assert "match." in client.get(url(name), {"q": "nothing like it"}).content.decode()


def test_filter_by_status_and_campaign(client, tenancy):
    other = CampaignFactory(advertiser=tenancy.advertiser, name="Acme autumn")
    paused = LineItemFactory(campaign=other, name="Paused flight", status=DeliveryStatus.PAUSED)
    CreativeFactory(line_item=paused, name="Paused spot")
    client.force_login(tenancy.owner)
    response = client.get(url("line_items"), {"status": "paused"})
    assert names(response, "line_items") == ["Paused flight"]
    response = client.get(url("line_items"), {"campaign": tenancy.campaign.pk})
    assert [item.pk for item in response.context["line_items"]] == [tenancy.line_item.pk]
    response = client.get(url("creatives"), {"campaign": other.pk})
    assert names(response, "creatives") == ["Paused spot"]
    # The menu lists the account's campaigns only, the chosen one selected.
    html = response.content.decode()
    assert f'<option value="{other.pk}" selected>Acme autumn</option>' in html
    assert tenancy.rival_campaign.name not in html


def test_archived_rows_need_asking_for(client, tenancy):
    LineItemFactory(campaign=tenancy.campaign, name="Old flight", status=DeliveryStatus.ARCHIVED)
    client.force_login(tenancy.owner)
    assert "Old flight" not in names(client.get(url("line_items")), "line_items")
    assert "Old flight" in names(client.get(url("line_items"), {"archived": "1"}), "line_items")
    assert names(client.get(url("line_items"), {"status": "archived"}), "line_items") == [
        "Old flight"
    ]


def test_sort_by_budget_both_ways_and_the_header_links(client, tenancy):
    LineItemFactory(campaign=tenancy.campaign, name="Small", daily_budget=Decimal("5"))
    LineItemFactory(campaign=tenancy.campaign, name="Big", daily_budget=Decimal("4000"))
    client.force_login(tenancy.owner)
    response = client.get(url("line_items"), {"sort": "budget", "q": "l"})
    assert names(response, "line_items") == ["Small", tenancy.line_item.name]
    html = response.content.decode()
    # The header asks for the other way next, keeping the search; the filter form keeps the sort.
    assert 'href="?sort=-budget&amp;q=l"' in html
    assert '<option value="budget" selected>' in html
    response = client.get(url("line_items"), {"sort": "-budget"})
    assert names(response, "line_items")[0] == "Big"


def test_unknown_sort_and_status_are_named_not_fatal(client, tenancy):
    client.force_login(tenancy.owner)
    response = client.get(url("campaigns"), {"sort": "price", "status": "gone"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Unknown sort “price”" in html and "Unknown status “gone”" in html
    assert len(response.context["campaigns"]) == 1


def test_pages_keep_the_query(client, tenancy):
    LineItemFactory.create_batch(30, campaign=tenancy.campaign, name="Acme bulk")
    client.force_login(tenancy.owner)
    response = client.get(url("line_items"), {"q": "bulk", "sort": "name"})
    assert len(response.context["line_items"]) == 25
    html = response.content.decode()
    next_link = re.search(r'href="([^"]+)" rel="next"', html).group(1)
    assert "q=bulk" in next_link and "sort=name" in next_link and "page=2" in next_link
    response = client.get(url("line_items") + next_link.replace("&amp;", "&"))
    assert len(response.context["line_items"]) == 5
    assert "Page 2 of 2 · 30 in all" in response.content.decode()
    # A page that is no page shows the last one, not an error.
    assert client.get(url("line_items"), {"q": "bulk", "page": "99"}).status_code == 200


def test_rows_show_delivery_against_goal_with_a_badge(client, tenancy):
    line_item = tenancy.line_item
    line_item.daily_budget = Decimal("100.00")
    line_item.lifetime_budget = Decimal("1000.00")
    line_item.save()
    local_today = timezone.localtime(timezone.now(), tenancy.advertiser.tzinfo).date()
    counters().add_many(
        [
            Bump(keys.spent_day(line_item.pk, local_today), 100 * MICROS),
            Bump(keys.spent_lifetime(line_item.pk), 250 * MICROS),
        ]
    )
    client.force_login(tenancy.owner)
    for name in LISTS:
        html = client.get(url(name)).content.decode()
        assert "$100.00" in html  # spent today
        assert "25 % of lifetime budget used" in html
        # The whole daily budget spent before the day is over: ahead of the even curve
        # (unless the test runs in the account's last minutes, when it is on track).
        assert re.search(r'badge-(ahead|on_track)">(Ahead|On track)<', html)


def test_a_behind_line_item_says_so(client, tenancy):
    # Nothing spent, half a day's budget due: behind, unless the account's day just began.
    local = timezone.localtime(timezone.now(), tenancy.advertiser.tzinfo)
    if local.hour < 1:
        pytest.skip("the even target is still within the slack right after midnight")
    client.force_login(tenancy.owner)
    html = client.get(url("line_items")).content.decode()
    assert 'badge-behind">Behind<' in html


@pytest.mark.parametrize("name", LISTS)
def test_outsider_gets_404_for_a_filtered_list(client, tenancy, name):
    client.force_login(tenancy.outsider)
    assert client.get(url(name), {"q": "Acme", "sort": "name"}).status_code == 404
    # Its own list, filtered by the other account's campaign: 404 like that campaign's page.
    if name != "campaigns":
        response = client.get(url(name, "globex"), {"campaign": tenancy.campaign.pk})
        assert response.status_code == 404
        assert client.get(url(name, "globex"), {"campaign": "one"}).status_code == 404
        ok = client.get(url(name, "globex"), {"campaign": tenancy.rival_campaign.pk})
        assert ok.status_code == 200 and len(ok.context[name]) == 1
