"""Running a speech plan: engine audio → time stretch → streaming encoder → bytes."""

import math
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from speech.audio.encoder import StreamingEncoder
from speech.audio.tempo import TimeStretch
from speech.services import SpeechPlan
from speech.watermark import watermark_stream

# Output tokens are counted in audio frames of 80 ms (12.5 Hz, the frame rate of CSM's codec),
# the same unit for every engine.
OUTPUT_TOKENS_PER_SECOND = 12.5
# A stretch this close to 1 is inaudible; skip the filter.
_STRETCH_EPSILON = 1e-3
# Audio is encoded and sent in slices: a short first one for a quick first byte, then longer
# ones, which cost fewer hand-offs between threads.
_FIRST_SLICE_SECONDS = 0.25
_SLICE_SECONDS = 1.0


@dataclass
class SpeechTimings:
    engine_seconds: float = 0.0
    encode_seconds: float = 0.0


class SpeechStream:
    """Iterate to get the encoded audio of `plan` in pieces, each as soon as it exists."""

    def __init__(self, plan: SpeechPlan) -> None:
        self.plan = plan
        self.timings = SpeechTimings()
        self.audio_seconds = 0.0

    def usage(self) -> dict[str, int]:
        output_tokens = math.ceil(self.audio_seconds * OUTPUT_TOKENS_PER_SECOND)
        return {
            "input_tokens": self.plan.input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": self.plan.input_tokens + output_tokens,
        }

    def __iter__(self) -> Iterator[bytes]:
        plan = self.plan
        rate = plan.engine.capabilities.sample_rate
        audio = plan.engine.synthesize(plan.chunks, plan.voice, plan.params)
        with ExitStack() as cleanup:
            cleanup.callback(audio.close)
            started = time.perf_counter()
            encoder = StreamingEncoder(plan.audio_format, rate)
            cleanup.callback(encoder.close)
            stretch = (
                TimeStretch(plan.stretch, rate)
                if abs(plan.stretch - 1.0) > _STRETCH_EPSILON
                else None
            )
            self.timings.encode_seconds += time.perf_counter() - started
            # Generative engines' output is watermarked (None: watermarking off or unavailable).
            watermark = watermark_stream(rate) if plan.engine.capabilities.watermarked else None
            budget = plan.max_samples
            slice_seconds = _FIRST_SLICE_SECONDS
            while budget > 0:
                started = time.perf_counter()
                samples = next(audio, None)
                self.timings.engine_seconds += time.perf_counter() - started
                if samples is None:
                    break
                samples = _sanitise(samples[:budget])
                budget -= samples.size
                if watermark is not None:
                    samples = watermark.process(samples)
                # Encode an engine chunk in slices, so the first bytes leave after a fraction
                # of a second of audio is encoded rather than after the whole sentence.
                start = 0
                while start < samples.size:
                    end = start + int(slice_seconds * rate)
                    data = self._encode(encoder, stretch, samples[start:end], rate)
                    start = end
                    if data:
                        yield data
                        slice_seconds = _SLICE_SECONDS
            tail = b""
            if watermark is not None:
                tail += self._encode(encoder, stretch, watermark.flush(), rate)
            tail += self._encode(encoder, stretch, None, rate)
            started = time.perf_counter()
            tail += encoder.finish()
            self.timings.encode_seconds += time.perf_counter() - started
            if tail:
                yield tail

    def _encode(
        self,
        encoder: StreamingEncoder,
        stretch: TimeStretch | None,
        samples: np.ndarray | None,
        rate: int,
    ) -> bytes:
        """Encode `samples` (None: flush the stretch filter); count the audio produced."""
        started = time.perf_counter()
        if stretch is not None:
            samples = stretch.flush() if samples is None else stretch.process(samples)
        if samples is None:
            return b""
        self.audio_seconds += samples.size / rate
        data = encoder.encode(samples)
        self.timings.encode_seconds += time.perf_counter() - started
        return data


def _sanitise(samples: np.ndarray) -> np.ndarray:
    """Mono float32 in [-1, 1] with no NaN or infinity, whatever an engine produced."""
    samples = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1))
    return np.clip(samples, -1.0, 1.0, out=samples)
