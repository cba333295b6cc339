"""Parallel runs (pytest-xdist): each worker has a database of its own on PostgreSQL
(pytest-django names it after the worker) and a Redis database of its own (tests/conftest.py),
since tests empty Redis and share counter keys."""

import os

import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache

from ads.delivery.counters import counters
from config.celery import app
from tests.conftest import SHARED_REDIS_URL, worker_redis_url


def test_each_worker_adds_its_index_to_the_redis_database():
    assert worker_redis_url("redis://127.0.0.1:6379/4", "gw0") == "redis://127.0.0.1:6379/4"
    assert worker_redis_url("redis://127.0.0.1:6379/4", "gw3") == "redis://127.0.0.1:6379/7"
    assert worker_redis_url("redis://:pw@redis:6379", "gw0") == "redis://:pw@redis:6379/0"
    assert worker_redis_url("redis://:pw@redis:6379", "gw1") == "redis://:pw@redis:6379/1"
    assert worker_redis_url("redis://redis:6379/2", None) == "redis://redis:6379/2"
    assert worker_redis_url("", "gw1") == ""


@pytest.mark.services
def test_every_redis_client_uses_the_workers_database():
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    assert worker_redis_url(SHARED_REDIS_URL, worker) == settings.REDIS_URL
    database = int(settings.REDIS_URL.rsplit("/", 1)[1])
    cache.set("probe", 1)
    clients = {
        "cache": cache._cache.get_client().connection_pool.connection_kwargs["db"],
        "counters": counters()._redis.connection_pool.connection_kwargs["db"],
        "celery": int(app.conf.broker_url.rsplit("/", 1)[1]),
        "channels": int(get_channel_layer()._kwargs["hosts"][0].rsplit("/", 1)[1]),
    }
    assert clients == dict.fromkeys(clients, database)
    # Pub/sub ignores the database number: the groups are apart by their prefix.
    prefix = get_channel_layer()._kwargs.get("prefix", "asgi")
    assert prefix == ("asgi" if worker is None else f"asgi-{worker}")
