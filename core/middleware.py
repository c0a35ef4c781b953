"""Middleware that only browser pages need, skipped on the API.

Django's built-in middleware runs each hook through `sync_to_async` under ASGI: a thread hop
per hook and per request. The API authenticates with Bearer keys and answers JSON at exact
URLs, so sessions, CSRF, messages, frame options and slash appending are dead weight there;
these subclasses pass API requests straight through and behave exactly like Django's own for
browser pages.
"""

from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware

API_PREFIXES = ("/v1/", "/api/")


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIXES)


class SkipForApiMixin:
    """For a Django MiddlewareMixin subclass: API requests go straight to the next layer."""

    get_response: Callable

    def __call__(self, request: HttpRequest):
        if is_api_request(request) and not iscoroutinefunction(self):
            return self.get_response(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if is_api_request(request):
            return await self.get_response(request)
        return await super().__acall__(request)


class BrowserSessionMiddleware(SkipForApiMixin, SessionMiddleware):
    pass


class BrowserCommonMiddleware(SkipForApiMixin, CommonMiddleware):
    """Slash appending and the like are for page URLs; API URLs are exact."""


class BrowserCsrfMiddleware(SkipForApiMixin, CsrfViewMiddleware):
    async def process_view(
        self, request: HttpRequest, view: Callable, view_args: tuple, view_kwargs: dict
    ) -> HttpResponseBase | None:
        # Django calls process_view itself, outside __call__; the CSRF check lives there.
        if is_api_request(request):
            return None
        return await sync_to_async(super().process_view)(request, view, view_args, view_kwargs)


class BrowserAuthenticationMiddleware(SkipForApiMixin, AuthenticationMiddleware):
    pass


class BrowserMessageMiddleware(SkipForApiMixin, MessageMiddleware):
    pass


class BrowserXFrameOptionsMiddleware(SkipForApiMixin, XFrameOptionsMiddleware):
    pass
