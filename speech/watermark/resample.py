"""Band-limited rational resampling of a mono stream, exact across calls, in numpy.

The watermark pipeline needs two things PyAV's resampler cannot give: its state can be copied
(to look ahead over the end of a chunk and then forget it) and it never shifts the signal in
time (output sample j sits at exactly j / rate_out seconds), so the watermark computed at
16 kHz lines up sample for sample with the audio it was computed from.

Each output sample is a Kaiser-windowed sinc interpolation of the input around its position;
the filter is zero-phase, so the stream holds back `reach` input samples until the input that
follows them has arrived (well under a millisecond at speech rates).
"""

import math
from dataclasses import dataclass

import numpy as np

# Filter half-length in zero crossings of the sinc: the stop band starts well below the lower
# Nyquist frequency and the images are some 80 dB down; the watermark needs no more.
_ZERO_CROSSINGS = 16
# Pass band edge as a fraction of the lower of the two Nyquist frequencies.
_ROLLOFF = 0.95
_KAISER_BETA = 8.6
# Outputs computed per numpy gather, to bound the temporary (outputs x taps) arrays.
_OUTPUTS_PER_PASS = 16384


@dataclass
class ResamplerState:
    """Everything a stream remembers: copy it to try the future, put it back to forget it."""

    # Input not yet consumed, starting at absolute input index `buffer_start`.
    buffer: np.ndarray
    buffer_start: int
    received: int
    next_output: int

    def copy(self) -> "ResamplerState":
        return ResamplerState(
            self.buffer.copy(), self.buffer_start, self.received, self.next_output
        )


class StreamResampler:
    """Resample float32 mono audio from `rate_in` to `rate_out`, chunk by chunk."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError("sample rates must be positive")
        common = math.gcd(rate_in, rate_out)
        self.up = rate_out // common
        self.down = rate_in // common
        # Cut-off in cycles per input sample, and the filter's half-width in input samples.
        cutoff = _ROLLOFF * 0.5 * min(1.0, self.up / self.down)
        half_width = _ZERO_CROSSINGS / (2 * cutoff)
        self.reach = math.ceil(half_width)
        self._offsets = np.arange(-self.reach + 1, self.reach + 1)
        self._bank = _filter_bank(self.up, self._offsets, cutoff, half_width)
        # The stream starts after silence: the first outputs reach back into zeros.
        self.state = ResamplerState(
            buffer=np.zeros(self.reach, dtype=np.float32),
            buffer_start=-self.reach,
            received=0,
            next_output=0,
        )

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Take the next input samples; return every output sample they complete."""
        state = self.state
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        state.buffer = np.concatenate([state.buffer, samples])
        state.received += samples.size
        return self._emit()

    def _emit(self) -> np.ndarray:
        state = self.state
        # Output j is centred on input position j * down / up and needs the input up to
        # floor(j * down / up) + reach.
        last_base = state.received - 1 - self.reach
        end = -(-(last_base + 1) * self.up // self.down) if last_base >= 0 else 0
        end = max(end, state.next_output)
        parts = []
        for first in range(state.next_output, end, _OUTPUTS_PER_PASS):
            parts.append(self._compute(np.arange(first, min(end, first + _OUTPUTS_PER_PASS))))
        state.next_output = end
        # Drop the input no later output can reach.
        keep_from = end * self.down // self.up - self.reach + 1
        drop = max(0, keep_from - state.buffer_start)
        if drop:
            state.buffer = state.buffer[drop:]
            state.buffer_start += drop
        if not parts:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(parts)

    def _compute(self, outputs: np.ndarray) -> np.ndarray:
        position = outputs * self.down
        base = position // self.up
        phase = position % self.up
        taps = (base - self.state.buffer_start)[:, None] + self._offsets[None, :]
        return np.einsum("ij,ij->i", self.state.buffer[taps], self._bank[phase]).astype(
            np.float32, copy=False
        )


def _filter_bank(phases: int, offsets: np.ndarray, cutoff: float, half_width: float) -> np.ndarray:
    """One row of taps per fractional position p / phases between two input samples."""
    distance = np.arange(phases)[:, None] / phases - offsets[None, :]
    taper = np.clip(1.0 - (distance / half_width) ** 2, 0.0, None)
    window = np.i0(_KAISER_BETA * np.sqrt(taper)) / np.i0(_KAISER_BETA)
    window[np.abs(distance) > half_width] = 0.0
    bank = 2 * cutoff * np.sinc(2 * cutoff * distance) * window
    # Unity gain at DC for every phase, so a constant stays constant.
    bank /= bank.sum(axis=1, keepdims=True)
    return bank.astype(np.float32)


def resample_whole(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """A complete clip at `rate_out`: round(len * rate_out / rate_in) samples."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if rate_in == rate_out:
        return samples
    resampler = StreamResampler(rate_in, rate_out)
    wanted = round(samples.size * rate_out / rate_in)
    # Silence after the end lets the filter finish the last output samples.
    out = resampler.process(np.concatenate([samples, np.zeros(resampler.reach + 1, np.float32)]))
    return out[:wanted]
