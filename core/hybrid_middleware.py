"""A base for middlewares that must not cost a thread switch per request."""

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase


class HybridMiddleware(ABC):
    """A middleware that runs in its caller's mode, sync or async, without a thread switch
    (Django's MiddlewareMixin hops to a thread for each hook under ASGI). Subclasses write
    `handle` and `ahandle`."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.ahandle(request)
        return self.handle(request)

    @abstractmethod
    def handle(self, request: HttpRequest) -> HttpResponseBase: ...

    @abstractmethod
    async def ahandle(self, request: HttpRequest) -> HttpResponseBase: ...
