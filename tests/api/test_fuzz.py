"""schemathesis against the API's own OpenAPI schema (/api/schema/), through the WSGI
application in this process, with a key of each kind: a platform key (players, SSAI servers),
an account key that reads and an account key that writes. Every operation is called with
generated input, valid and invalid, and every answer is checked: no 5xx, a status and a content
type the schema documents for that operation, a body and headers that match the schema.

It runs in `make test`, so on SQLite and on PostgreSQL (CI runs both). Bounded and
reproducible: a fixed number of examples per operation, derandomized (the same inputs every
run), no example database.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.hypothesis.builder import ApiOperationMark
from schemathesis.pytest._test_builder import build_operation_test
from schemathesis.python._constants.orchestrator import make_constants_value_source

from ads import services
from catalog.models import Viewer
from config.api_wsgi import APIHandler, routed
from tests.ads.conftest import line_item_with_creative
from tests.conftest import world_once
from tests.factories import (
    AdBreakFactory,
    AdvertiserFactory,
    MembershipFactory,
    PlayerFactory,
    UserFactory,
    ViewerFactory,
)

EXAMPLES_PER_OPERATION = 10
# The operations of players and SSAI servers, with a platform key or none (the ad tags).
PLATFORM_PATHS = r"^/(api/v1/(decisions|events)|vast/4\.2|vmap/1\.0)$"
ANSWER_CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(autouse=True)
def connection_kept_between_requests():
    """What Django's test client does: the handler closes the database connection at each
    request's end (close_old_connections), which would end the test's transaction on
    PostgreSQL; schemathesis calls the WSGI application without the test client."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _fuzz_world() -> dict[str, str]:
    """A world for the generated calls to land in (an account with a live line item, a title
    with a break, a viewer, the web player's id), and a raw key of each kind."""
    advertiser = AdvertiserFactory(name="Fuzz Co", slug="fuzz")
    owner = UserFactory()
    MembershipFactory(advertiser=advertiser, user=owner)
    line_item_with_creative(advertiser, category="travel")
    AdBreakFactory()
    ViewerFactory()
    PlayerFactory(public_id="interlude-web")
    assert Viewer.objects.exists()
    _, platform = services.platform_key_create(name="fuzz player")
    made = {"platform": platform}
    for scope in ("read", "write"):
        _, made[f"account-{scope}"] = services.account_key_create(
            advertiser=advertiser, created_by=owner, name=f"fuzz {scope}", scope=scope
        )
    return made


# Built once for the module, not for each of its 58 tests (what a test writes is rolled back
# after it); the module's tests then run on one pytest-xdist worker, which also makes
# schemathesis's invalid enum values, once for its process, once for the suite.
_fuzz_world_once = world_once(_fuzz_world)


@pytest.fixture
def keys(_fuzz_world_once, db) -> dict[str, str]:
    return _fuzz_world_once


def _application():
    """config/wsgi.py's routing (the API's paths through the lean middleware stack, as granian
    serves them), without its server start-up: the decision refresher's thread is for server
    processes, not a test's."""
    from django.core.wsgi import get_wsgi_application

    return routed(get_wsgi_application(), APIHandler())


# Loaded as the module is collected (pytest-django has set Django up by then; making the schema
# reads no table). Not schemathesis.pytest.from_fixture: its lazy schema fails on pytest 9.
# The coverage phase is off while the tests are collected: its examples are made as a test
# runs (coverage_examples).
schema = schemathesis.openapi.from_wsgi("/api/schema/", _application())
schema.config.phases.coverage.enabled = False


@pytest.fixture(autouse=True)
def coverage_examples(request):
    """An operation's test as schemathesis builds it as it collects the test with the coverage
    phase on: the same call, so the same explicit examples (each documented value, each
    boundary, each way to break the input), in the same order, and the same generated ones.
    Made at collection, these examples were most of what collecting this module cost (~2.6 s
    of CPU on a quiet machine), and every pytest-xdist worker collects every test; made here,
    each operation's are made once, by the worker that runs its test."""
    operation = ApiOperationMark.get(request.node.obj)
    if operation is None:  # one of the plain tests below
        return
    coverage = schema.config.phases.coverage
    coverage.enabled = True
    try:
        request.node.obj = build_operation_test(
            config=schema.config,
            operation=operation,
            test_func=request.node.test_function,
            given_kwargs={},
            feedback=FeedbackSources(constants_value_source=make_constants_value_source(schema)),
        )
    finally:
        coverage.enabled = False


FUZZ = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def call(case, key: str) -> None:
    """The answer's checks: no server error, and a status, content type, headers and body the
    schema documents for that operation. Not schemathesis's two input heuristics:
    positive_data_acceptance wants a 2xx for any input the schema allows, but a schema cannot
    say which ids exist (an unknown one is a documented 400 or 404); negative_data_rejection
    wants a 4xx for any input it forbids, where DRF reads an empty query parameter as
    omitted and a number as its text, the ad tags answer a bad parameter inside a 200 VAST
    document (as VAST players expect), and an event batch rejects a bad event alone, in its
    200."""
    case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=ANSWER_CHECKS)


# Each kind of key against the operations it is for (another kind's key is a documented 401,
# which the first examples already show); one test per kind, as schemathesis's lazy schema
# takes no parametrized fixture.
platform_operations = schema.include(path_regex=PLATFORM_PATHS)
account_operations = schema.exclude(path_regex=PLATFORM_PATHS)


@platform_operations.parametrize()
@FUZZ
def test_with_a_platform_key(case, keys):
    call(case, keys["platform"])


@account_operations.parametrize()
@FUZZ
def test_with_an_account_read_key(case, keys):
    call(case, keys["account-read"])


@account_operations.parametrize()
@FUZZ
def test_with_an_account_write_key(case, keys):
    call(case, keys["account-write"])


# What the fuzzing found, pinned as plain tests.


@pytest.mark.parametrize("path", ["/api/v1/reports/delivery", "/api/v1/reports/comparison"])
def test_a_report_asked_as_csv_answers_its_errors_and_options_in_json(client, keys, path):
    auth = {"Authorization": f"Bearer {keys['account-read']}"}
    options = client.options(f"{path}?format=csv", headers=auth)
    assert options.status_code == 405  # like any method the schema does not document
    assert options["Content-Type"] == "application/json"
    assert options.json()["error"]["code"] == "method_not_allowed"
    refused = client.get(f"{path}?format=csv", headers={"Authorization": "Bearer ila_nope"})
    assert refused.status_code == 401
    assert refused["Content-Type"] == "application/json"
    assert refused.json()["error"]["code"] == "authentication_failed"


def test_an_empty_report_in_csv_is_still_csv(client, keys):
    auth = {"Authorization": f"Bearer {keys['account-read']}"}
    empty = client.get(
        "/api/v1/reports/delivery?start=2001-01-01&end=2001-01-02&breakdown=device&format=csv",
        headers=auth,
    )
    assert empty.status_code == 200
    assert empty["Content-Type"] == "text/csv; charset=utf-8"
    # The breakdown's columns, and no rows.
    assert empty.content.decode().splitlines() == [
        "value,label,impressions,clicks,completes,spend,ctr,completion_rate,ecpm,cpc"
    ]


def test_a_delivery_row_has_only_the_columns_of_its_breakdown(client, keys):
    schema_rows = client.get("/api/schema/?format=json").json()["components"]["schemas"]
    assert schema_rows["DeliveryRow"]["required"] == ["clicks", "ctr", "impressions", "spend"]
