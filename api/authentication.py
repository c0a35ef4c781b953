"""DRF authentication for the API: `Authorization: Bearer <key>`.

AUTH_MODE=required (the default): a usable key is needed for everything that generates audio
or touches voices. AUTH_MODE=open, for a trusted localhost: requests without a usable key act
as the default account (clients that insist on sending some key work unchanged), while a real
key still identifies its owner.
"""

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from accounts.keys import key_masked
from accounts.models import ApiKey
from accounts.selectors import api_key_authenticate
from accounts.services import user_default


def keyless_mode() -> bool:
    return settings.AUTH_MODE == "open"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[AbstractUser, ApiKey | None] | None:
        header = get_authorization_header(request).decode("latin-1").strip()
        scheme, _, key = header.partition(" ")
        key = key.strip()
        api_key = api_key_authenticate(key) if scheme.lower() == "bearer" and key else None
        if api_key is not None:
            return api_key.owner, api_key
        if keyless_mode():
            return user_default(), None
        if not header:
            return None  # DRF answers 401 "not authenticated" where a view needs a user
        if scheme.lower() != "bearer" or not key:
            raise AuthenticationFailed(
                "Malformed Authorization header. Use: Authorization: Bearer YOUR_KEY"
            )
        raise AuthenticationFailed(f"Incorrect API key provided: {key_masked(key)}.")

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
