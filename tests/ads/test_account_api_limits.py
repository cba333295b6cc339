"""The API's errors and limits: one envelope for every error, throttling per account key (429
with Retry-After, counted in the cache: Redis when configured), the body size limit, JSON
bodies only, and a schema that documents what each operation answers, with examples that
succeed against the demo world."""

from io import StringIO

import pytest
import yaml
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client

from ads import services
from ads.account_api.base import MAX_BODY_BYTES
from ads.models import Campaign, LineItem
from tests.ads.conftest import rebuild
from tests.ads.test_account_api import api_client, campaign_body, patch, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def writer(tenancy):
    return api_client(tenancy, "write")


def test_throttled_per_key_with_retry_after(settings, tenancy, writer):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"account_key": "3/min"},
    }
    other = api_client(tenancy, "read")
    for _ in range(3):
        assert writer.get("/api/v1/campaigns").status_code == 200
    refused = writer.get("/api/v1/campaigns")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert refused.json()["error"]["code"] == "throttled"
    refused = post(writer, "/api/v1/campaigns", campaign_body())
    assert refused.status_code == 429  # writes count too, and are not made
    assert not Campaign.objects.filter(name="Winter Warmers").exists()
    # Per key: another key of the same account has its own count.
    assert other.get("/api/v1/campaigns").status_code == 200
    # Counted in the cache every process shares (Redis when REDIS_URL is set).
    key_id = writer.get("/api/v1/campaigns").wsgi_request.user.key.pk
    assert len(cache.get(f"throttle_account_key_{key_id}")) == 3


def test_a_body_over_the_limit_is_a_413_in_the_envelope(writer, tenancy):
    padding = "x" * MAX_BODY_BYTES
    refused = post(writer, "/api/v1/campaigns", campaign_body(name=padding))
    assert refused.status_code == 413
    assert refused.json()["error"] == {
        "code": "too_large",
        "message": f"The request body is larger than {MAX_BODY_BYTES:,} bytes.",
        "fields": {},
    }
    # Just under the limit is read, and judged on its fields.
    name = "x" * (MAX_BODY_BYTES - 200)
    judged = post(writer, "/api/v1/campaigns", campaign_body(name=name))
    assert (judged.status_code, list(judged.json()["error"]["fields"])) == (400, ["name"])


def test_only_json_bodies_are_taken(writer, tenancy):
    form = writer.post("/api/v1/campaigns", {"name": "Form"})  # multipart, as a form posts
    assert form.status_code == 415
    assert form.json()["error"]["code"] == "unsupported_media_type"
    _, platform_key = services.platform_key_create(name="Player")
    player = Client(HTTP_AUTHORIZATION=f"Bearer {platform_key}")
    for path in ("/api/v1/decisions", "/api/v1/events"):
        refused = player.post(path, {"events": "x"})
        assert refused.status_code == 415, path
    assert not Campaign.objects.filter(name="Form").exists()


def test_errors_carry_their_headers_in_the_envelope(tenancy):
    anonymous = Client().get("/api/v1/campaigns")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Bearer"
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    bad_json = post(
        api_client(tenancy, "write"), "/api/v1/campaigns", None
    )  # an empty body is an empty object
    assert bad_json.status_code == 400
    garbled = api_client(tenancy, "write").post(
        "/api/v1/campaigns", "{not json", content_type="application/json"
    )
    assert (garbled.status_code, garbled.json()["error"]["code"]) == (400, "parse_error")


# The schema --------------------------------------------------------------------------------


def schema(client) -> dict:
    return yaml.safe_load(client.get("/api/schema/").content)


ACCOUNT_PREFIXES = ("/api/v1/campaigns", "/api/v1/line_items", "/api/v1/creatives")


def test_the_schema_documents_every_status_each_operation_can_answer(client):
    paths = schema(client)["paths"]
    for path, operations in paths.items():
        if not path.startswith("/api/v1/") or path in ("/api/v1/decisions", "/api/v1/events"):
            continue
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "429"} <= codes, (method, path)
            assert ("403" in codes) == (method != "get"), (method, path)  # a read key writing
            if "{id}" in path or method == "get":
                assert "404" in codes or path.endswith(("campaigns", "creatives")), (method, path)
            if method in ("post", "patch") and operation.get("requestBody"):
                assert {"400", "413", "415"} <= codes, (method, path)
                assert set(operation["requestBody"]["content"]) == {"application/json"}
            if method == "patch" or path.endswith(("pause", "resume", "archive")):
                assert "412" in codes and any(
                    p["name"] == "If-Match" for p in operation["parameters"]
                ), (method, path)
            if method == "post" and path.startswith(ACCOUNT_PREFIXES) and "{id}" not in path:
                assert "409" in codes and any(
                    p["name"] == "Idempotency-Key" for p in operation["parameters"]
                ), path
    for path in ("/api/v1/decisions", "/api/v1/events"):
        body = paths[path]["post"]["requestBody"]["content"]
        assert set(body) == {"application/json"}, path  # no form bodies advertised
        assert set(paths[path]["post"]["responses"]) == {"200", "400", "401", "415"}, path
    reports = paths["/api/v1/reports/delivery"]["get"]["responses"]["200"]["content"]
    assert set(reports) == {"application/json", "text/csv"}


def test_every_schema_example_succeeds_against_the_demo_world(client, django_db_reset_sequences):
    """Seeded from empty, as `make demo` seeds (fewer titles and viewers): the examples' ids
    are the demo's first campaign, line item, title and break, and its first viewer."""
    call_command(
        "seed_demo", titles=12, viewers=40, no_progress=True, stdout=StringIO(), stderr=StringIO()
    )
    rebuild()  # as the server does when it starts after the seeding
    campaign = Campaign.objects.get(pk=1)
    assert LineItem.objects.get(pk=1).advertiser == campaign.advertiser
    owner = campaign.advertiser.memberships.get(role="owner").user
    _, account_key = services.account_key_create(
        advertiser=campaign.advertiser, created_by=owner, name="Examples", scope="write"
    )
    _, platform_key = services.platform_key_create(name="Examples")
    tried = []
    for path, operations in schema(client)["paths"].items():
        for method, operation in operations.items():
            content = (operation.get("requestBody") or {}).get("content", {})
            for example in content.get("application/json", {}).get("examples", {}).values():
                key = (
                    platform_key if path in ("/api/v1/decisions", "/api/v1/events") else account_key
                )
                response = getattr(client, method)(
                    path,
                    example["value"],
                    content_type="application/json",
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert response.status_code in (200, 201), (path, response.content)
                if path == "/api/v1/decisions":
                    assert response.json()["reason"] != "unknown_viewer"
                tried.append(path)
    assert sorted(tried) == [
        "/api/v1/campaigns",
        "/api/v1/creatives",
        "/api/v1/decisions",
        "/api/v1/events",
        "/api/v1/insights/questions",
        "/api/v1/line_items",
    ]


HUGE = 2**64


def test_hostile_input_is_a_4xx_in_the_envelope_never_a_500(writer, tenancy):
    """What a fuzzer sends: ids past the database's range (PostgreSQL refuses them in a query),
    null characters and lone surrogates (it refuses them in text), bodies that are not objects,
    forged cursors."""
    line_item = tenancy.line_item.pk
    requests = [
        ("get", f"/api/v1/campaigns/{HUGE}", None, 404),
        ("patch", f"/api/v1/line_items/{HUGE}", {"name": "x"}, 404),
        ("post", f"/api/v1/creatives/{HUGE}/pause", {}, 404),
        ("get", f"/api/v1/line_items/{HUGE}/delivery", None, 404),
        ("get", f"/api/v1/creatives?campaign={HUGE}", None, 400),
        ("get", f"/api/v1/reports/delivery?line_item={HUGE}", None, 400),
        ("post", "/api/v1/line_items", {"campaign": HUGE}, 400),
        ("patch", f"/api/v1/line_items/{line_item}", {"include_titles": [HUGE]}, 400),
        ("patch", f"/api/v1/line_items/{line_item}", {"name": "a\x00b"}, 400),
        ("patch", f"/api/v1/line_items/{line_item}", {"name": "a\ud800b"}, 400),
        ("patch", f"/api/v1/line_items/{line_item}", [1, 2], 400),
        ("post", "/api/v1/campaigns", "just a string", 400),
        ("post", "/api/v1/insights/questions", {"question": "q", "conversation": HUGE}, 400),
    ]
    for method, url, body, expected in requests:
        if method == "get":
            response = writer.get(url)
        else:
            response = getattr(writer, method)(url, body, content_type="application/json")
        assert response.status_code == expected, (method, url, body, response.content)
        assert set(response.json()["error"]) == {"code", "message", "fields"}
    # A cursor whose position is an id past the range.
    import base64

    cursor = base64.b64encode(f"p={HUGE}".encode()).decode()
    assert writer.get(f"/api/v1/campaigns?cursor={cursor}").status_code == 404
    tenancy.line_item.refresh_from_db()
    assert tenancy.line_item.name != "a\x00b"


def test_a_path_under_the_api_that_names_no_operation_is_the_envelopes_404(writer):
    # As a real client: no CSRF cookie, and the checks on (the test client turns them off).
    strict = Client(enforce_csrf_checks=True, **writer.defaults)
    for path in ("/api/v1/campaigns/null,null", "/api/v1/nothing", "/api/v1/line_items/1/x"):
        for response in (writer.get(path), patch(strict, path, {"name": "x"})):
            assert response.status_code == 404, path
            assert response.json()["error"]["message"] == "No such API route."
        response = writer.get(path)
        assert response.json()["error"] == {
            "code": "not_found",
            "message": "No such API route.",
            "fields": {},
        }


def test_options_is_not_an_operation(writer):
    """DRF's OPTIONS metadata is not documented (the schema is): a 405 in the envelope, also
    when `?format=csv` picks the reports' CSV renderer."""
    for path in ("/api/v1/campaigns", "/api/v1/reports/delivery?format=csv"):
        response = writer.options(path)
        assert response.status_code == 405, path
        assert response.json()["error"]["code"] == "method_not_allowed"
