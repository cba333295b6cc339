"""schemathesis against the API's own OpenAPI schema (/api/schema/), through the WSGI
application in this process, with a key of each kind: a platform key (players, SSAI servers),
an account key that reads and an account key that writes. Every operation is called with
generated input, valid and invalid, and every answer is checked: no 5xx, a status and a content
type the schema documents for that operation, a body and headers that match the schema.

This module: the platform key's operations, each key's scope on the account operations where
the scope cannot change the answer but must be kept (a read key never writes, a write key
reads), and what the fuzzing found, pinned as plain tests. The account operations with the key
whose scope lets the input through: test_fuzz_reads.py and test_fuzz_writes.py (tests/api/fuzz.py
says how the operations are split, and why).

It runs in `make test`, so on SQLite and on PostgreSQL (CI runs both). Bounded and
reproducible: a fixed number of examples per operation, derandomized (the same inputs every
run), no example database.
"""

from __future__ import annotations

import pytest

from tests.api.fuzz import (
    ACROSS_SCOPES,
    FUZZ,
    account_operations,
    account_reads,
    account_writes,
    call,
    fuzz_world,
    platform_operations,
    routes,
    sent_with,
    without_coverage_phase,
)
from tests.conftest import world_once

# Built once for the module, not for each of its tests (what a test writes is rolled back
# after it); the module's tests then run on one pytest-xdist worker.
_fuzz_world_once = world_once(fuzz_world)


@platform_operations.parametrize()
@FUZZ
def test_with_a_platform_key(case, keys):
    call(case, keys["platform"])


@account_writes.parametrize()
@ACROSS_SCOPES
@without_coverage_phase
def test_a_read_key_is_refused_every_write(case, keys):
    response = call(case, keys["account-read"])
    if routes(case) and sent_with(response, keys["account-read"]):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "permission_denied"


@account_reads.parametrize()
@ACROSS_SCOPES
@without_coverage_phase
def test_a_write_key_reads(case, keys):
    response = call(case, keys["account-write"])
    if sent_with(response, keys["account-write"]):
        assert response.status_code not in (401, 403), response.text


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


def test_the_operations_are_split_by_what_a_key_may_do():
    """Each account operation is in one of the two full tests, and the split is KeyScope's:
    an operation left out of both, or read as a write, would lose its coverage phase."""
    read = {(op.method.upper(), op.path) for op in _operations(account_reads)}
    written = {(op.method.upper(), op.path) for op in _operations(account_writes)}
    assert not read & written
    assert ("POST", "/api/v1/insights/questions") in read  # a question only reads
    assert {method for method, _ in read} == {"GET", "POST"}
    assert ("POST", "/api/v1/line_items") in written
    assert ("PATCH", "/api/v1/campaigns/{id}") in written
    assert len(read) + len(written) == len(_operations(account_operations))


def _operations(schema):
    return [result.ok() for result in schema.get_all_operations()]
