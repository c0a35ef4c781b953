"""DRF authentication for the API."""

from django.contrib.auth.models import AbstractUser
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from accounts.services import user_default


class DefaultUserAuthentication(BaseAuthentication):
    """Keyless single-user mode: every request acts as the default account.

    OpenAI clients always send `Authorization: Bearer ...`; in this mode any value is accepted
    and ignored, so clients configured with any key work.
    """

    def authenticate(self, request: Request) -> tuple[AbstractUser, None]:
        return user_default(), None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
