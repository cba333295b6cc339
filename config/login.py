"""Login throttling with django-axes: failed logins are counted per username and per address;
past LOGIN_FAILURE_LIMIT of either within LOGIN_COOLOFF_MINUTES, logins for that username or
from that address are refused (even with the right password) until the cool-off ends. A
successful login clears the failures of its username and address.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' gate, for logins that come with a request: every login over the network does
    (the login page, admin). One without (`Client.login` in tests, a shell) has no address to
    count and no one to throttle; axes would raise instead."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def client_address(request: HttpRequest) -> str | None:
    """The address failures are counted against. Behind LOGIN_TRUSTED_PROXIES proxies (a TLS
    terminator, a load balancer), REMOTE_ADDR is the nearest proxy's, the same for everyone:
    the client is the entry the farthest trusted proxy appended to X-Forwarded-For, counted
    from the right (entries further left are whatever the client sent, and could be forged).
    """
    proxies = settings.LOGIN_TRUSTED_PROXIES
    if proxies:
        forwarded = [
            entry.strip()
            for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if entry.strip()
        ]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        "Too many failed logins for this username or from this address. "
        f"Try again in {minutes} minutes."
    )


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """The login page again, its form empty but for the username, saying why (429)."""
    username = request.POST.get("username", "") if request.method == "POST" else ""
    form = AuthenticationForm(request, initial={"username": username})
    context = {"form": form, "lockout": lockout_message(), "next": request.POST.get("next", "")}
    return render(request, "registration/login.html", context, status=429)
