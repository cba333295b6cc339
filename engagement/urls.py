"""The viewer app, mounted at /watch/."""

from django.urls import path

from engagement import api, views

urlpatterns = [
    path("", views.profiles, name="watch_profiles"),
    path("profiles/<int:viewer_id>", views.profile_choose, name="watch_profile_choose"),
    path("home", views.home, name="watch_home"),
    path("title/<int:title_id>", views.player, name="watch_player"),
    path("api/sessions", api.session_open, name="watch_session_open"),
    path("api/sessions/<int:session_id>/events", api.session_events, name="watch_session_events"),
]
