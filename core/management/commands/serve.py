import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand

from core.connections import BoundedH11Protocol
from core.proxies import uvicorn_proxy_options


class Command(BaseCommand):
    help = "Serve the ASGI application with uvicorn on HOST:PORT (from settings)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=None)
        parser.add_argument("--port", type=int, default=None)
        parser.add_argument("--workers", type=int, default=1)

    def handle(self, *args, host: str | None, port: int | None, workers: int, **options) -> None:
        host = host or settings.HOST
        port = port or settings.PORT
        self.stdout.write(
            f"Serving on http://{host}:{port}  "
            f"(API: http://{host}:{port}/v1, docs: http://{host}:{port}/v1/docs)"
        )
        uvicorn.run(
            "csmsite.asgi:application",
            host=host,
            port=port,
            workers=workers,
            # Django has no lifespan protocol; engines start loading when the app is imported.
            lifespan="off",
            log_level=settings.LOG_LEVEL.lower(),
            # SIGTERM: stop accepting, let requests in flight finish for this long, then exit.
            timeout_graceful_shutdown=settings.SHUTDOWN_GRACE_SECONDS,
            # Bounds uvicorn itself lacks: time to send the request head, and open connections.
            http=BoundedH11Protocol,
            # How long an idle kept-alive connection stays open: above a pooling proxy's own.
            timeout_keep_alive=settings.HTTP_KEEPALIVE_SECONDS,
            # X-Forwarded-For/-Proto are believed only from TRUSTED_PROXIES (none by default).
            **uvicorn_proxy_options(),
        )
