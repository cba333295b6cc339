"""The insights chat, mounted at /a/ beside the dashboards."""

from django.urls import path

from insights import views

urlpatterns = [
    path("<slug:slug>/insights/", views.page, name="insights"),
    path("<slug:slug>/insights/ask/", views.ask, name="insights_ask"),
    path(
        "<slug:slug>/insights/answers/<int:message_id>.csv",
        views.answer_csv,
        name="insights_answer_csv",
    ),
]
