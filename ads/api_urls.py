from django.urls import path

from ads import api

urlpatterns = [
    path("decisions", api.DecisionView.as_view(), name="api-decisions"),
    path("events", api.EventBatchView.as_view(), name="api-events"),
]
