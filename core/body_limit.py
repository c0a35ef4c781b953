"""Request bodies bounded before Django reads them.

Django's ASGI handler reads a whole body (to memory, then to a temporary file) before any view
or parser can look at it, so a per-route limit checked by a parser comes too late for a body of
gigabytes, or for one that announces a size and then trickles or stops. This layer sits in
front of Django: it refuses at once a body whose Content-Length is over the route's limit,
stops reading a body (chunked, or lying about its length) as soon as it passes the limit, and
gives up on a body whose next piece does not arrive within REQUEST_BODY_TIMEOUT_SECONDS, or
that, once that long has passed, averages less than REQUEST_BODY_MIN_BYTES_PER_SECOND (a timeout
per piece alone lets a byte every few seconds hold a request for ever).
The exact per-route limits (a JSON body, a conversation, an upload) stay with the parsers;
this one is the same or a little larger, so it never refuses what they would accept. The app
that serves the routes declares them here when it is ready (api/body_limits.py): this module
names no route and no limit of its own.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from core.logging import REQUEST_ID_HEADER, request_id_from_header

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]
# A limit in bytes, read for each request so that a changed setting applies at once.
Limit = Callable[[], int]

# Multipart framing and the form's text fields around an uploaded file.
FORM_OVERHEAD_BYTES = 1024 * 1024
# How much of a refused body is read and dropped so that the refusal reaches its client.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_MAX_SECONDS = 5.0
DRAIN_IDLE_SECONDS = 0.5

# API routes (as listed under each of settings.API_URL_PREFIXES) whose bodies may be larger than
# API_MAX_BODY_BYTES, declared by the app that serves them.
_json_routes: dict[str, Limit] = {}
_upload_routes: dict[str, Limit] = {}


def register_json_route(route: str, limit: Limit) -> None:
    """Let JSON bodies to the API route `route` (as api/urls.py lists it) reach `limit()`."""
    _json_routes[route] = limit


def register_upload_route(route: str, limit: Limit) -> None:
    """Let the API route `route` take a multipart upload of `limit()` bytes (and its form)."""
    _upload_routes[route] = limit


def _upload_limit() -> int:
    # Every upload route takes the largest upload: the owners' parsers give the exact refusal,
    # worded for their own route, of anything between their limit and this one.
    largest = max((limit() for limit in _upload_routes.values()), default=0)
    return largest + FORM_OVERHEAD_BYTES


def body_limit(path: str) -> int:
    """The most bytes a request body to `path` may have."""
    for prefix in settings.API_URL_PREFIXES:
        if path.startswith(f"/{prefix}"):
            route = path[len(prefix) + 1 :]
            if route in _json_routes:
                return _json_routes[route]()
            if route in _upload_routes:
                return _upload_limit()
            return settings.API_MAX_BODY_BYTES
    # Browser pages and the admin: the cloning form's upload is the largest body they take.
    return max(_upload_limit(), settings.API_MAX_BODY_BYTES)


class _BodyRefused(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


async def _refuse(scope: dict, send: Callable, refusal: _BodyRefused) -> None:
    body = json.dumps(
        {
            "error": {
                "message": refusal.message,
                "type": "invalid_request_error",
                "param": None,
                "code": refusal.code,
            }
        }
    ).encode()
    headers = dict(scope.get("headers") or [])
    request_id = request_id_from_header(
        headers.get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
    )
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _drain(receive: Callable) -> None:
    """Read and drop what is still arriving of a refused body (at most DRAIN_MAX_BYTES, for at
    most DRAIN_MAX_SECONDS, stopping once nothing comes for DRAIN_IDLE_SECONDS). Closing a
    connection with unread data makes the kernel reset it, and a client still sending would then
    never see the refusal; a client that announced a body and waits sends nothing, and is
    answered after the idle wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_MAX_SECONDS
    drained = 0
    while drained <= DRAIN_MAX_BYTES:
        wait = min(DRAIN_IDLE_SECONDS, deadline - loop.time())
        if wait <= 0:
            return
        try:
            message = await asyncio.wait_for(receive(), timeout=wait)
        except TimeoutError:
            return
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _too_large(limit: int) -> _BodyRefused:
    return _BodyRefused(
        413, f"The request body is larger than {limit} bytes.", code="request_too_large"
    )


def _declared_length(scope: dict) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def next_piece_wait(started: float, now: float, received: int) -> float:
    """Seconds the next piece of a body may take: REQUEST_BODY_TIMEOUT_SECONDS, and no later
    than the body's allowance so far, that timeout plus the time its `received` bytes earn at
    REQUEST_BODY_MIN_BYTES_PER_SECOND since `started` (0 or less: it is too slow already)."""
    idle = settings.REQUEST_BODY_TIMEOUT_SECONDS
    allowance = idle + received / settings.REQUEST_BODY_MIN_BYTES_PER_SECOND
    return min(idle, started + allowance - now)


def bounded_body_app(app: ASGIApp) -> ASGIApp:
    """Wrap an HTTP ASGI app so that request bodies over their route's limit never reach it."""

    async def bounded(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _drain(receive)
            await _refuse(scope, send, _too_large(limit))
            return
        received = 0
        finished = False
        refusal: _BodyRefused | None = None
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def guarded_receive() -> dict[str, Any]:
            nonlocal received, finished, refusal
            if finished or refusal is not None:
                # The body is read (or refused): what is left is waiting for a disconnect.
                return await receive()
            try:
                wait = next_piece_wait(started, loop.time(), received)
                if wait <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), timeout=wait)
            except TimeoutError:
                refusal = _BodyRefused(
                    408,
                    "The request body did not arrive in time.",
                    code="request_timeout",
                )
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refusal = _too_large(limit)
                    # Django stops reading at a disconnect and answers nothing; we answer.
                    return {"type": "http.disconnect"}
                finished = not message.get("more_body", False)
            return message

        await app(scope, guarded_receive, send)
        if refusal is not None:
            if refusal.status == 413:
                await _drain(receive)
            await _refuse(scope, send, refusal)

    return bounded
