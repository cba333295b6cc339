"""Advertiser dashboards, mounted at /a/ beside the ads app's pages (names are global, like
theirs: `overview` is the account's home page)."""

from django.urls import path

from analytics import views

urlpatterns = [
    path("<slug:slug>/", views.overview, name="overview"),
    path(
        "<slug:slug>/campaigns/<int:campaign_id>/report/",
        views.campaign_report,
        name="campaign_report",
    ),
    path(
        "<slug:slug>/line-items/<int:line_item_id>/report/",
        views.line_item_report,
        name="line_item_report",
    ),
]
