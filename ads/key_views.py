"""The account's API keys page (/a/<slug>/keys/): its owners create, name, scope and revoke
the keys of the account's integrations. Managers and analysts get a 403, outsiders a 404.

A new key is shown in the answer to the form that made it, once: only its hash is stored, and
the page is never cached.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from ads import selectors, services
from ads.access import account_view
from ads.forms import AccountKeyForm
from ads.models import AuditEntry, Membership

OWNERS_ONLY = "Only the account's owners manage its API keys."


def _require_owner(membership: Membership) -> None:
    if membership.role != Membership.Role.OWNER:
        raise PermissionDenied(OWNERS_ONLY)


@account_view
@never_cache
@require_http_methods(["GET", "POST"])
def account_keys(request: HttpRequest, membership: Membership) -> HttpResponse:
    _require_owner(membership)
    advertiser = membership.advertiser
    form = AccountKeyForm(request.POST or None)
    new_key = raw_key = None
    if request.method == "POST" and form.is_valid():
        new_key, raw_key = services.account_key_create(
            advertiser=advertiser, created_by=request.user, **form.cleaned_data
        )
        form = AccountKeyForm()
    context = {
        "membership": membership,
        "advertiser": advertiser,
        "form": form,
        "keys": selectors.account_key_list(advertiser=advertiser),
        "history": selectors.audit_history(
            advertiser=advertiser, object_type=AuditEntry.ObjectType.ACCOUNT_KEY
        ),
        "new_key": new_key,
        "raw_key": raw_key,
    }
    status = 201 if new_key else 400 if form.errors else 200
    return render(request, "ads/account_keys.html", context, status=status)


@account_view
@require_POST
def account_key_revoke(request: HttpRequest, membership: Membership, key_id: int) -> HttpResponse:
    _require_owner(membership)
    try:
        key = selectors.account_key_get(advertiser=membership.advertiser, key_id=key_id)
    except ObjectDoesNotExist:
        raise Http404("No such key in this account.") from None
    services.account_key_revoke(key=key, revoked_by=request.user)
    messages.success(request, f"“{key.name}” is revoked: requests with it are refused.")
    return redirect("account_keys", membership.advertiser.slug)
