"""Site-wide pages: the API docs, the favicon, the error pages, where a login lands."""

import re

import pytest


def asset_urls(html: str) -> list[str]:
    return re.findall(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="([^"]+)"', html)


@pytest.mark.django_db
def test_api_docs_load_swagger_ui_from_static_files_not_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    urls = asset_urls(response.content.decode())
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in urls
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css" in urls
    assert all(url.startswith("/static/") for url in urls), urls
    assert client.get(urls[0]).status_code == 200
