"""Static files (admin, API docs) served by WhiteNoise beside Django, not inside it.

WhiteNoise is WSGI middleware; inside Django's async middleware chain it would force every
request through a sync thread hop. Mounted here it only sees /static/ requests.
`collectstatic` (run by `make run` and the image build) fills STATIC_ROOT.
"""

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from asgiref.wsgi import WsgiToAsgi
from django.conf import settings
from whitenoise import WhiteNoise

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]


def _not_found(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    body = b'{"error": {"message": "Unknown static file.", "type": "invalid_request_error",'
    body += b' "param": null, "code": "unknown_url"}}'
    start_response("404 Not Found", [("Content-Type", "application/json")])
    return [body]


def static_files_app(django_app: ASGIApp) -> ASGIApp:
    whitenoise = WhiteNoise(
        _not_found,
        root=settings.STATIC_ROOT,
        prefix=settings.STATIC_URL,
        autorefresh=settings.DEBUG,
        max_age=3600,
    )
    static_app = WsgiToAsgi(whitenoise)

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"].startswith(settings.STATIC_URL):
            await static_app(scope, receive, send)
        else:
            await django_app(scope, receive, send)

    return app
