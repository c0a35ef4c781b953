"""The answer to a WebSocket upgrade on a path that no consumer serves.

Channels' URLRouter raises when no route matches, which the server logs with a traceback and
answers with a 500, to anyone, authenticated or not. The catch-all route that csmsite/asgi.py
puts last sends such upgrades here instead: accepted, then closed at once with NOT_FOUND, the
way the job consumer says "no such job", so the client learns why and nothing is logged.
"""

from typing import Any

# Close code for "nothing here": 4000 plus the HTTP status, like the job consumer's codes.
NOT_FOUND = 4404


async def websocket_not_found(scope: dict, receive: Any, send: Any) -> None:
    """Accept and close with NOT_FOUND; nothing the client sends is read."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    # A close before the handshake completes reaches the client as a bare HTTP 403: accept
    # first, so that the client gets the close code that says why.
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": NOT_FOUND})
