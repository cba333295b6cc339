"""WebSocket routes."""

from django.urls import path

from analytics.consumers import DashboardConsumer, StaffSessionsConsumer

websocket_urlpatterns = [
    path("ws/a/<slug:slug>/live/", DashboardConsumer.as_asgi()),
    path("ws/staff/sessions/", StaffSessionsConsumer.as_asgi()),
]
