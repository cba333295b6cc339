from django.urls import path

from ads import api
from ads.account_api import delivery, demand

urlpatterns = [
    path("decisions", api.DecisionView.as_view(), name="api-decisions"),
    path("events", api.EventBatchView.as_view(), name="api-events"),
]

# The account API (account keys): each resource's list, one, and its actions.
for resource in (demand.CAMPAIGN, demand.LINE_ITEM, demand.CREATIVE):
    resource_views = demand.views(resource)
    plural = resource.plural
    urlpatterns += [
        path(plural, resource_views["list"].as_view(), name=f"api-{plural}"),
        path(f"{plural}/<int:pk>", resource_views["detail"].as_view(), name=f"api-{plural}-detail"),
        *(
            path(f"{plural}/<int:pk>/{action}", view.as_view(), name=f"api-{plural}-{action}")
            for action, view in resource_views["actions"].items()
        ),
    ]
urlpatterns.append(
    path(
        "line_items/<int:pk>/delivery",
        delivery.LineItemDeliveryView.as_view(),
        name="api-line_items-delivery",
    )
)
