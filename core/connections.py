"""Connections bounded before a request reaches the application.

uvicorn reads a request's line and headers itself, before the ASGI app (and so before Django or
core/body_limit.py) sees anything, and it neither times that reading out nor caps how many
connections are open: a client sending a header line every half minute, or connecting and
sending nothing, held its connection for ever. This HTTP/1.1 protocol (uvicorn's h11 one, chosen
through Config's `http=`) adds both bounds:

- Header time: a connection must complete its request line and headers within
  HTTP_HEADER_TIMEOUT_SECONDS of connecting, and each later request on a kept-alive connection
  within as long of its first byte; otherwise it is closed. Between requests, an idle kept-alive
  connection is closed by uvicorn's own keep-alive timeout (HTTP_KEEPALIVE_SECONDS), which a
  proxy's pool of idle connections must outlast.
- Open connections: beyond HTTP_MAX_CONNECTIONS, a new connection makes room by closing the
  connection that has waited longest without a complete request head (a slow or idle client:
  an honest one sends its head in one piece). Where every connection is in the middle of a
  request (their bodies are bounded by core/body_limit.py), the new one is let in only to be
  answered: the health probes are served and anything else gets 503. Health checks therefore
  keep answering whatever slow clients do.
"""

import asyncio
import itertools
from typing import Any

from django.conf import settings
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.h11_impl import H11Protocol

# Answered even beyond the connection cap: load balancers and orchestrators must see the process
# alive while slow clients crowd it (csmsite/urls.py serves them).
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
# Orders the connections by when they began waiting for a head (a clock's ties could not).
_waits = itertools.count()


def health_only(app: ASGI3Application) -> ASGI3Application:
    """`app` for the health probes; 503 (and close) for anything else."""

    async def answer(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "http" and scope["path"] in HEALTH_PATHS:
            await app(scope, receive, send)
        else:
            await service_unavailable(scope, receive, send)

    return answer


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head timeout and a cap on open connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout: float = settings.HTTP_HEADER_TIMEOUT_SECONDS
        self.max_connections: int = settings.HTTP_MAX_CONNECTIONS
        self._head_timer: asyncio.TimerHandle | None = None
        # Kept alive between requests: the head timer starts with the next request's first byte.
        self._idle = False
        # When (in order) this connection began waiting for a complete request head (None while
        # a request is in progress): the longest waiting is closed first to make room.
        self.waiting_since: int | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections and not self._make_room():
            # Nobody could be closed for it: let it in to be answered, not served.
            self.logger.warning("Connection limit reached: answering 503 but to health probes.")
            self.app = health_only(self.app)
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_received()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        # uvicorn starts a new request/response cycle once a request's head is complete.
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:
            self._head_received()

    def handle_websocket_upgrade(self, event: Any) -> None:
        self._head_received()
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        # (A pipelined request already in the buffer starts a new cycle at once.)
        if not self.transport.is_closing() and self.cycle is cycle:
            # Idle until the next request: uvicorn's keep-alive timeout bounds the wait (a
            # proxy's pooled connection must not be closed under its next request sooner), and
            # the connection counts as waiting, the first to go to make room.
            self._head_received()
            self.waiting_since = next(_waits)
            self._idle = True

    def data_received(self, data: bytes) -> None:
        if self._idle:
            # The next request has begun: it has as long for its head as the first one had.
            self._idle = False
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
        super().data_received(data)

    def _await_head(self) -> None:
        self._head_received()
        self.waiting_since = next(_waits)
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _head_received(self) -> None:
        self._idle = False
        self.waiting_since = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.waiting_since is not None and not self.transport.is_closing():
            self.logger.info("Closed a connection that sent no complete request head in time.")
            self.waiting_since = None
            self.transport.close()

    def _make_room(self) -> bool:
        """Close the connection waiting longest for its request head; False if none waits."""
        waiting = [
            connection
            for connection in self.connections
            if isinstance(connection, BoundedH11Protocol)
            and connection.waiting_since is not None
            and not connection.transport.is_closing()
        ]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda connection: connection.waiting_since or 0)
        self.logger.warning("Connection limit reached: closed the longest-waiting connection.")
        oldest._head_received()
        oldest.transport.close()
        # Its connection_lost comes later, from the loop: the count must have room at once.
        self.connections.discard(oldest)
        return True
