"""WebSocket routes."""

from channels.routing import URLRouter
from django.urls import path

from analytics.consumers import DashboardConsumer, StaffSessionsConsumer

websocket_urlpatterns = [
    path("ws/a/<slug:slug>/live/", DashboardConsumer.as_asgi()),
    path("ws/staff/sessions/", StaffSessionsConsumer.as_asgi()),
]

NO_ROUTE = 4404


class WebSocketRouter:
    """Channels' URLRouter over these routes, refusing a socket whose path no route matches as
    a consumer refuses an outsider (the handshake closed: HTTP 403), where URLRouter raises (a
    500 from the server)."""

    def __init__(self, routes: list) -> None:
        self.routes = routes
        self.router = URLRouter(routes)

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        route_path = scope["path"].removeprefix(scope.get("root_path", "")).lstrip("/")
        if any(route.pattern.match(route_path) for route in self.routes):
            return await self.router(scope, receive, send)
        await receive()  # the client's websocket.connect
        await send({"type": "websocket.close", "code": NO_ROUTE})
