"""Login throttling: failed logins per username and per address lock logins out for a while,
with the reason on the login page; the right password does not get through meanwhile."""

import datetime as dt

import pytest
from axes.models import AccessAttempt
from django.conf import settings

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = settings.AXES_FAILURE_LIMIT


def log_in(client, username, password, address="10.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_fifty_wrong_passwords_then_the_right_one_is_refused_with_the_reason(client, tenancy):
    owner = tenancy.owner.username
    statuses = [log_in(client, owner, "wrong").status_code for _ in range(50)]
    # The form answers 200 with its error until the limit, then the lockout page (429).
    assert statuses == [200] * (LIMIT - 1) + [429] * (51 - LIMIT)
    response = log_in(client, owner, PASSWORD)
    assert response.status_code == 429
    assert not logged_in(client)
    page = response.content.decode()
    assert "Too many failed logins for this username or from this address." in page
    assert "Try again in 15 minutes." in page
    assert 'name="password"' in page  # the form is still there, its username kept
    assert f'value="{owner}"' in page


def test_after_the_cool_off_the_right_password_logs_in(client, tenancy):
    for _ in range(LIMIT):
        log_in(client, tenancy.owner.username, "wrong")
    assert log_in(client, tenancy.owner.username, PASSWORD).status_code == 429
    earlier = settings.AXES_COOLOFF_TIME + dt.timedelta(seconds=1)
    for attempt in AccessAttempt.objects.all():
        AccessAttempt.objects.filter(pk=attempt.pk).update(
            attempt_time=attempt.attempt_time - earlier
        )
    assert log_in(client, tenancy.owner.username, PASSWORD).status_code == 302
    assert logged_in(client)


def test_an_address_trying_many_usernames_is_throttled(client, tenancy):
    for number in range(LIMIT):
        log_in(client, f"guess{number}", "wrong", address="10.0.0.9")
    # The owner never failed, but this address did.
    assert log_in(client, tenancy.owner.username, PASSWORD, address="10.0.0.9").status_code == 429
    assert log_in(client, tenancy.owner.username, PASSWORD, address="10.0.0.2").status_code == 302


def test_a_username_tried_from_many_addresses_is_throttled(client, tenancy):
    for number in range(LIMIT):
        log_in(client, tenancy.owner.username, "wrong", address=f"10.1.0.{number}")
    assert log_in(client, tenancy.owner.username, PASSWORD, address="10.2.0.1").status_code == 429
    assert log_in(client, tenancy.manager.username, PASSWORD, address="10.2.0.1").status_code == 302


def test_a_successful_login_clears_the_failures(client, tenancy):
    for _ in range(2):
        for _ in range(LIMIT - 1):
            assert log_in(client, tenancy.owner.username, "wrong").status_code == 200
        assert log_in(client, tenancy.owner.username, PASSWORD).status_code == 302
        client.logout()


def test_logins_without_a_request_are_not_throttled(client, tenancy):
    """The test client's login() (and a shell's authenticate()) pass no request: nothing to
    count, and the suite's many logins never lock anyone out."""
    for _ in range(LIMIT + 1):
        assert not client.login(username=tenancy.owner.username, password="wrong")
    assert client.login(username=tenancy.owner.username, password=PASSWORD)


def test_behind_a_proxy_failures_count_per_client_not_per_proxy(client, tenancy, settings):
    settings.LOGIN_TRUSTED_PROXIES = 1
    proxy = {"REMOTE_ADDR": "10.9.9.9"}

    def via_proxy(username, password, forwarded_for):
        data = {"username": username, "password": password}
        return client.post("/login/", data, HTTP_X_FORWARDED_FOR=forwarded_for, **proxy)

    # The attacker forges an address on the left; the proxy appends the real one.
    for number in range(LIMIT):
        via_proxy(f"guess{number}", "wrong", f"1.1.1.{number}, 203.0.113.5")
    assert via_proxy(tenancy.owner.username, PASSWORD, "203.0.113.5").status_code == 429
    # Another client behind the same proxy logs in.
    assert via_proxy(tenancy.manager.username, PASSWORD, "198.51.100.7").status_code == 302
