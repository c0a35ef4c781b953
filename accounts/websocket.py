"""WebSocket authentication: an API key in the Authorization header (scripts), else the
browser's session (the web UI), as AuthMiddlewareStack provides it."""

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings

from accounts.selectors import api_key_authenticate


class ApiKeyWebSocketMiddleware(BaseMiddleware):
    """Sets scope["user"] from `Authorization: Bearer <key>` when one is sent and valid."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        key = _bearer(scope)
        if key:
            api_key = await database_sync_to_async(api_key_authenticate)(key)
            if api_key is not None:
                scope = {**scope, "user": api_key.owner}
        return await super().__call__(scope, receive, send)


def _bearer(scope: dict) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, key = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer":
                return key.strip()
    return ""


def WebSocketAuthStack(inner: Any) -> Any:
    # The session stack runs first; a valid key then overrides its (anonymous) user.
    return AuthMiddlewareStack(ApiKeyWebSocketMiddleware(inner))


class BrowserOriginValidator(OriginValidator):
    """Refuse WebSockets opened by pages of other sites: the browser would send its session
    cookie along. Browsers always send Origin on a WebSocket; a client without one is a script,
    which authenticates with its API key and carries no ambient credentials."""

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def browser_origin_validator(inner: Any) -> BrowserOriginValidator:
    """Origins allowed: this server's own hosts (ALLOWED_HOSTS), as Channels' own validator."""
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(inner, allowed)
