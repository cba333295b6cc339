from django.urls import path

from analytics import api

urlpatterns = [
    path("reports/delivery", api.DeliveryReportView.as_view(), name="api-reports-delivery"),
    path("reports/comparison", api.ComparisonReportView.as_view(), name="api-reports-comparison"),
]
