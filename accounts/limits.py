"""Limits on speech generation: requests per minute and concurrent generations, each counted
per key and per user.

A key's own limits (RATE_LIMIT_REQUESTS_PER_MINUTE, RATE_LIMIT_CONCURRENT) bound one
integration; the user's (RATE_LIMIT_USER_REQUESTS_PER_MINUTE, RATE_LIMIT_USER_CONCURRENT)
count all of that user's keys and keyless requests together, so that making more keys does not
buy more of the server. A keyless request (a web page, or AUTH_MODE=open) is limited per user
at both levels. The API's throttle (api/throttling.py), the pages and the speech stream call
these with `(user, api_key)`.

Counters live in the "limits" cache (core/cache.py), a store of their own that no other cache
traffic can evict them from: Redis in production (shared by every process, INCR is atomic, so a
burst cannot overshoot), local memory in the embedded single-process default.
"""

import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from accounts.models import ApiKey
from core.cache import limits_cache as cache

_WINDOW_SECONDS = 60
# The counter expires this long after it was created, taking with it any count a crashed
# process left behind.
_SLOT_TTL_SECONDS = 3600

KEY = "key"
USER = "user"


def limit_identity(*, user: AbstractBaseUser, api_key: ApiKey | None) -> str:
    """Whom the per-key limits count: the key, or the user for a keyless request."""
    if api_key is not None:
        return f"key:{api_key.pk}"
    return f"user:{user.pk}"


def user_identity(user: AbstractBaseUser) -> str:
    """Whom the per-user limits count: every key of the user and their keyless requests."""
    return f"account:{user.pk}"


@dataclass(frozen=True)
class RateLimitState:
    limit: int
    remaining: int
    reset_seconds: float
    allowed: bool = True
    # Which budget this is: KEY (the key's, or a keyless request's) or USER (all of the user's).
    scope: str = KEY

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": f"{max(1, round(self.reset_seconds))}s",
        }


def request_budget_take(*, user: AbstractBaseUser, api_key: ApiKey | None) -> RateLimitState | None:
    """Count one request against the key's and the user's one-minute windows (atomic
    increments).

    None when both are unlimited. Otherwise the tighter budget after this request: a refused
    one (`allowed` false, `remaining` 0) when either window's limit is passed, else the one with
    the fewer requests left. A request the key's own limit refuses is not counted against the
    user, so one runaway integration does not use up its user's other keys.
    """
    states = []
    key_state = _budget_take(
        limit_identity(user=user, api_key=api_key), settings.RATE_LIMIT_REQUESTS_PER_MINUTE, KEY
    )
    if key_state is not None:
        if not key_state.allowed:
            return key_state
        states.append(key_state)
    user_state = _budget_take(
        user_identity(user), settings.RATE_LIMIT_USER_REQUESTS_PER_MINUTE, USER
    )
    if user_state is not None:
        if not user_state.allowed:
            return user_state
        states.append(user_state)
    if not states:
        return None
    return min(states, key=lambda state: state.remaining)


def _budget_take(identity: str, limit: int, scope: str) -> RateLimitState | None:
    if not limit:
        return None
    now = time.time()
    window = int(now // _WINDOW_SECONDS)
    counter = f"ratelimit:rpm:{identity}:{window}"
    cache.add(counter, 0, timeout=_WINDOW_SECONDS * 2)
    count = cache.incr(counter)
    reset = _WINDOW_SECONDS - (now % _WINDOW_SECONDS)
    return RateLimitState(limit, max(0, limit - count), reset, count <= limit, scope)


# --- Concurrent generations -----------------------------------------------------------------

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


@dataclass
class GenerationSlots:
    """The slots one generation holds (the key's and the user's), or why it got none."""

    counters: list[str] = field(default_factory=list)
    # KEY or USER: the limit that refused; None when admitted.
    refused_by: str | None = None

    def release(self) -> None:
        """Give the slots back; a second call gives back nothing."""
        counters, self.counters = self.counters, []
        for counter in counters:
            _slot_give_back(counter)


def generation_slots_acquire(*, user: AbstractBaseUser, api_key: ApiKey | None) -> GenerationSlots:
    """Take one of the key's concurrent-generation slots and one of the user's. When either is
    full, nothing is held and `refused_by` names the limit."""
    slots = GenerationSlots()
    for identity, limit, scope in (
        (limit_identity(user=user, api_key=api_key), settings.RATE_LIMIT_CONCURRENT, KEY),
        (user_identity(user), settings.RATE_LIMIT_USER_CONCURRENT, USER),
    ):
        if not limit:
            continue
        counter = _slot_counter(identity)
        if not _slot_take(counter, limit):
            slots.release()
            slots.refused_by = scope
            return slots
        slots.counters.append(counter)
    return slots


def generation_slot_acquire(identity: str) -> bool:
    """Take one of the per-key slots of `identity`; False when all are taken."""
    limit = settings.RATE_LIMIT_CONCURRENT
    if not limit:
        return True
    return _slot_take(_slot_counter(identity), limit)


def generation_slot_release(identity: str) -> None:
    if not settings.RATE_LIMIT_CONCURRENT:
        return
    _slot_give_back(_slot_counter(identity))


def _slot_take(counter: str, limit: int) -> bool:
    cache.add(counter, 0, timeout=_SLOT_TTL_SECONDS)
    if _unreleased and not getattr(cache, "degraded", False):
        _release_unreleased()
    if cache.incr(counter) > limit:
        cache.decr(counter)
        return False
    return True


def _slot_give_back(counter: str) -> None:
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
