"""Liveness and readiness probes for load balancers and orchestrators.

Readiness needs the database, and whatever the apps register here (speech: its default engine,
in SpeechConfig.ready()), each reporting whether it is ready and what to say about it."""

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

# Whether a part of the server is ready, and the fields it adds to /readyz's body.
ReadinessCheck = Callable[[], tuple[bool, dict[str, Any]]]
_readiness_checks: list[ReadinessCheck] = []


def register_readiness_check(check: ReadinessCheck) -> None:
    _readiness_checks.append(check)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and answering."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to serve speech: the database answers and every registered check is ready."""
    try:
        connection.ensure_connection()
        database = "ok"
    except DatabaseError:
        database = "unreachable"
    ready = database == "ok"
    details: dict[str, Any] = {}
    for check in _readiness_checks:
        check_ready, check_details = check()
        ready = ready and check_ready
        details.update(check_details)
    body = {"status": "ready" if ready else "not_ready", "database": database, **details}
    return JsonResponse(body, status=200 if ready else 503)
