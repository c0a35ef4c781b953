"""Django's Redis cache, carrying on in process memory while Redis cannot be reached.

What the cache holds here is either a shortcut (authenticated keys, the default user) or a
counter (rate limits, generation slots, login failures). While Redis is down each process keeps
them itself, as the embedded single-process default does: requests keep being answered, and
limits hold per process instead of across all of them. Cached authentication may lag a change
made meanwhile by at most its cache time (30 s). What cannot work without Redis (the Celery
broker: cloning jobs) answers 503 where it is used.

After a failure Redis is left alone for `RETRY_SECONDS`, so an outage costs one failed
connection per process per interval, not one per request; the first success after it drops
what was kept locally, so nothing stale outlives the outage.
"""

import logging
import threading
import time
from typing import Any

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError)
RETRY_SECONDS = 1.0


class _Outage:
    """Whether one Redis location is down, shared by the cache objects of every thread (Django
    makes one per thread and per async context)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.retry_at = 0.0
        self.degraded = False


_outages: dict[str, _Outage] = {}
_outages_lock = threading.Lock()


class FallbackRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        local_params = {k: v for k, v in params.items() if k != "OPTIONS"}
        # Local-memory caches of one name share their storage: every thread sees the same.
        self._local = LocMemCache(f"redis-fallback:{server}", local_params)
        with _outages_lock:
            self._outage = _outages.setdefault(str(server), _Outage())

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and this process keeps the cache itself."""
        return self._outage.degraded

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() >= self._outage.retry_at:
            try:
                result = getattr(RedisCache, name)(self, *args, **kwargs)
            except UNREACHABLE as exc:
                self._went_down(exc)
            else:
                if self._outage.degraded:
                    self._came_back()
                return result
        return getattr(self._local, name)(*args, **kwargs)

    def _went_down(self, exc: Exception) -> None:
        outage = self._outage
        with outage.lock:
            outage.retry_at = time.monotonic() + RETRY_SECONDS
            if not outage.degraded:
                outage.degraded = True
                logger.warning("Redis is unreachable; caching in this process meanwhile: %s", exc)

    def _came_back(self) -> None:
        outage = self._outage
        with outage.lock:
            if outage.degraded:
                outage.degraded = False
                self._local.clear()
                logger.warning("Redis is reachable again")

    def add(self, *args: Any, **kwargs: Any) -> bool:
        return self._call("add", *args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get", *args, **kwargs)

    def set(self, *args: Any, **kwargs: Any) -> None:
        return self._call("set", *args, **kwargs)

    def touch(self, *args: Any, **kwargs: Any) -> bool:
        return self._call("touch", *args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> bool:
        return self._call("delete", *args, **kwargs)

    def get_many(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._call("get_many", *args, **kwargs)

    def has_key(self, *args: Any, **kwargs: Any) -> bool:
        return self._call("has_key", *args, **kwargs)

    def incr(self, *args: Any, **kwargs: Any) -> int:
        return self._call("incr", *args, **kwargs)

    def set_many(self, *args: Any, **kwargs: Any) -> list[str]:
        return self._call("set_many", *args, **kwargs)

    def delete_many(self, *args: Any, **kwargs: Any) -> None:
        return self._call("delete_many", *args, **kwargs)

    def clear(self) -> None:
        self._local.clear()
        return self._call("clear")
