"""Site-wide pages: the API docs, the favicon, the error pages, where a login lands."""

import logging
import re

import pytest
from django.http import HttpResponse
from django.utils.log import log_response
from django.views.defaults import server_error

from tests.factories import PASSWORD, UserFactory


def asset_urls(html: str) -> list[str]:
    return re.findall(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="([^"]+)"', html)


@pytest.mark.django_db
def test_api_docs_load_swagger_ui_from_static_files_not_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    urls = asset_urls(response.content.decode())
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in urls
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css" in urls
    # Swagger UI's start-up script is the page's own (?script), not a CDN's.
    assert all(url.startswith(("/static/", "/api/docs/?script")) for url in urls), urls
    assert client.get(urls[0]).status_code == 200


def test_favicon_is_linked_and_favicon_ico_leads_to_it(client):
    login_page = client.get("/login/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in login_page
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == "/static/favicon.svg"
    svg = client.get("/static/favicon.svg")
    assert svg.status_code == 200
    assert b"<svg" in b"".join(svg.streaming_content)


def test_a_403_shows_its_reason_on_a_styled_page_and_logs_one_line(client, tenancy, caplog):
    client.force_login(tenancy.analyst)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get(f"/a/{tenancy.advertiser.slug}/campaigns/new/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "<title>Not allowed · Interlude</title>" in page
    assert '<p class="error-reason">Your role in this account is read-only.</p>' in page
    assert 'href="/static/css/app.css"' in page  # the site's layout, not Django's bare page
    forbidden = [r for r in caplog.records if r.getMessage().startswith("Forbidden")]
    assert len(forbidden) == 1
    assert forbidden[0].exc_info is None
    # Only root's handler prints django's records (Django's own console handler printed a copy).
    assert logging.getLogger("django").handlers == []
    assert logging.getLogger("django.request").handlers == []


def test_a_server_error_keeps_its_traceback_in_the_log(rf, caplog):
    response = HttpResponse(status=500)
    try:
        raise RuntimeError("boom")
    except RuntimeError as error:
        with caplog.at_level(logging.ERROR, logger="django.request"):
            log_response("Server error", response=response, request=rf.get("/"), exception=error)
    assert caplog.records[-1].exc_info is not None


@pytest.mark.django_db
def test_a_404_says_what_was_not_found(client, tenancy):
    client.force_login(tenancy.owner)
    response = client.get(f"/a/{tenancy.rival.slug}/campaigns/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "<title>Not found · Interlude</title>" in page
    assert '<p class="error-reason">No such account.</p>' in page
    assert f"<code>/a/{tenancy.rival.slug}/campaigns/</code>" in page

    unknown = client.get("/no-such-page/").content.decode()
    assert '<p class="error-reason">No page has this address.</p>' in unknown  # not "Resolver404"


def test_the_500_page_renders_without_a_request_context(rf):
    response = server_error(rf.get("/"))
    assert response.status_code == 500
    page = response.content.decode()
    assert "<h1>Something went wrong on our side</h1>" in page
    assert 'href="/static/css/app.css"' in page


def test_the_500_page_renders_when_the_static_files_were_not_collected(rf, settings, tmp_path):
    """Production's manifest storage refuses a file it has no entry for: the page that reports
    an error must not fail on that itself (it then names the unhashed files)."""
    settings.STATIC_ROOT = tmp_path  # no staticfiles.json: nothing was collected
    settings.STORAGES = settings.STORAGES | {
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}
    }
    response = server_error(rf.get("/"))
    assert response.status_code == 500
    assert 'href="/static/css/app.css"' in response.content.decode()


@pytest.mark.django_db
def test_staff_without_an_account_land_on_the_staff_dashboard_after_login(client):
    UserFactory(username="admin", is_staff=True, is_superuser=True)
    response = client.post("/login/", {"username": "admin", "password": PASSWORD}, follow=True)
    assert response.redirect_chain == [("/a/", 302), ("/staff/", 302)]
    assert response.status_code == 200
    assert "not a member of any" not in response.content.decode()


def test_members_land_on_their_accounts_after_login_staff_or_not(client, tenancy):
    tenancy.manager.is_staff = True
    tenancy.manager.save()
    for user in (tenancy.owner, tenancy.manager):
        client.logout()
        data = {"username": user.username, "password": PASSWORD}
        response = client.post("/login/", data, follow=True)
        assert response.redirect_chain == [("/a/", 302)]
        assert [account.slug for account, _ in response.context["accounts"]] == ["acme"]


@pytest.mark.django_db
def test_an_api_path_no_route_matches_answers_the_apis_json_error(client):
    response = client.get("/api/v1/campaigns/not-a-number")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
