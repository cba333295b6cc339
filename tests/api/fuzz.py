"""What the schemathesis modules share (test_fuzz.py, test_fuzz_reads.py, test_fuzz_writes.py):
the API's own OpenAPI schema (/api/schema/) through the WSGI application in this process, the
world the generated calls land in, the checks made on every answer, and which operations read.

The operations are split by what a key's scope can change. A read key and a read-and-write key
take the same path through an operation that reads (KeyScope lets both through, and nothing
else in the account API looks at the scope): the read key's test runs every example of those
(the coverage phase's and generated ones), the write key a few. On an operation that writes, a
read key is refused by KeyScope before the body, the query or the row is looked at: the write
key's test runs every example, the read key a few, each of which must be refused. Each of the
three full tests is a module of its own, with its own world, so that pytest-xdist can give them
to different workers.
"""

from __future__ import annotations

import schemathesis
from django.urls import Resolver404, resolve
from hypothesis import HealthCheck, settings
from schemathesis import checks

from ads import services
from catalog.models import Viewer
from config.api_wsgi import APIHandler, HotPath, routed
from tests.ads.conftest import line_item_with_creative
from tests.factories import (
    AdBreakFactory,
    AdvertiserFactory,
    MembershipFactory,
    PlayerFactory,
    UserFactory,
    ViewerFactory,
)

EXAMPLES_PER_OPERATION = 10
# Where a key's scope cannot change the answer (see the module's docstring): generated examples
# only, no coverage phase.
EXAMPLES_ACROSS_SCOPES = 3
# The operations of players and SSAI servers, with a platform key or none (the ad tags).
PLATFORM_PATHS = r"^/(api/v1/(decisions|events)|vast/4\.2|vmap/1\.0)$"
ANSWER_CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


def fuzz_world() -> dict[str, str]:
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


def _application():
    """config/wsgi.py's routing (the decision, event and ad tag paths through the lean path,
    the API's other paths through the lean middleware stack, as the api process serves them),
    without its server start-up: the decision refresher's thread is for server processes, not
    a test's."""
    from django.core.wsgi import get_wsgi_application

    from ads import api
    from ads.vast import answers

    return routed(get_wsgi_application(), HotPath(APIHandler(), api, answers))


# Loaded once a process, as the first of the modules is collected (pytest-django has set Django
# up by then; making the schema reads no table). Not schemathesis.pytest.from_fixture: its lazy
# schema fails on pytest 9. The coverage phase is off while the tests are collected: its
# examples are made as a test runs (tests/api/conftest.py's coverage_examples).
schema = schemathesis.openapi.from_wsgi("/api/schema/", _application())
schema.config.phases.coverage.enabled = False


def _view_class(path: str):
    """The view that serves an operation's path (its parameters as 1)."""
    concrete = path
    for name in ("{id}", "{pk}"):
        concrete = concrete.replace(name, "1")
    return resolve(concrete).func.view_class


def reads(context) -> bool:
    """Whether an operation only reads, as KeyScope decides it: a safe method, or a view whose
    POST reads (`posts_read`)."""
    operation = context.operation
    if operation.method.upper() in ("GET", "HEAD", "OPTIONS"):
        return True
    return getattr(_view_class(operation.path), "posts_read", False)


platform_operations = schema.include(path_regex=PLATFORM_PATHS)
account_operations = schema.exclude(path_regex=PLATFORM_PATHS)
account_reads = account_operations.include(reads)
account_writes = account_operations.exclude(reads)

FUZZ = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
ACROSS_SCOPES = settings(FUZZ, max_examples=EXAMPLES_ACROSS_SCOPES)


def without_coverage_phase(test):
    """Marks a schemathesis test whose operations' coverage phase another test runs (see the
    module's docstring): coverage_examples leaves it with its generated examples."""
    test.without_coverage_phase = True
    return test


def call(case, key: str):
    """The answer's checks: no server error, and a status, content type, headers and body the
    schema documents for that operation. Not schemathesis's two input heuristics:
    positive_data_acceptance wants a 2xx for any input the schema allows, but a schema cannot
    say which ids exist (an unknown one is a documented 400 or 404); negative_data_rejection
    wants a 4xx for any input it forbids, where DRF reads an empty query parameter as
    omitted and a number as its text, the ad tags answer a bad parameter inside a 200 VAST
    document (as VAST players expect), and an event batch rejects a bad event alone, in its
    200."""
    return case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=ANSWER_CHECKS)


def routes(case) -> bool:
    """Whether the case's path reaches its operation's view (a generated id may not match the
    route's converter: the API's catch-all 404 before any view)."""
    try:
        match = resolve(case.formatted_path)
    except Resolver404:
        return False
    return getattr(match.func, "view_class", None) is _view_class(case.operation.path)


def sent_with(response, key: str) -> bool:
    """Whether the request carried `key` (schemathesis also sends examples without the
    Authorization header, or with one of its own: a 401)."""
    return response.request.headers.get("Authorization") == f"Bearer {key}"
