"""Reading a WebSocket the server is expected to close."""

import json

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection


def messages_until_closed(ws: ClientConnection, *, timeout: float) -> tuple[list[dict], int | None]:
    """Every JSON message until the server closes the connection, and the close code."""
    messages = []
    try:
        while True:
            messages.append(json.loads(ws.recv(timeout=timeout)))
    except ConnectionClosed as closed:
        return messages, closed.rcvd.code if closed.rcvd else None
