from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from csmsite.health import healthz, readyz

api = [
    path("", include("speech.api.urls")),
    path("openapi.json", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="api-docs"),
]

urlpatterns = [
    # The OpenAI-style prefix, and the original server's /api/v1 prefix, serve the same API.
    path("v1/", include((api, "api"), namespace="v1")),
    path("api/v1/", include((api, "api"), namespace="api-v1")),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("admin/", admin.site.urls),
]

handler404 = "accounts.errors.handler404"
handler500 = "accounts.errors.handler500"
