"""The advertiser web app, mounted at /a/. Names are global (no namespace) because settings
refer to `accounts` (LOGIN_REDIRECT_URL) and pages link across apps: the account's home page,
`overview` (/a/<slug>/), is the analytics dashboard (analytics/urls.py)."""

from django.urls import path

from ads import key_views, views

urlpatterns = [
    path("", views.account_list, name="accounts"),
    # Campaigns
    path("<slug:slug>/campaigns/", views.campaign_list, name="campaigns"),
    path("<slug:slug>/campaigns/new/", views.campaign_create, name="campaign_new"),
    path(
        "<slug:slug>/campaigns/<int:campaign_id>/",
        views.campaign_detail,
        name="campaign_detail",
    ),
    path(
        "<slug:slug>/campaigns/<int:campaign_id>/edit/",
        views.campaign_edit,
        name="campaign_edit",
    ),
    path(
        "<slug:slug>/campaigns/<int:campaign_id>/status/",
        views.campaign_status,
        name="campaign_status",
    ),
    # Line items
    path("<slug:slug>/line-items/", views.line_item_list, name="line_items"),
    path("<slug:slug>/line-items/new/", views.line_item_create, name="line_item_new"),
    path("<slug:slug>/line-items/reach/", views.line_item_reach, name="line_item_reach"),
    path(
        "<slug:slug>/line-items/<int:line_item_id>/",
        views.line_item_detail,
        name="line_item_detail",
    ),
    path(
        "<slug:slug>/line-items/<int:line_item_id>/edit/",
        views.line_item_edit,
        name="line_item_edit",
    ),
    path(
        "<slug:slug>/line-items/<int:line_item_id>/status/",
        views.line_item_status,
        name="line_item_status",
    ),
    path(
        "<slug:slug>/line-items/<int:line_item_id>/delivery/",
        views.line_item_delivery,
        name="line_item_delivery",
    ),
    # Creatives
    path("<slug:slug>/creatives/", views.creative_list, name="creatives"),
    path("<slug:slug>/creatives/new/", views.creative_create, name="creative_new"),
    path(
        "<slug:slug>/creatives/<int:creative_id>/",
        views.creative_detail,
        name="creative_detail",
    ),
    path(
        "<slug:slug>/creatives/<int:creative_id>/edit/",
        views.creative_edit,
        name="creative_edit",
    ),
    path(
        "<slug:slug>/creatives/<int:creative_id>/status/",
        views.creative_status,
        name="creative_status",
    ),
    # API keys (owners only)
    path("<slug:slug>/keys/", key_views.account_keys, name="account_keys"),
    path(
        "<slug:slug>/keys/<int:key_id>/revoke/",
        key_views.account_key_revoke,
        name="account_key_revoke",
    ),
]
