from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from csmsite.health import healthz, readyz
from csmsite.metrics import metrics_view

urlpatterns = [
    # The OpenAI-style prefix, and the original server's /api/v1 prefix, serve the same API.
    path("v1/", include("speech.api.urls")),
    path("v1/", include("ingest.api.urls")),
    path("v1/", include("voices.api.urls")),
    path("api/v1/", include("speech.api.urls")),
    path("api/v1/", include("ingest.api.urls")),
    path("api/v1/", include("voices.api.urls")),
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="openapi-schema"),
    path("v1/docs", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("accounts.urls")),
    # The web UI: /, /voice-cloning (and the session endpoints it calls), /connect.
    path("", include("ingest.web_urls")),
    path(settings.ADMIN_URL, admin.site.urls),
]

handler404 = "accounts.errors.handler404"
handler500 = "accounts.errors.handler500"
