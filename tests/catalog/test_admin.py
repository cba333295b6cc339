"""Staff manage the catalog in Django admin: titles with their ad breaks inline, viewers."""

import pytest
from django.contrib.auth.models import User

from catalog.models import AdBreak, Title
from tests.factories import AdBreakFactory, GenreFactory, TitleFactory, ViewerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    admin_user = User.objects.create_superuser("staff", "staff@example.com", "pw")
    client.force_login(admin_user)
    return client


def test_staff_create_a_title_with_ad_breaks_inline(staff_client):
    drama = GenreFactory(name="Drama", slug="drama")
    response = staff_client.post(
        "/admin/catalog/title/add/",
        {
            "external_id": "house:1",
            "name": "The Long Night",
            "year": "2024",
            "kind": "series",
            "genres": [drama.pk],
            "maturity_rating": "R",
            "duration_seconds": "3000",
            "ad_breaks-TOTAL_FORMS": "2",
            "ad_breaks-INITIAL_FORMS": "0",
            "ad_breaks-0-offset_seconds": "0",
            "ad_breaks-0-max_pod_duration_seconds": "60",
            "ad_breaks-1-offset_seconds": "1500",
            "ad_breaks-1-max_pod_duration_seconds": "120",
        },
    )
    assert response.status_code == 302, response.content
    title = Title.objects.get(external_id="house:1")
    assert (title.kind, title.maturity_rating, list(title.genres.all())) == ("series", "R", [drama])
    offsets = list(title.ad_breaks.values_list("offset_seconds", "max_pod_duration_seconds"))
    assert offsets == [(0, 60), (1500, 120)]


def test_an_ad_break_after_the_end_of_the_title_is_a_form_error(staff_client):
    title = TitleFactory(duration_seconds=1200)
    response = staff_client.post(
        "/admin/catalog/adbreak/add/",
        {"title": title.pk, "offset_seconds": "1200", "max_pod_duration_seconds": "90"},
    )
    assert response.status_code == 200
    assert "The break must start before the title ends (1200 s)." in response.content.decode()
    assert not AdBreak.objects.exists()


def test_title_list_searches_and_filters(staff_client):
    TitleFactory(name="Heat", maturity_rating="R")
    TitleFactory(name="Toy Story", maturity_rating="G")
    AdBreakFactory(title__name="Heatwave")
    response = staff_client.get("/admin/catalog/title/", {"q": "heat"})
    names = {title.name for title in response.context["cl"].result_list}
    assert names == {"Heat", "Heatwave"}
    response = staff_client.get("/admin/catalog/title/", {"maturity_rating__exact": "G"})
    assert [title.name for title in response.context["cl"].result_list] == ["Toy Story"]


def test_viewer_list_filters_kids_profiles(staff_client):
    ViewerFactory(external_id="grown-up")
    ViewerFactory(external_id="little-one", is_kids=True, age_band="under_18")
    response = staff_client.get("/admin/catalog/viewer/", {"is_kids__exact": "1"})
    assert [viewer.external_id for viewer in response.context["cl"].result_list] == ["little-one"]


def test_every_admin_changelist_renders(staff_client):
    AdBreakFactory()
    ViewerFactory()
    for path in [
        "/admin/catalog/genre/",
        "/admin/catalog/title/",
        "/admin/catalog/adbreak/",
        "/admin/catalog/viewer/",
        "/admin/ads/advertiser/",
        "/admin/ads/membership/",
        "/admin/ads/campaign/",
        "/admin/ads/lineitem/",
        "/admin/ads/creative/",
        "/admin/engagement/rating/",
    ]:
        assert staff_client.get(path).status_code == 200, path
