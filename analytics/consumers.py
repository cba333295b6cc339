"""The live streams: one WebSocket per open advertiser dashboard, in its account's group;
and the staff's, in one group (`StaffSessionsConsumer`, at the end).

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
from django.contrib.auth import get_user_model

from ads import selectors as ads_selectors
from ads.models import Advertiser, Membership
from ads.services import live_group
from analytics import selectors
from engagement.services import STAFF_SESSIONS_GROUP

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


NOT_STAFF = 4404
VIEWING_EVERY_SECONDS = 0.5


@database_sync_to_async
def _viewing_for_staff(user_id: int) -> dict | None:
    """The viewing figures, or None once the user is no longer active staff (one thread hop
    for both: a primary-key lookup beside the figures' read)."""
    if not get_user_model().objects.filter(pk=user_id, is_staff=True, is_active=True).exists():
        return None
    return selectors.staff_viewing_figures()


class StaffSessionsConsumer(AsyncJsonWebsocketConsumer):
    """The staff's live view of viewing: the rows of sessions that changed, as
    `engagement.live.sessions_touched` sends them ({"type": "sessions", "sessions": [...]}),
    and the executive dashboard's viewing figures ({"type": "viewing", ...}) on connect and
    after changes: at once when the last were sent VIEWING_EVERY_SECONDS ago or more, else
    that long after them (one query per half second, whatever the event rate; the figures
    arrive within a second of an event). Staff only: anyone else is closed before accept, and
    staff status is read again with every read of the figures, so a user who stops being staff
    is closed at the next one (within VIEWING_EVERY_SECONDS of a change)."""

    viewing_sent_at: float = 0.0
    trailing: asyncio.Task | None = None
    joined = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not (user and user.is_authenticated and user.is_staff and user.is_active):
            await self.close(code=NOT_STAFF)
            return
        await self.channel_layer.group_add(STAFF_SESSIONS_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        await self.send_viewing()

    async def disconnect(self, code: int) -> None:
        if self.trailing is not None:
            self.trailing.cancel()
        if self.joined:
            await self.channel_layer.group_discard(STAFF_SESSIONS_GROUP, self.channel_name)

    async def sessions_changed(self, message: dict) -> None:
        if not self.joined:  # closed: no longer staff
            return
        await self.send_json({"type": "sessions", "sessions": message["sessions"]})
        wait = self.viewing_sent_at + VIEWING_EVERY_SECONDS - asyncio.get_running_loop().time()
        if wait <= 0:
            await self.send_viewing()
        elif self.trailing is None or self.trailing.done():
            self.trailing = asyncio.ensure_future(self._send_viewing_later(wait))

    async def _send_viewing_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        await self.send_viewing()

    async def send_viewing(self) -> None:
        if not self.joined:
            return
        self.viewing_sent_at = asyncio.get_running_loop().time()
        figures = await _viewing_for_staff(self.scope["user"].pk)
        if figures is None:
            await self.channel_layer.group_discard(STAFF_SESSIONS_GROUP, self.channel_name)
            self.joined = False
            await self.close(code=NOT_STAFF)
            return
        await self.send_json({"type": "viewing", **figures})
