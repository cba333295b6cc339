"""WebSocket routes; the live dashboards (analytics) add theirs here."""

websocket_urlpatterns: list = []
