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

from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.utils.connection import ConnectionProxy
from django.utils.module_loading import import_string
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# Security state (rate limits, generation slots, sign-in failures, idempotency records): the
# "limits" cache, a store of its own that unrelated cache traffic cannot evict from
# (csmsite/settings/storage.py).
limits_cache = ConnectionProxy(caches, "limits")

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


class PerKindLocMemCache(BaseCache):
    """Local memory, bounded per kind of entry rather than as a whole.

    An entry's kind is its key's first segment (`ratelimit:...`, `login-failures:...`). Each
    kind is a local-memory cache of its own with the configured MAX_ENTRIES, least recently
    used out: a flood of one kind (failed sign-ins for made-up names, fresh Idempotency-Keys)
    evicts only older entries of that same kind, never another kind's. Kinds are the code's
    own literal prefixes, so there are only a handful.
    """

    # Kinds seen per cache name, across the per-thread instances Django makes, for clear().
    _kinds: dict[str, set[str]] = {}
    _kinds_lock = threading.Lock()

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._name = name
        self._params = params
        self._parts: dict[str, LocMemCache] = {}

    def _part(self, key: Any) -> LocMemCache:
        kind = str(key).split(":", 1)[0]
        part = self._parts.get(kind)
        if part is None:
            # Local-memory caches of one name share their storage: every thread sees the same.
            part = self._parts[kind] = LocMemCache(f"{self._name}:{kind}", self._params)
            with self._kinds_lock:
                self._kinds.setdefault(self._name, set()).add(kind)
        return part

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version=None) -> bool:
        return self._part(key).add(key, value, timeout, version)

    def get(self, key: Any, default: Any = None, version=None) -> Any:
        return self._part(key).get(key, default, version)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version=None) -> None:
        self._part(key).set(key, value, timeout, version)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version=None) -> bool:
        return self._part(key).touch(key, timeout, version)

    def incr(self, key: Any, delta: int = 1, version=None) -> int:
        return self._part(key).incr(key, delta, version)

    def has_key(self, key: Any, version=None) -> bool:
        return self._part(key).has_key(key, version)

    def delete(self, key: Any, version=None) -> bool:
        return self._part(key).delete(key, version)

    def clear(self) -> None:
        with self._kinds_lock:
            kinds = sorted(self._kinds.get(self._name, ()))
        for kind in kinds:
            self._part(kind).clear()


class FallbackRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        # The process's own store meanwhile: LOCAL_BACKEND with LOCAL_OPTIONS (local memory by
        # default), one per alias (KEY_PREFIX), so that one alias's traffic cannot evict
        # another's while Redis is down either.
        local_class = import_string(
            params.get("LOCAL_BACKEND", "django.core.cache.backends.locmem.LocMemCache")
        )
        local_params = {
            k: v
            for k, v in params.items()
            if k not in {"OPTIONS", "LOCAL_BACKEND", "LOCAL_OPTIONS"}
        }
        local_params["OPTIONS"] = dict(params.get("LOCAL_OPTIONS", {}))
        prefix = params.get("KEY_PREFIX", "")
        self._local = local_class(f"redis-fallback:{server}:{prefix}", local_params)
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
