"""The account API: an advertiser account's own integrations, with a key its owner made on the
account's API keys page (`Authorization: Bearer ila_...`).

A key acts for its account only: every read goes through the account's selectors, so another
account's id is a 404, and every write through `ads.services`, as the web forms' do. A read
key may only read (GET, HEAD, OPTIONS); a read-and-write key may also write. Nothing caches
keys: a revoked key is refused from the next request.

`base` is what every route shares; the reports (analytics) and the insights question
(insights) are built on `AccountAPIView` from here, the one public face of this package.
"""

from ads.account_api.base import (
    AccountAPIView,
    errors,
    get_or_404,
    id_field,
    not_found,
)

__all__ = ["AccountAPIView", "errors", "get_or_404", "id_field", "not_found"]
