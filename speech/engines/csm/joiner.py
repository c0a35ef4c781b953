"""Joining separately generated chunks of speech with a short crossfade, as a stream.

Audio passes straight through except the last few milliseconds, which are held back: they are
either the end of the speech (sent at `finish`) or the tail that fades into the next chunk.
"""

import numpy as np

_EMPTY = np.zeros(0, dtype=np.float32)


class ChunkJoiner:
    def __init__(self, overlap: int) -> None:
        self._overlap = overlap
        self._tail = _EMPTY
        # The end of the previous chunk, waiting to be faded into the next chunk's start.
        self._fade_from: np.ndarray | None = None

    def feed(self, audio: np.ndarray) -> np.ndarray:
        """Audio of the current chunk in; what can be sent now out."""
        if audio.size == 0:
            return _EMPTY
        if self._fade_from is not None:
            audio = self._crossfade(self._fade_from, audio)
            self._fade_from = None
        joined = np.concatenate([self._tail, audio])
        cut = max(0, joined.size - self._overlap)
        self._tail = joined[cut:]
        return joined[:cut]

    def end_chunk(self) -> None:
        """The current chunk is complete; its held tail fades into the next one."""
        if self._tail.size:
            self._fade_from = self._tail
            self._tail = _EMPTY

    def finish(self) -> np.ndarray:
        """The held end of the speech."""
        held = self._fade_from if self._fade_from is not None else self._tail
        self._fade_from = None
        self._tail = _EMPTY
        return held

    @staticmethod
    def _crossfade(previous: np.ndarray, audio: np.ndarray) -> np.ndarray:
        n = min(previous.size, audio.size)
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        mixed = audio.astype(np.float32, copy=True)
        mixed[:n] = previous[:n] * (1.0 - ramp) + audio[:n] * ramp
        return mixed
