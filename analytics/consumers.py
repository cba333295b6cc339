"""The live dashboard stream: one WebSocket per open dashboard, in its account's group.

Membership is checked on connect (an outsider's socket is closed before it is accepted). The
group's messages carry no numbers, only "delivery changed": each socket reads its own
account's counters, so nothing can reach another account. After the last message the socket
reads once more, TRAILING_SECONDS later, so the final numbers always arrive even though
publishers send at most a few messages a second.

Membership is checked again at every read: a member removed from the account gets its socket
closed (NOT_A_MEMBER) instead of the next totals.
"""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from ads import selectors as ads_selectors
from ads.models import Advertiser, Membership
from ads.services import live_group
from analytics import selectors

TRAILING_SECONDS = 1.0
NOT_A_MEMBER = 4404


@database_sync_to_async
def _account_of(user, slug: str) -> Advertiser | None:
    try:
        return ads_selectors.membership_get(user=user, advertiser_slug=slug).advertiser
    except Membership.DoesNotExist:
        return None


@database_sync_to_async
def _live_today_for_member(user, advertiser: Advertiser) -> dict | None:
    """Today's totals, or None once the user is no longer a member (one thread hop for both:
    an indexed lookup beside the counters' read)."""
    try:
        ads_selectors.membership_get(user=user, advertiser_slug=advertiser.slug)
    except Membership.DoesNotExist:
        return None
    return selectors.live_today(advertiser=advertiser)


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    advertiser: Advertiser | None = None
    group: str | None = None
    trailing: asyncio.Task | None = None

    async def connect(self) -> None:
        slug = self.scope["url_route"]["kwargs"]["slug"]
        self.advertiser = await _account_of(self.scope.get("user"), slug)
        if self.advertiser is None:
            await self.close(code=NOT_A_MEMBER)
            return
        self.group = live_group(self.advertiser.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_totals()

    async def disconnect(self, code: int) -> None:
        if self.trailing is not None:
            self.trailing.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def delivery_changed(self, message: dict) -> None:
        await self.send_totals()
        if self.trailing is not None:
            self.trailing.cancel()
        self.trailing = asyncio.ensure_future(self._read_again_later())

    async def _read_again_later(self) -> None:
        await asyncio.sleep(TRAILING_SECONDS)
        await self.send_totals()

    async def send_totals(self) -> None:
        if self.group is None:  # closed: the member was removed
            return
        totals = await _live_today_for_member(self.scope.get("user"), self.advertiser)
        if totals is None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None
            await self.close(code=NOT_A_MEMBER)
            return
        await self.send_json({"type": "today", **totals})
