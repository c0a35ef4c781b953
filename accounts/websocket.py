"""WebSocket authentication: an API key in the Authorization header (scripts), else the
browser's session (the web UI), as AuthMiddlewareStack provides it."""

from importlib import import_module
from types import SimpleNamespace
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth import get_user
from django.http.request import split_domain_port, validate_host

from accounts.selectors import api_key_authenticate

# Set in the scope when the user came from the API key, not the session.
_BY_API_KEY = "user_by_api_key"


class ApiKeyWebSocketMiddleware(BaseMiddleware):
    """Sets scope["user"] from `Authorization: Bearer <key>` when one is sent and valid."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        key = _bearer(scope)
        if key:
            api_key = await database_sync_to_async(api_key_authenticate)(key)
            if api_key is not None:
                scope = {**scope, "user": api_key.owner, _BY_API_KEY: True}
        return await super().__call__(scope, receive, send)


@database_sync_to_async
def still_signed_in(scope: dict) -> bool:
    """Whether the credential that opened this WebSocket still signs its user in.

    A socket outlives the handshake that checked it: a key revoked or expired, a session
    signed out, expired or ended by a password change must end the sockets they opened too.
    Cheap enough to ask before each message: the key's cached lookup, or one session load.
    """
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return False
    if scope.get(_BY_API_KEY):
        api_key = api_key_authenticate(_bearer(scope))
        return api_key is not None and api_key.owner_id == user.pk
    session = scope.get("session")
    session_key = getattr(session, "session_key", None)
    if not session_key:
        return False
    # Django's own per-request check, on a fresh load of the session: it exists, has not
    # expired, names this user, and its hash still matches the user's password.
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    current = get_user(SimpleNamespace(session=store))
    return current.is_authenticated and current.pk == user.pk


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


class BrowserOriginValidator:
    """Refuse WebSockets opened by pages of other origins: the browser would send its session
    cookie along. Browsers always send Origin on a WebSocket; a client without one is a script,
    which authenticates with its API key and carries no ambient credentials.

    An Origin is this server's own only if scheme, host and port all match the address the
    client reached (its Host header, itself one of ALLOWED_HOSTS), or it is listed in
    CSRF_TRUSTED_ORIGINS: the origins Django's CSRF check accepts for a form POST. Matching the
    host name alone would let a page on another port of the same host (another user's web app
    on a shared machine, a dev server) or on plain HTTP in and act with the session.
    """

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def browser_origin_validator(inner: Any) -> BrowserOriginValidator:
    return BrowserOriginValidator(inner)


def origin_allowed(scope: dict) -> bool:
    """Whether a WebSocket's Origin (if it sent one) is this server's own origin."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    own = _own_origin(scope)
    origin = _without_default_port(origin.strip().lower())
    if own is not None and origin == own:
        return True
    trusted = {_without_default_port(o.lower()) for o in settings.CSRF_TRUSTED_ORIGINS}
    return origin in trusted


def _own_origin(scope: dict) -> str | None:
    """scheme://host[:port] as the client reached this server; None if its Host is not ours."""
    host = (_header(scope, b"host") or "").strip().lower()
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return None
    scheme = "https" if _is_secure(scope) else "http"
    return _without_default_port(f"{scheme}://{host}")


def _allowed_hosts() -> list[str]:
    # As Django's HttpRequest.get_host(): with DEBUG and no hosts set, the loopback names.
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return allowed


def _is_secure(scope: dict) -> bool:
    """Whether the client used TLS: to this server, or to the proxy that says so in the
    header SECURE_PROXY_SSL_HEADER names (the same rule as Django's request.is_secure())."""
    if scope.get("scheme") in {"wss", "https"}:
        return True
    proxy_header = settings.SECURE_PROXY_SSL_HEADER
    if not proxy_header:
        return False
    meta_name, secure_value = proxy_header
    # Django's META name (HTTP_X_FORWARDED_PROTO) back to the header (x-forwarded-proto).
    name = meta_name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1")
    value = _header(scope, name)
    return value is not None and value.split(",")[0].strip() == secure_value


def _without_default_port(origin: str) -> str:
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin.removesuffix(port)
    return origin


def _header(scope: dict, name: bytes) -> str | None:
    for header_name, value in scope.get("headers", []):
        if header_name.lower() == name:
            return value.decode("latin-1")
    return None
