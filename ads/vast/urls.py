"""The ad tags, at the root: /vast/4.2, /vmap/1.0 (their paths say the standard's version),
/vast/error (players' error reports) and /vast/try/ (a page that plays them)."""

from django.urls import path

from ads.vast import views

urlpatterns = [
    path(views.VAST_PATH.lstrip("/"), views.vast_tag, name="vast-tag"),
    path(views.VMAP_PATH.lstrip("/"), views.vmap_schedule, name="vmap"),
    path(views.ERROR_PATH.lstrip("/"), views.vast_error, name="vast-error"),
    path("vast/try/", views.vast_try, name="vast-try"),
]
