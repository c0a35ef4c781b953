"""Per-key limits on speech generation: requests per minute and concurrent generations.

Counters live in the Django cache: Redis in production (shared by every process, INCR is
atomic, so a burst cannot overshoot), local memory in the embedded single-process default.
A keyless request (a web page, or AUTH_MODE=open) is limited per user. The API's throttle
(api/throttling.py) and the pages call the same functions with `(user, api_key)`.
"""

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache

from accounts.models import ApiKey

_WINDOW_SECONDS = 60
# The counter expires this long after it was created, taking with it any count a crashed
# process left behind.
_SLOT_TTL_SECONDS = 3600


def limit_identity(*, user: AbstractBaseUser, api_key: ApiKey | None) -> str:
    if api_key is not None:
        return f"key:{api_key.pk}"
    return f"user:{user.pk}"


@dataclass(frozen=True)
class RateLimitState:
    limit: int
    remaining: int
    reset_seconds: float
    allowed: bool = True

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": f"{max(1, round(self.reset_seconds))}s",
        }


def request_budget_take(*, user: AbstractBaseUser, api_key: ApiKey | None) -> RateLimitState | None:
    """Count one request against the caller's one-minute window (an atomic increment).

    None when requests per minute are unlimited; otherwise the budget after this request, whose
    `remaining` is 0 and `allowed` false once the window's limit is passed.
    """
    limit = settings.RATE_LIMIT_REQUESTS_PER_MINUTE
    if not limit:
        return None
    now = time.time()
    window = int(now // _WINDOW_SECONDS)
    counter = f"ratelimit:rpm:{limit_identity(user=user, api_key=api_key)}:{window}"
    cache.add(counter, 0, timeout=_WINDOW_SECONDS * 2)
    count = cache.incr(counter)
    reset = _WINDOW_SECONDS - (now % _WINDOW_SECONDS)
    return RateLimitState(limit, max(0, limit - count), reset, allowed=count <= limit)


# Slots taken in Redis whose release could not reach it (it went down meanwhile): given back
# once it answers again, so that an outage does not keep a key's slots taken afterwards.
_unreleased: list[str] = []
_unreleased_lock = threading.Lock()


def _release_unreleased() -> None:
    with _unreleased_lock:
        pending = list(_unreleased)
        _unreleased.clear()
    for counter in pending:
        try:
            cache.decr(counter)
        except ValueError:
            pass  # expired, or Redis restarted empty


def generation_slot_acquire(identity: str) -> bool:
    """Take one of the key's concurrent-generation slots; False when all are taken."""
    limit = settings.RATE_LIMIT_CONCURRENT
    if not limit:
        return True
    counter = _slot_counter(identity)
    cache.add(counter, 0, timeout=_SLOT_TTL_SECONDS)
    if _unreleased and not getattr(cache, "degraded", False):
        _release_unreleased()
    if cache.incr(counter) > limit:
        cache.decr(counter)
        return False
    return True


def generation_slot_release(identity: str) -> None:
    if not settings.RATE_LIMIT_CONCURRENT:
        return
    counter = _slot_counter(identity)
    try:
        cache.decr(counter)
    except ValueError:
        # The counter expired: nothing left to release; or Redis went down after the slot was
        # taken there (core/cache.py): release it there when it is back.
        if getattr(cache, "degraded", False):
            with _unreleased_lock:
                _unreleased.append(counter)


def _slot_counter(identity: str) -> str:
    return f"ratelimit:concurrent:{identity}"
