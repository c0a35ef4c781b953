"""The Host check on every request, the API's included.

Django checks a request's Host against ALLOWED_HOSTS only when something calls
`request.get_host()`; the browser middleware that would is skipped on the API
(core/middleware.py), so /v1 and /api answered any Host. With AUTH_MODE=open that is DNS
rebinding: a web page whose name resolves to this server could use it as the owner. This
middleware, near the front of the chain, checks the Host of every request on every path.

On the API a refusal is OpenAI's error shape (built here: core cannot import the api app, and
the code is listed in api/error_codes.py's ErrorCode as INVALID_HOST); elsewhere Django's own
handling answers its plain 400 and logs to `django.security.DisallowedHost`.

Static files (core/static.py) are served beside Django and never reach this check: they are
the public scripts and styles of the pages and the docs, the same for every caller.
"""

import logging

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase, JsonResponse

from core.hybrid_middleware import HybridMiddleware
from core.middleware import is_api_request

INVALID_HOST_CODE = "invalid_host"
INVALID_HOST_MESSAGE = "The Host header names a host this server does not serve."

logger = logging.getLogger("django.security.DisallowedHost")


def host_refusal(request: HttpRequest) -> HttpResponseBase | None:
    """None when the request's Host is allowed; else the API's 400 (API paths), or Django's
    DisallowedHost raised for its own 400 page."""
    try:
        request.get_host()
    except DisallowedHost as error:
        if not is_api_request(request):
            raise
        logger.warning("%s", error)
        body = {
            "error": {
                "message": INVALID_HOST_MESSAGE,
                "type": "invalid_request_error",
                "param": None,
                "code": INVALID_HOST_CODE,
            }
        }
        return JsonResponse(body, status=400)
    return None


class HostCheckMiddleware(HybridMiddleware):
    """Refuse a request whose Host is not in ALLOWED_HOSTS before any view sees it."""

    def handle(self, request: HttpRequest) -> HttpResponseBase:
        return host_refusal(request) or self.get_response(request)

    async def ahandle(self, request: HttpRequest) -> HttpResponseBase:
        return host_refusal(request) or await self.get_response(request)
