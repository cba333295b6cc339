from django.urls import path

from insights import api

urlpatterns = [
    path("insights/questions", api.QuestionView.as_view(), name="api-insights-questions"),
]
