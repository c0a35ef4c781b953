"""Back-pressure: a bound on the generations one process runs at once."""

import threading

from django.conf import settings


class InflightLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight = 0

    @property
    def inflight(self) -> int:
        return self._inflight

    def try_acquire(self) -> bool:
        with self._lock:
            if self._inflight >= settings.SPEECH_MAX_INFLIGHT:
                return False
            self._inflight += 1
            return True

    def release(self) -> None:
        with self._lock:
            if self._inflight <= 0:
                raise RuntimeError("released more generation slots than were acquired")
            self._inflight -= 1


speech_slots = InflightLimiter()
