from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from ads import api as ads_api
from analytics.urls import staff_urlpatterns
from config import errors, health
from config.api import route_not_found

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="accounts", permanent=False)),
    path("favicon.ico", errors.favicon, name="favicon"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("a/", include("analytics.urls")),  # the dashboards, /a/<slug>/ (overview) first
    path("a/", include("ads.urls")),
    path("a/", include("insights.urls")),
    path("staff/", include(staff_urlpatterns)),  # the executive dashboard, model monitoring
    path("watch/", include("engagement.urls")),  # the viewer app
    path("api/v1/", include("ads.api_urls")),
    path("api/v1/", include("analytics.api_urls")),  # reports (account keys)
    path("api/v1/", include("insights.api_urls")),  # the insights question (account keys)
    re_path(r"^api/v1/", route_not_found),  # any other /api/v1/ path: the envelope's 404
    path("t/<str:token>/<str:event_type>", ads_api.track, name="track"),
    path("", include("ads.vast.urls")),  # VAST and VMAP ad tags
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file (?script), not inline: the
    # Content-Security-Policy runs no inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", template_name="api/swagger_ui.html"
        ),
        name="api-docs",
    ),
]

handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"

admin.site.site_header = "Interlude staff"
admin.site.site_title = "Interlude staff"
