"""The ASGI entry point: static files, HTTP to Django, WebSockets to Channels consumers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csmsite.settings")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from accounts.websocket import WebSocketAuthStack, browser_origin_validator  # noqa: E402
from core.body_limit import bounded_body_app  # noqa: E402
from core.static import static_files_app  # noqa: E402
from core.websocket import websocket_not_found  # noqa: E402
from ingest.routing import websocket_urlpatterns as ingest_websocket_urls  # noqa: E402
from ingest.tasks import embedded_jobs_preload  # noqa: E402
from speech.engines.registry import engine_preload_default  # noqa: E402
from speech.watermark import watermark_preload  # noqa: E402

# Last, a catch-all: an upgrade on any other path is closed as not found, not a 500.
websocket_urls = [*ingest_websocket_urls, re_path(r"", websocket_not_found)]

application = ProtocolTypeRouter(
    {
        "http": static_files_app(bounded_body_app(django_asgi_app)),
        # Browsers' cross-site WebSockets are refused: the session cookie would ride along.
        "websocket": browser_origin_validator(WebSocketAuthStack(URLRouter(websocket_urls))),
    }
)

# Start loading the default engine, the watermark and (without a broker) what clone jobs need
# now, in the background, so the first request finds them ready.
engine_preload_default()
watermark_preload()
embedded_jobs_preload()
