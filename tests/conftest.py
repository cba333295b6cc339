"""Shared fixtures. The suite runs on SQLite and local memory by default, and on PostgreSQL
and Redis when DATABASE_URL and REDIS_URL are set; REQUIRE_SERVICES=1 (CI) turns a missing
service into a failure instead of a skip."""

import importlib
import inspect
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
import threadpoolctl
from _pytest.nodeid import NodeId  # see _GroupsInNodeIds
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management.color import no_style
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from schemathesis.pytest.plugin import SchemathesisFunction  # see _operations_in_node_ids

from ads.decisioning.index import index_holder
from ads.decisioning.state import state_holder
from ads.delivery import latency
from ads.delivery.counters import counters
from ads.models import Advertiser, Campaign, Creative, LineItem, Membership
from ads.services.keys import platform_keys_forget
from ads.services.players import players_forget
from ads.vast.limits import limiter as tag_limiter
from config.static import StaticFilesMiddleware
from ml.serving import champions
from tests.factories import (
    AdvertiserFactory,
    CreativeFactory,
    MembershipFactory,
    UserFactory,
)

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
SHARED_REDIS_URL = settings.REDIS_URL  # before a pytest-xdist worker takes its own database


def services_missing() -> list[str]:
    missing = []
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        missing.append("PostgreSQL (DATABASE_URL)")
    if not settings.REDIS_URL:
        missing.append("Redis (REDIS_URL)")
    return missing


def worker_redis_url(url: str, worker: str | None) -> str:
    """REDIS_URL for one pytest-xdist worker: its database number plus the worker's index
    (gw0 → +0, gw1 → +1, ...). Tests empty their Redis database (cache.clear() is FLUSHDB)
    and share counter keys, so two workers on one database would wipe each other's state."""
    if not url or not worker:
        return url
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) + int(worker.removeprefix("gw"))
    return urlunsplit(parts._replace(path=f"/{database}"))


def _use_the_workers_redis() -> None:
    """Point every Redis client at this worker's database. The settings were read before any
    conftest ran, but the clients are made on first use, after this."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or not settings.REDIS_URL:
        return
    url = worker_redis_url(settings.REDIS_URL, worker)
    settings.REDIS_URL = url
    settings.CACHES["default"]["LOCATION"] = url
    if settings.CELERY_BROKER_URL == SHARED_REDIS_URL:
        settings.CELERY_BROKER_URL = url
    # Pub/sub channels are not per database: the live dashboards' groups (named after primary
    # keys, which every worker's database hands out alike) get a prefix per worker too.
    settings.CHANNEL_LAYERS["default"]["CONFIG"] |= {"hosts": [url], "prefix": f"asgi-{worker}"}
    # For the processes tests start (the browser tests' servers).
    os.environ |= {"REDIS_URL": url, "CHANNEL_LAYER_PREFIX": f"asgi-{worker}"}


def _one_thread_per_worker() -> None:
    """NumPy's OpenBLAS and the OpenMP of scikit-learn and LightGBM start a thread per core
    by default; under `make test` each pytest-xdist worker has one core of two, and idle
    threads of one library spin while the other worker holds the second core. One thread
    each, unless the environment says otherwise: for the processes started after this (the
    workers, the servers tests start), and for the libraries already loaded here (NumPy is
    imported before this runs). tests/ads/test_ctr_model.py, two runs each, alternated: 19.6 and
    20.4 s of user CPU with two threads, 17.8 and 19.2 with one."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    threadpoolctl.threadpool_limits(
        limits={
            # OpenMP's variable may list a count per nesting level ("4,2"): the first is ours.
            "blas": int(os.environ["OPENBLAS_NUM_THREADS"]),
            "openmp": int(os.environ["OMP_NUM_THREADS"].split(",")[0]),
        }
    )


def pytest_configure(config):
    _one_thread_per_worker()
    if hasattr(config, "workerinput"):  # a pytest-xdist worker
        config.pluginmanager.register(_GroupsInNodeIds(), "interlude-xdist-groups")
    # The production hasher is slow by design; tests log in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    _use_the_workers_redis()
    _static_files_listed_once()
    # Counters in each process's memory, emptied between tests, instead of the embedded
    # default's shared file (which tests/ads/test_sqlite_counters.py tests on its own).
    if settings.COUNTERS_BACKEND == "sqlite":
        settings.COUNTERS_BACKEND = "memory"
    if REQUIRE_SERVICES and services_missing():
        raise pytest.UsageError(
            "REQUIRE_SERVICES=1 but these are not configured: " + ", ".join(services_missing())
        )


def _static_files_listed_once() -> None:
    """Django's test client builds a handler, and with it WhiteNoise's middleware, for each
    client; each middleware listed the ~230 static files of the finders and read their headers
    (14 ms, about 620 times a run: 11 s of CPU). What it finds is kept for the run, keyed by every
    setting that shapes it, and copied into each new middleware's own dictionary (the project's
    static folders do not change during a run). While a test overrides one of those settings
    (override_settings, pytest-django's `settings`: its own static folder, say, whose files it
    may change between two clients), each middleware lists the files afresh, as without this.
    The middleware is otherwise built and serves as it is (tests/config/test_static.py)."""
    list_them = StaticFilesMiddleware.add_files_from_finders
    listed: dict[str, dict] = {}
    overridden: Counter[str] = Counter()

    def shapes(name: str) -> bool:
        return name.startswith(("WHITENOISE_", "STATIC")) or name in (
            "INSTALLED_APPS",
            "DEBUG",
            "FORCE_SCRIPT_NAME",
            "STORAGES",
        )

    def track(*, setting: str, enter: bool, **kwargs) -> None:
        if shapes(setting):
            overridden[setting] += 1 if enter else -1

    setting_changed.connect(track, weak=False, dispatch_uid="tests-static-files-listed-once")

    def add_files_from_finders(self) -> None:
        if any(count > 0 for count in overridden.values()):
            list_them(self)
            return
        key = repr(
            sorted((name, getattr(settings, name)) for name in dir(settings) if shapes(name))
        )
        if key not in listed:
            before = dict(self.files)
            list_them(self)
            listed[key] = {
                url: file for url, file in self.files.items() if before.get(url) is not file
            }
        self.files.update(listed[key])

    StaticFilesMiddleware.add_files_from_finders = add_files_from_finders  # type: ignore[method-assign]


# First: pytest-xdist's own hook reads the xdist_group markers that this one adds (run after
# it, as it was, no test had one and every world was built by both workers).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    _operations_in_node_ids(items)
    _one_worker_per_world(items)
    missing = services_missing()
    if not missing:
        return
    skip = pytest.mark.skip(reason="needs " + " and ".join(missing))
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The suite builds its database from the models (--no-migrations): on PostgreSQL the event
    table is then partitioned as migration 0006 does, so that every test writes and reads the
    partitioned table production has."""

    from ads.services.partitions import is_partitioned

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql" and not is_partitioned():
            migration = importlib.import_module("ads.migrations.0006_adevent_partitioned_by_day")
            with connection.schema_editor() as schema_editor:
                migration.partition(None, schema_editor)


def _forget_process_state() -> None:
    cache.clear()  # on Redis this empties the database, counters included
    counters.cache_clear()
    # Empty counters over an empty database are what a heal would leave: known (the first
    # decisions of a test would otherwise race to heal them; tests/ads/test_faults.py tests
    # the heal itself).
    counters().mark_known()
    index_holder.reset()
    state_holder.reset()
    platform_keys_forget()
    players_forget()
    tag_limiter.reset()
    latency.recorder.reset()
    champions.reset()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with empty caches and counters and rebuilds the decision index."""
    _forget_process_state()
    yield
    _forget_process_state()


def world_once(build: Callable[..., object], *, scope: str = "module"):
    """A fixture that builds an expensive world once for a test module (or class) instead of
    once per test. The world lives in a transaction opened here, so each test's `db`
    transaction is a savepoint inside it (what a test writes is rolled back after it), and
    after the scope's last test the world is rolled back too. Every test of the scope that
    runs after the first one to ask for the world sees it in the database, so a module whose
    other tests need an empty database keeps the world's tests in a class (scope="class").
    Tests may read the world's objects but must not change them in memory.

    `build`'s parameters name other fixtures it builds on (a world_once world of a wider
    scope: a model trained once for a class on the module's history); they are set up first,
    so this world's transaction is a savepoint inside theirs."""
    needs = list(inspect.signature(build).parameters)

    def fixture(django_db_setup, django_db_blocker, **worlds):
        with django_db_blocker.unblock():
            outer = transaction.atomic(using=DEFAULT_DB_ALIAS)
            outer.__enter__()
            try:
                _ids_from_the_start()
                built = build(**worlds)
            except BaseException:
                transaction.set_rollback(True, using=DEFAULT_DB_ALIAS)
                outer.__exit__(None, None, None)
                raise
        try:
            yield built
        finally:
            with django_db_blocker.unblock():
                transaction.set_rollback(True, using=DEFAULT_DB_ALIAS)
                outer.__exit__(None, None, None)

    fixture.__signature__ = inspect.Signature(  # type: ignore[attr-defined]  # read by pytest
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for name in ("django_db_setup", "django_db_blocker", *needs)
    )
    fixture.world_once = True  # type: ignore[attr-defined]  # read by _one_worker_per_world
    return pytest.fixture(scope=scope)(fixture)


def _ids_from_the_start() -> None:
    """PostgreSQL's sequences are not rolled back with the tests that drew from them (SQLite's
    are), so a world's ids, and the simulator's traffic, which draws by id, would depend on the
    tests that ran before it on the worker: a live score trained on such a world missed its
    calibration gate in one order of the suite. Each sequence restarts after its table's
    largest id (at 1 for an empty table), as on a fresh database."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), apps.get_models()):
            cursor.execute(sql)


class _GroupsInNodeIds:
    """pytest-xdist (3.8) tells its controller a test's xdist_group by a suffix on the test's
    node id ("...::test_name@group"), which it writes to `item._nodeid`; pytest 9.2's node ids
    are structured and no longer read that attribute, so `--dist loadgroup` silently sent a
    group's tests to any worker (pytest-xdist issue #1386; a fix is proposed in #1388). After
    pytest-xdist's own hook, the suffix is written where pytest reads it, when it is missing."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        if not getattr(config.option, "loadgroup", False):
            return
        for item in items:
            groups = sorted({str(mark.args[0]) for mark in item.iter_markers("xdist_group")})
            if groups and "@" not in item.nodeid and hasattr(item, "_id"):
                item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")


def _operations_in_node_ids(items) -> None:
    """schemathesis (4.32) makes a test item per API operation, named after it
    ("test_with_a_platform_key[POST /api/v1/decisions]"), but pytest 9.2 builds an item's node
    id from its function's name and its parametrization, which these items lack: every
    operation's item had the function's node id, and pytest-xdist, which sends tests to
    workers by node id, ran the first operation of each test function and none of the others
    (7 of tests/api/test_fuzz.py's 58 tests ran under `make test`). The operation is put back
    in the node id; two items with one node id stop the run, so that no test is lost so again."""
    for item in items:
        if isinstance(item, SchemathesisFunction) and item.id.params is None:
            item._id = item.id.with_params(item.operation_label)
    seen: set[str] = set()
    for item in items:
        if item.nodeid in seen:
            raise pytest.UsageError(f"two tests have the node id {item.nodeid}")
        seen.add(item.nodeid)


def _one_worker_per_world(items) -> None:
    """A world_once world is built by every pytest-xdist worker that runs a test using it, so
    the tests of each world are kept on one worker (an xdist_group, which `--dist loadgroup`
    sends whole to one worker): split between two workers, the worlds were built twice. Worlds
    that one test uses together (a world built on another) are one group."""
    group_of: dict[str, str] = {}  # a world's fixture → another of its group (union-find)

    def root(world: str) -> str:
        while group_of.setdefault(world, world) != world:
            world = group_of[world]
        return world

    worlds_of = {}
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        worlds = [
            f"{definition.baseid}::{name}"
            for name in info.names_closure
            for definition in info.name2fixturedefs.get(name, ())
            if getattr(definition.func, "world_once", False)
        ]
        for world in worlds[1:]:
            group_of[root(world)] = root(worlds[0])
        if worlds:
            worlds_of[item] = worlds[0]
    for item, world in worlds_of.items():
        item.add_marker(pytest.mark.xdist_group(root(world)))


@dataclass
class Tenancy:
    """An account with an owner, a manager (a member) and an analyst, and a rival account
    whose owner is the outsider; each account has a campaign, a line item and a creative."""

    advertiser: Advertiser
    owner: User
    manager: User
    analyst: User
    campaign: Campaign
    line_item: LineItem
    creative: Creative
    rival: Advertiser
    outsider: User
    rival_campaign: Campaign
    rival_line_item: LineItem
    rival_creative: Creative


@pytest.fixture
def tenancy(db) -> Tenancy:
    return tenancy_make()


def tenancy_make() -> Tenancy:
    """The `tenancy` fixture's accounts, for a world built once on them (world_once)."""
    advertiser = AdvertiserFactory(name="Acme Sodas", slug="acme")
    rival = AdvertiserFactory(name="Globex Motors", slug="globex")
    members = {
        role: MembershipFactory(advertiser=advertiser, role=role, user=UserFactory(username=role))
        for role in Membership.Role.values
    }
    outsider = MembershipFactory(advertiser=rival, user=UserFactory(username="outsider"))
    creative = CreativeFactory(line_item__campaign__advertiser=advertiser, name="Acme spring spot")
    rival_creative = CreativeFactory(
        line_item__campaign__advertiser=rival, name="Globex launch spot"
    )
    return Tenancy(
        advertiser=advertiser,
        owner=members["owner"].user,
        manager=members["manager"].user,
        analyst=members["analyst"].user,
        campaign=creative.line_item.campaign,
        line_item=creative.line_item,
        creative=creative,
        rival=rival,
        outsider=outsider.user,
        rival_campaign=rival_creative.line_item.campaign,
        rival_line_item=rival_creative.line_item,
        rival_creative=rival_creative,
    )
