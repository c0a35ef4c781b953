"""Pitch-preserving time stretch with FFmpeg's atempo filter, through PyAV's filter graph."""

import math
from fractions import Fraction

import av.filter
import numpy as np

from speech.audio.frames import mono_float_frame

# One atempo stage sounds best within 0.5..2.0; larger changes are chained stages.
_STAGE_MIN, _STAGE_MAX = 0.5, 2.0


def _stages(factor: float) -> list[float]:
    stages: list[float] = []
    while factor > _STAGE_MAX:
        stages.append(_STAGE_MAX)
        factor /= _STAGE_MAX
    while factor < _STAGE_MIN:
        stages.append(_STAGE_MIN)
        factor /= _STAGE_MIN
    stages.append(factor)
    return stages


class TimeStretch:
    """Play mono float32 audio `factor` times faster (2.0 halves the duration)."""

    def __init__(self, factor: float, sample_rate: int) -> None:
        if not math.isfinite(factor) or factor <= 0:
            raise ValueError(f"time-stretch factor must be positive, got {factor}")
        self._sample_rate = sample_rate
        self._pts = 0
        graph = av.filter.Graph()
        source = graph.add_abuffer(
            format="flt",
            sample_rate=sample_rate,
            layout="mono",
            time_base=Fraction(1, sample_rate),
        )
        node = source
        for stage in _stages(factor):
            stretch = graph.add("atempo", f"{stage:.6f}")
            node.link_to(stretch)
            node = stretch
        # Keep the output as mono float32 at the input rate, whatever atempo prefers.
        keep_format = graph.add(
            "aformat", f"sample_fmts=flt:sample_rates={sample_rate}:channel_layouts=mono"
        )
        node.link_to(keep_format)
        sink = graph.add("abuffersink")
        keep_format.link_to(sink)
        graph.configure()
        self._graph = graph

    def process(self, samples: np.ndarray) -> np.ndarray:
        if samples.size == 0:
            return samples.astype(np.float32)
        frame = mono_float_frame(samples, self._sample_rate, self._pts)
        self._pts += samples.size
        self._graph.push(frame)
        return self._pull()

    def flush(self) -> np.ndarray:
        """The audio atempo still holds at the end of the stream."""
        self._graph.push(None)
        return self._pull()

    def _pull(self) -> np.ndarray:
        out: list[np.ndarray] = []
        while True:
            try:
                frame = self._graph.pull()
            except (BlockingIOError, EOFError):
                break
            out.append(frame.to_ndarray().reshape(-1))
        if not out:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)
