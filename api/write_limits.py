"""The per-minute request limit on a view's writes: every create, update and delete counts
against the caller's budget, as speech does; reads of one's own lists stay free."""

from typing import Any

from rest_framework.permissions import SAFE_METHODS

from api.throttling import RateLimitHeadersMixin, RequestsPerMinuteThrottle


class WritesThrottled(RateLimitHeadersMixin):
    """For API views: RequestsPerMinuteThrottle on every method but GET, HEAD and OPTIONS."""

    throttle_classes = [RequestsPerMinuteThrottle]

    def get_throttles(self) -> list[Any]:
        if self.request.method in SAFE_METHODS:
            return []
        return super().get_throttles()
