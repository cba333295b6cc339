"""Advertiser dashboards, mounted at /a/ beside the ads app's pages (names are global, like
theirs: `overview` is the account's home page); and the staff pages, mounted at /staff/."""

from django.urls import path

from analytics import staff_titles, staff_views, views

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

staff_urlpatterns = [
    path("", staff_views.executive_dashboard, name="staff_dashboard"),
    path("figures/", staff_views.executive_figures_partial, name="staff_dashboard_figures"),
    path("models/<str:kind>/", staff_views.model_monitoring, name="staff_models"),
    path("sessions/", staff_views.live_sessions, name="staff_sessions"),
    path("sessions/<int:session_id>/", staff_views.live_session, name="staff_session"),
    path("titles/<int:title_id>/", staff_titles.title_breaks, name="staff_title"),
]
