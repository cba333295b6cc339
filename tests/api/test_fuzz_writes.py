"""schemathesis on the account operations that write, with an account key that writes: every
example of each (the coverage phase's and generated ones; tests/api/fuzz.py, and
test_fuzz.py's docstring for what is checked). A module of its own, with its own world, so that
pytest-xdist may run it on another worker than the other fuzz modules."""

from __future__ import annotations

from tests.api.fuzz import FUZZ, account_writes, call, fuzz_world
from tests.conftest import world_once

_fuzz_world_once = world_once(fuzz_world)


@account_writes.parametrize()
@FUZZ
def test_with_an_account_write_key(case, keys):
    call(case, keys["account-write"])
