import pytest
from django.db import connection
from django.test import override_settings

from tests.conftest import services_missing


@pytest.mark.django_db
def test_healthz_answers_without_touching_services(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_the_database_and_redis_when_configured(client, settings):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    if settings.REDIS_URL:
        assert body["checks"]["redis"] == "ok"
    else:
        assert "redis" not in body["checks"]


@pytest.mark.django_db
@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_readyz_names_an_unreachable_redis_and_logs_why(client, caplog):
    response = client.get("/readyz")
    assert response.status_code == 503
    # Anyone may ask: a status word per dependency, no host, port or driver message.
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "error"},
        "failed": ["redis"],
    }
    assert "127.0.0.1" not in response.content.decode()
    (record,) = [record for record in caplog.records if record.name == "config.health"]
    assert record.getMessage() == "readyz: Redis does not answer"
    assert "127.0.0.1:1" in caplog.text  # the reason, in the log


@pytest.mark.django_db
def test_readyz_names_a_broken_database_and_logs_why(client, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise connection.Database.OperationalError("connection refused")

    # The real driver's error class, raised where the driver would raise it.
    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "database" in response.json()["failed"]
    assert response.json()["checks"]["database"] == "error"
    assert "connection refused" not in response.content.decode()
    assert "OperationalError: connection refused" in caplog.text


@pytest.mark.services
def test_the_suite_runs_on_postgres_and_redis_when_required(settings):
    assert not services_missing()
    assert connection.vendor == "postgresql"
