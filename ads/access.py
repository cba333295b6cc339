"""Web access to an account: the one way a page of any app resolves the account in its URL.

Part of the ads app's public interface (beside its services and selectors), because every
advertiser page, in ads or analytics, must check membership the same way.
"""

from functools import partial, wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone

from ads import selectors
from ads.models import Membership


def account_view(view=None, *, write: bool = False):
    """Decorate a view of one account; the view gets the user's `membership` after `request`.

    Anonymous users go to the login page; an unknown slug or an account the user is not a
    member of is a 404, so the page does not reveal that the account exists; with
    `write=True`, an analyst (read-only role) gets a 403 on GET and POST alike.
    """
    if view is None:
        return partial(account_view, write=write)

    @wraps(view)
    def wrapper(request: HttpRequest, slug: str, **kwargs: Any) -> HttpResponse:
        try:
            membership = selectors.membership_get(user=request.user, advertiser_slug=slug)
        except Membership.DoesNotExist:
            raise Http404("No such account.") from None
        if write and not membership.can_edit:
            raise PermissionDenied("Your role in this account is read-only.")
        # Forms read datetime-local values, and templates show times, in the account's zone.
        with timezone.override(membership.advertiser.tzinfo):
            return view(request, membership, **kwargs)

    return login_required(wrapper)
