"""The schemathesis modules' fixtures (tests/api/fuzz.py says how they are split)."""

from __future__ import annotations

import pytest
from django.core import signals
from django.db import close_old_connections
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.hypothesis.builder import ApiOperationMark
from schemathesis.pytest._test_builder import build_operation_test
from schemathesis.python._constants.orchestrator import make_constants_value_source

from tests.api.fuzz import schema


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


@pytest.fixture
def keys(_fuzz_world_once, db) -> dict[str, str]:
    """The raw keys of the module's world (each module builds its own: tests.api.fuzz)."""
    return _fuzz_world_once


@pytest.fixture(autouse=True)
def coverage_examples(request):
    """An operation's test as schemathesis builds it as it collects the test with the coverage
    phase on: the same call, so the same explicit examples (each documented value, each
    boundary, each way to break the input), in the same order, and the same generated ones.
    Made at collection, these examples were most of what collecting the fuzz tests cost (~2.6 s
    of CPU on a quiet machine), and every pytest-xdist worker collects every test; made here,
    each operation's are made once, by the worker that runs its test. A test marked
    `without_coverage_phase` keeps its generated examples only."""
    operation = ApiOperationMark.get(request.node.obj)
    if operation is None:  # a plain test
        return
    if getattr(request.node.test_function, "without_coverage_phase", False):
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
