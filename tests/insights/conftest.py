import pytest
from django.utils import timezone

from insights.tools import Context
from tests.conftest import world_once
from tests.insights import world as insights_world


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    """Periods and pacing read the clock: fix it at noon on Wednesday 2 December, New York."""
    monkeypatch.setattr(timezone, "now", lambda: insights_world.NOW)


# Five weeks of events rolled up: built once for the insights tests (a package-scoped world:
# their modules run on one pytest-xdist worker, and their tests that need no world use no
# database). Once per module, it was built four times: 3 s of CPU.
_world = world_once(lambda: insights_world.build(events_per_day=8), scope="package")


@pytest.fixture
def world(_world, db) -> insights_world.World:
    return _world


@pytest.fixture
def context(world) -> Context:
    return Context(advertiser=world.fizzy, now=insights_world.NOW)
