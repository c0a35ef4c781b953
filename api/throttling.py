"""The API's per-minute request limit as a DRF throttle, and the headers that report it."""

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from accounts.limits import request_budget_take
from accounts.models import ApiKey


def request_api_key(request: Request) -> ApiKey | None:
    """The API key a request authenticated with; None for a keyless (open mode) request."""
    return request.auth if isinstance(request.auth, ApiKey) else None


class RequestsPerMinuteThrottle(BaseThrottle):
    """A fixed one-minute window per key (per user without a key)."""

    def allow_request(self, request: Request, view) -> bool:
        state = request_budget_take(user=request.user, api_key=request_api_key(request))
        if state is None:
            return True
        self._reset = state.reset_seconds
        request.rate_limit = state
        return state.allowed

    def wait(self) -> float:
        return self._reset


class RateLimitHeadersMixin:
    """For API views: report the caller's request budget on every answer, 429s included."""

    def finalize_response(self, request: Request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        state = getattr(request, "rate_limit", None)
        if state is not None:
            for name, value in state.headers().items():
                response[name] = value
        return response
