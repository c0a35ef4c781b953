"""Back-pressure: a bound on the generations one process runs at once, shared fairly.

SPEECH_MAX_INFLIGHT slots, admitted without waiting (a refused request gets 503 with
Retry-After). Not first come, first served: a user who holds h slots gets another only while
more than min(h, SPEECH_INFLIGHT_RESERVE) stay free. Someone who holds none gets any free slot;
the last free ones go only to users who hold fewer than those already taken by the one asking.
So one user, however many requests they send, can never take the whole process, and when slots
run short the next free one goes to a user who holds few (as the CSM scheduler gives its next
batch place to the owner with the fewest rows in the batch).
"""

import threading
from collections import Counter

from django.conf import settings


class InflightLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight = 0
        self._held: Counter[str] = Counter()

    @property
    def inflight(self) -> int:
        return self._inflight

    def held_by(self, owner: str) -> int:
        with self._lock:
            return self._held[owner]

    def try_acquire(self, owner: str = "") -> bool:
        """Take a slot for `owner` (a user), unless the process is full or `owner` already
        holds as many as the free slots left for others."""
        with self._lock:
            free = settings.SPEECH_MAX_INFLIGHT - self._inflight
            if free <= min(self._held[owner], settings.SPEECH_INFLIGHT_RESERVE):
                return False
            self._inflight += 1
            self._held[owner] += 1
            return True

    def release(self, owner: str = "") -> None:
        with self._lock:
            if self._held[owner] <= 0:
                raise RuntimeError("released more generation slots than were acquired")
            self._inflight -= 1
            self._held[owner] -= 1
            if not self._held[owner]:
                del self._held[owner]


speech_slots = InflightLimiter()
