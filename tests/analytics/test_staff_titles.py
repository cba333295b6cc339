"""The staff title page: its retention curve, breaks and recommendation from the stored
analysis; the apply form (staff only, recorded, bad input a form error); the executive
dashboard's worst breaks."""

import json

import pytest
from django.urls import reverse

from catalog.models import AdBreak
from engagement import services
from engagement.models import AdBreakChange, BreakPlacement
from tests.analytics.test_staff import PageReader
from tests.engagement.test_placement import DAY, title_with_sessions  # noqa: F401
from tests.factories import TitleFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return UserFactory(username="sam", is_staff=True)


@pytest.fixture
def analysed(title_with_sessions):  # noqa: F811
    title, breaks = title_with_sessions
    services.break_placement_analyse(day=DAY)
    return title, breaks, BreakPlacement.objects.get()


def page(title) -> str:
    return reverse("staff_title", args=[title.pk])


def test_the_page_shows_the_curve_the_breaks_and_the_recommendation(client, staff, analysed):
    title, breaks, placement = analysed
    client.force_login(staff)
    response = client.get(page(title))
    assert response.status_code == 200
    html = response.content.decode()
    tables = PageReader(html).tables
    rows = tables["breaks"][1:]
    assert [row[:6] for row in rows] == [
        ["20:00", "181", "5.52%", "6.08%", "0.57%", "5.51%"],
        ["40:00", "135", "5.19%", "8.89%", "1.47%", "7.42%"],
    ]
    assert rows[0][7] == "Keep the break at 20:00"
    # At 32:00 the content's 0.63 % and the other break's 5.52 % during its ads (no catalog
    # line here): an earlier version expected 2.78 %, as if the ads there lost nobody.
    assert rows[1][7].startswith(
        "Move the break at 40:00 to 32:00 (leaving at or just after it 8.89% → 6.15%"
    )
    # 10 + 7 of the 200 left during the ads; at 32:00 the 159 watching that far lose 5.52 %.
    assert (
        "Leaving during a break's ads: 8.50% of sessions now, 9.39% expected with the "
        "recommendation" in " ".join(html.split())
    )
    chart = json.loads(html.split('id="retention-chart" type="application/json">')[1].split("<")[0])
    assert chart["curve"][20] == pytest.approx(181 / 200)
    assert [point["minute"] for point in chart["breaks"]] == [20, 40]
    assert [point["minute"] for point in chart["moves"]] == [32]
    assert tables["changes"][1:] == [["None yet."]]


def test_an_analysis_stored_before_the_figure_counted_the_ads_says_what_it_counts(
    client, staff, analysed
):
    """Analyses stored before session 10 hold the leavers at or just after a break under the
    same keys: the page names that figure until the next night's analysis replaces them."""
    title, _, placement = analysed
    for item in placement.analysis["breaks"]:
        del item["left_during_ads"]
    placement.save()
    client.force_login(staff)
    html = " ".join(client.get(page(title)).content.decode().split())
    assert "Leaving at or just after a break (an analysis made before" in html
    assert "Leaving during a break's ads" not in html


def test_apply_changes_the_breaks_and_records_who(client, staff, analysed):
    title, breaks, placement = analysed
    client.force_login(staff)
    response = client.post(page(title), {"placement": placement.pk, "breaks": [str(breaks[2].pk)]})
    assert response.status_code == 302
    assert AdBreak.objects.get(pk=breaks[2].pk).offset_seconds == 32 * 60
    change = AdBreakChange.objects.get()
    assert (change.changed_by, change.placement) == (staff, placement)
    changes = PageReader(client.get(page(title)).content.decode()).tables["changes"][1:]
    assert [row[1:] for row in changes] == [["sam", "0:00, 20:00, 40:00", "0:00, 20:00, 32:00"]]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Choose at least one recommendation to apply."),
        ({"breaks": ["999999"]}, "Select a valid choice."),
        ({"breaks": ["keep"]}, "Select a valid choice."),
        ({"placement": "0"}, "A newer analysis of this title has arrived"),
        ({"placement": "x"}, "Enter a whole number."),
    ],
)
def test_bad_input_is_a_form_error_and_changes_nothing(client, staff, analysed, data, message):
    title, breaks, placement = analysed
    client.force_login(staff)
    body = {"placement": placement.pk} | ({"breaks": [breaks[2].pk]} if data else {}) | data
    response = client.post(page(title), body)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert AdBreak.objects.get(pk=breaks[2].pk).offset_seconds == 2400
    assert not AdBreakChange.objects.exists()


def test_a_stale_analysis_is_refused_with_its_reason(client, staff, analysed):
    title, breaks, placement = analysed
    AdBreak.objects.filter(pk=breaks[1].pk).update(offset_seconds=1500)  # edited in admin
    client.force_login(staff)
    response = client.post(page(title), {"placement": placement.pk, "breaks": [breaks[2].pk]})
    assert response.status_code == 400
    assert "changed since this analysis" in response.content.decode()
    assert not AdBreakChange.objects.exists()


def test_only_staff_see_or_apply(client, tenancy, analysed):
    title, breaks, placement = analysed
    body = {"placement": placement.pk, "breaks": [breaks[2].pk]}
    response = client.get(page(title))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert client.post(page(title), body).status_code == 302
    for user in (tenancy.owner, tenancy.outsider):  # an account's owner, another account's
        client.force_login(user)
        assert client.get(page(title)).status_code == 404
        assert client.post(page(title), body).status_code == 404
    assert AdBreak.objects.get(pk=breaks[2].pk).offset_seconds == 2400
    assert not AdBreakChange.objects.exists()


def test_a_title_without_analysis_or_unknown(client, staff):
    client.force_login(staff)
    quiet = TitleFactory()
    response = client.get(page(quiet))
    assert response.status_code == 200
    assert "needs at least 50 sessions of this title" in response.content.decode()  # MIN_SESSIONS
    assert client.post(page(quiet), {"placement": 1}).status_code == 404
    assert client.get(reverse("staff_title", args=[999_999])).status_code == 404


def test_the_executive_dashboard_lists_the_worst_breaks(
    client, staff, analysed, django_assert_max_num_queries
):
    title, breaks, placement = analysed
    client.force_login(staff)
    with django_assert_max_num_queries(8):  # 6 for the figures, 2 for the worst breaks
        html = client.get(reverse("staff_dashboard")).content.decode()
    rows = PageReader(html).tables["worst-breaks"][1:]
    assert rows == [
        [title.name, "40:00", "8.89%", "1.47%", "7.42%", "move to 32:00"],
        [title.name, "20:00", "6.08%", "0.57%", "5.51%", "keep"],
    ]
    assert reverse("staff_title", args=[title.pk]) in html
