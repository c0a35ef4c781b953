"""Liveness and readiness probes for load balancers and orchestrators."""

from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from speech.engines.registry import engine_default_name, engine_is_ready, engine_states
from speech.watermark import watermark_status


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and answering."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to serve speech: the database answers and the default engine is loaded."""
    try:
        connection.ensure_connection()
        database = "ok"
    except DatabaseError:
        database = "unreachable"
    default_engine = engine_default_name()
    ready = database == "ok" and engine_is_ready(default_engine)
    body = {
        "status": "ready" if ready else "not_ready",
        "database": database,
        "default_engine": default_engine,
        "engines": engine_states(),
        # Reported, not required: without its weights speech goes out unmarked.
        "watermark": watermark_status(),
    }
    return JsonResponse(body, status=200 if ready else 503)
