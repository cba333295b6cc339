"""WebSocket routes."""

from django.urls import path

from analytics.consumers import DashboardConsumer

websocket_urlpatterns = [
    path("ws/a/<slug:slug>/live/", DashboardConsumer.as_asgi()),
]
