from django.urls import path

from ads import account_api, api

urlpatterns = [
    path("decisions", api.DecisionView.as_view(), name="api-decisions"),
    path("events", api.EventBatchView.as_view(), name="api-events"),
    # The account API (account keys)
    path("campaigns", account_api.CampaignListView.as_view(), name="api-campaigns"),
    path(
        "campaigns/<int:campaign_id>",
        account_api.CampaignDetailView.as_view(),
        name="api-campaign",
    ),
]
