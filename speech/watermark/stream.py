"""Watermarking a stream of audio chunk by chunk, with no added latency.

AudioSeal computes its watermark at 16 kHz, a hop (20 ms) at a time, from the audio up to the
end of that hop. The stream therefore runs an exact pipeline

    audio at the stream's rate → 16 kHz → generator (streaming, hop by hop) → stream's rate

and adds its output to the original audio, which keeps everything above 8 kHz untouched.
That pipeline lags the input by up to a hop plus the resamplers' reach. So that every call
still returns as many samples as it was given, the last few milliseconds of each call get a
provisional watermark: the pipeline's state is copied, the copy is fed silence until it has
covered them, and the copy is dropped. Where the next call's exact watermark takes over,
it fades in from that provisional one over a few milliseconds, so the boundary has no step.
Away from call boundaries the result is exactly that of marking the whole audio in one go.
"""

import numpy as np

from speech.watermark.models import MODEL_RATE, Generator
from speech.watermark.resample import StreamResampler

# The fade from the provisional to the exact watermark at the start of each call.
_FADE_SECONDS = 0.004


class WatermarkStream:
    """Add the watermark to mono float32 audio at `sample_rate`, call after call."""

    def __init__(self, generator: Generator, sample_rate: int) -> None:
        self._generator = generator
        self._to_model = StreamResampler(sample_rate, MODEL_RATE)
        self._from_model = StreamResampler(MODEL_RATE, sample_rate)
        self._states = generator.new_states()
        # 16 kHz audio waiting for a whole hop.
        self._pending = np.zeros(0, dtype=np.float32)
        # Samples returned so far, and exact watermark samples computed so far.
        self._emitted = 0
        self._exact = 0
        # The provisional watermark just past the last sample returned, faded out at the start
        # of the next call.
        self._fade = max(1, round(_FADE_SECONDS * sample_rate))
        self._carry = np.zeros(0, dtype=np.float32)
        # Silence enough to push a whole hop through both resamplers.
        self._lookahead = (
            self._to_model.reach
            + 1
            + -(-(generator.hop + self._from_model.reach + 1) * sample_rate // MODEL_RATE)
        )

    def process(self, samples: np.ndarray) -> np.ndarray:
        """The watermarked audio: exactly as many samples as `samples`, in [-1, 1]."""
        audio = np.asarray(samples, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            return audio.copy()
        start, end = self._emitted, self._emitted + audio.size
        exact_from = self._exact
        exact = self._advance(audio)
        watermark = np.zeros(audio.size, dtype=np.float32)
        # Exact watermark for the samples not yet returned (a call's first samples may have
        # gone out with the previous call's provisional watermark).
        first = max(exact_from, start)
        if self._exact > first:
            watermark[first - start : self._exact - start] = exact[first - exact_from :]
        if self._exact < end:
            ahead = self._look_ahead(end + self._fade)
            covered = max(self._exact, start)
            watermark[covered - start :] = ahead[covered - self._exact : end - self._exact]
            next_carry = ahead[end - self._exact :]
        else:
            next_carry = np.zeros(0, dtype=np.float32)
        self._fade_in(watermark)
        self._carry = next_carry
        self._emitted = end
        return np.clip(audio + watermark, -1.0, 1.0)

    def flush(self) -> np.ndarray:
        """Nothing is held back: every call already returned all of its samples."""
        return np.zeros(0, dtype=np.float32)

    def _advance(self, audio: np.ndarray) -> np.ndarray:
        """Run the exact pipeline over `audio`; the exact watermark it completes."""
        pending = np.concatenate([self._pending, self._to_model.process(audio)])
        whole = pending.size - pending.size % self._generator.hop
        self._pending = pending[whole:]
        watermark = self._from_model.process(self._generator.run(self._states, pending[:whole]))
        self._exact += watermark.size
        return watermark

    def _look_ahead(self, until: int) -> np.ndarray:
        """A provisional watermark from the exact one's end to `until`, assuming silence
        follows; the stream's state is left as it was."""
        saved = (
            self._to_model.state.copy(),
            self._from_model.state.copy(),
            self._generator.copy_states(self._states),
            self._pending,
            self._exact,
        )
        parts = []
        try:
            while self._exact < until:
                parts.append(self._advance(np.zeros(self._lookahead, dtype=np.float32)))
        finally:
            (
                self._to_model.state,
                self._from_model.state,
                self._states,
                self._pending,
                self._exact,
            ) = saved
        return np.concatenate(parts)

    def _fade_in(self, watermark: np.ndarray) -> None:
        """Cross-fade from the provisional watermark the previous call ended on."""
        count = min(self._carry.size, watermark.size)
        if not count:
            return
        weight = (np.arange(1, count + 1, dtype=np.float32) / (self._carry.size + 1))[:count]
        watermark[:count] = weight * watermark[:count] + (1 - weight) * self._carry[:count]
