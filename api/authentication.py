"""DRF authentication for the API: `Authorization: Bearer <key>`.

AUTH_MODE=required (the default): a usable key is needed for everything that generates audio
or touches voices. AUTH_MODE=open, for a trusted localhost: requests without a usable key act
as the default account (clients that insist on sending some key work unchanged), while a real
key still identifies its owner.

In open mode any web page the owner visits could otherwise write as them: a form or `fetch`
POST with a multipart or text body is a CORS "simple" request, sent without a preflight. So a
keyless write (POST, PUT, PATCH, DELETE) that a browser marks as coming from another origin
(`Origin`, `Sec-Fetch-Site`) is refused; scripts and SDKs send neither header and are not
affected, nor is any request with a real key.

Error messages never repeat any part of a presented key: a key pasted into the wrong place
must not travel further through logs or screenshots of the answer.
"""

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from accounts.models import ApiKey
from accounts.selectors import api_key_authenticate
from accounts.services import user_default
from api.error_codes import ErrorCode
from api.errors import ApiError

MALFORMED_HEADER_MESSAGE = "Malformed Authorization header. Use: Authorization: Bearer YOUR_KEY"
INCORRECT_KEY_MESSAGE = (
    "Incorrect API key provided. You can find your API keys on this server's API keys page."
)
CROSS_SITE_MESSAGE = (
    "A request without an API key from another site's page cannot change anything here. "
    "Send an API key, or make the request from this server's own pages."
)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Sec-Fetch-Site values a browser sends for a request this server's own pages made, or that
# the user made directly (typed URL, bookmark). "same-site" (another port or subdomain of the
# same site) is refused too: a different origin, often a different local application.
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})


def keyless_mode() -> bool:
    return settings.AUTH_MODE == "open"


def cross_site_write(request: Request) -> bool:
    """Whether a browser says this write request came from a page of another origin."""
    if request.method in _SAFE_METHODS:
        return False
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.strip().lower() not in _OWN_FETCH_SITES:
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    own = f"{request.scheme}://{request.get_host()}".lower()
    trusted = {own, *(item.lower() for item in settings.CSRF_TRUSTED_ORIGINS)}
    return origin.strip().lower() not in trusted


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[AbstractUser, ApiKey | None] | None:
        header = get_authorization_header(request).decode("latin-1").strip()
        scheme, _, key = header.partition(" ")
        key = key.strip()
        api_key = api_key_authenticate(key) if scheme.lower() == "bearer" and key else None
        if api_key is not None:
            return api_key.owner, api_key
        if keyless_mode():
            if cross_site_write(request):
                raise ApiError(403, CROSS_SITE_MESSAGE, code=ErrorCode.CROSS_SITE_REQUEST)
            return user_default(), None
        if not header:
            return None  # DRF answers 401 "not authenticated" where a view needs a user
        if scheme.lower() != "bearer" or not key:
            raise AuthenticationFailed(MALFORMED_HEADER_MESSAGE)
        raise AuthenticationFailed(INCORRECT_KEY_MESSAGE)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
