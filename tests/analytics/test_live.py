"""The live dashboard socket: members only, events posted through the API reach it, and
nothing of another account ever does."""

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.db import connections
from django.test import Client

from ads import selectors as ads_selectors
from ads import services
from ads.decisioning.index import index_holder
from ads.decisioning.state import state_holder
from ads.models import Membership
from analytics import consumers
from config.routing import WebSocketRouter, websocket_urlpatterns
from tests.ads.conftest import line_item_with_creative
from tests.factories import AdBreakFactory, ViewerFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

# The socket's trailing read comes this long after the last message (1 s in production): the
# tests that prove nothing more arrives wait QUIET, five times as long, after it.
TRAILING = 0.1
QUIET = 5 * TRAILING


@pytest.fixture(autouse=True)
def _short_trailing_read(monkeypatch):
    monkeypatch.setattr(consumers, "TRAILING_SECONDS", TRAILING)


def socket(user, slug="acme") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/a/{slug}/live/")
    communicator.scope["user"] = user
    return communicator


def decide_and_report(tenancy, advertiser, count=1) -> dict:
    """A decision for `advertiser`'s line item, and its impressions posted through the API."""
    ad_break = AdBreakFactory()
    viewers = [ViewerFactory() for _ in range(count)]
    line_item_with_creative(advertiser, category="travel")
    index_holder.reset()
    state_holder.reset()
    _, raw_key = services.platform_key_create(name="player")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    events = []
    for n, viewer in enumerate(viewers):
        decision = client.post(
            "/api/v1/decisions",
            {
                "viewer_id": viewer.external_id,
                "title_id": ad_break.title_id,
                "ad_break_id": ad_break.pk,
                "device": "ctv",
            },
            content_type="application/json",
        ).json()
        for slot in decision["pod"]:
            if slot["advertiser_id"] == advertiser.pk:
                token = slot["tracking"]["impression"].split("/t/")[1].split("/")[0]
                events.append({"event_id": f"e{n}", "token": token, "type": "impression"})
    report = client.post("/api/v1/events", {"events": events}, content_type="application/json")
    connections.close_all()  # this ran in a worker thread: leave no connection open
    return report.json()


async def test_an_event_posted_through_the_api_reaches_the_members_dashboard(tenancy):
    communicator = socket(tenancy.analyst)
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_json_from(timeout=2)
    assert (first["type"], first["impressions"], first["spend"]) == ("today", 0, "0.00")
    report = await sync_to_async(decide_and_report)(tenancy, tenancy.advertiser)
    assert report["accepted"] == 1
    update = await communicator.receive_json_from(timeout=2)
    assert (update["impressions"], update["spend"]) == (1, "0.01")  # 1.25 cents
    await communicator.disconnect()


async def test_an_outsiders_socket_is_refused(tenancy):
    for user in (tenancy.outsider, AnonymousUser()):
        connected, code = await socket(user).connect()
        assert (connected, code) == (False, 4404)


async def test_another_accounts_events_never_reach_the_socket(tenancy):
    communicator = socket(tenancy.owner)
    assert (await communicator.connect())[0]
    await communicator.receive_json_from(timeout=2)
    report = await sync_to_async(decide_and_report)(tenancy, tenancy.rival)
    assert report["accepted"] == 1
    # The rival's message was sent before the report returned. One to this account's group
    # after it: the socket handles its messages in order, so it answers the rival's (had it
    # come) first. Exactly the second's answer and its trailing read arrive.
    await get_channel_layer().group_send(
        services.live_group(tenancy.advertiser.pk), {"type": "delivery.changed"}
    )
    messages = [await communicator.receive_json_from(timeout=2)]
    while not await communicator.receive_nothing(timeout=QUIET):
        messages.append(await communicator.receive_json_from())
    assert [(m["type"], m["impressions"]) for m in messages] == [("today", 0)] * 2
    await communicator.disconnect()


async def test_a_burst_of_events_sends_a_few_messages_and_the_final_numbers(tenancy):
    communicator = socket(tenancy.owner)
    assert (await communicator.connect())[0]
    await communicator.receive_json_from(timeout=2)
    report = await sync_to_async(decide_and_report)(tenancy, tenancy.advertiser, count=20)
    assert report["accepted"] == 20
    messages = []
    while not await communicator.receive_nothing(timeout=QUIET):
        messages.append(await communicator.receive_json_from())
    # One batch: the leading message and the trailing re-read, not one per event.
    assert 1 <= len(messages) <= 3
    assert messages[-1]["impressions"] == 20
    totals = await sync_to_async(ads_selectors.live_totals)(
        advertiser=tenancy.advertiser, day=dt.date.fromisoformat(messages[-1]["day"])
    )
    assert totals["impressions"] == 20
    await communicator.disconnect()


@pytest.mark.parametrize("removal", ["membership deleted", "user deactivated"])
async def test_a_member_removed_from_the_account_stops_receiving_its_totals(tenancy, removal):
    communicator = socket(tenancy.analyst)
    assert (await communicator.connect())[0]
    await communicator.receive_json_from(timeout=2)
    if removal == "membership deleted":
        await sync_to_async(Membership.objects.filter(user=tenancy.analyst).delete)()
    else:
        await sync_to_async(User.objects.filter(pk=tenancy.analyst.pk).update)(is_active=False)
    report = await sync_to_async(decide_and_report)(tenancy, tenancy.advertiser)
    assert report["accepted"] == 1
    # The next update closes the socket instead of carrying the numbers.
    assert await communicator.receive_output(timeout=2) == {
        "type": "websocket.close",
        "code": 4404,
    }
    assert await communicator.receive_nothing(timeout=QUIET)


@pytest.mark.parametrize("path", ["/ws/nowhere/", "/ws/a/acme/", "/ws/a/acme/live/extra/"])
async def test_a_socket_on_an_unrouted_path_is_refused_not_a_500(tenancy, path):
    communicator = WebsocketCommunicator(WebSocketRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = tenancy.owner
    assert await communicator.connect() == (False, 4404)
