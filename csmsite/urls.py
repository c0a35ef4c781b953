from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from core.health import healthz, readyz
from core.metrics import metrics_view

urlpatterns = [
    # The OpenAI-style prefix, and the original server's /api/v1 prefix, serve the same API.
    *(path(prefix, include("api.urls")) for prefix in settings.API_URL_PREFIXES),
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="openapi-schema"),
    path("v1/docs", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    # The web UI: sign-in, keys, /voice-cloning (and the session endpoints it calls), /connect.
    path("", include("web.urls")),
    path(settings.ADMIN_URL, admin.site.urls),
]

handler400 = "api.errors.handler400"
handler404 = "api.errors.handler404"
handler500 = "api.errors.handler500"
