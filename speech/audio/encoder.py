"""Incremental encoding with PyAV: float32 chunks in, container bytes out as soon as they exist.

The output is written to a non-seekable sink, exactly as it goes over the wire, so muxers that
would seek back to patch a header (WAV's sizes, MP3's Xing frame) write their streaming form.
"""

import av
import numpy as np

from speech.audio.formats import FORMATS, SAMPLE_RATE, AudioFormat
from speech.audio.frames import mono_float_frame


class _ByteSink:
    """A write-only file object; `drain()` takes what the muxer has written so far."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class StreamingEncoder:
    """Encode mono float32 audio at `input_rate` into `fmt` at the API's output rate."""

    def __init__(self, fmt: AudioFormat, input_rate: int) -> None:
        self._input_rate = input_rate
        self._samples_in = 0
        self._sink = _ByteSink()
        self._container = av.open(
            self._sink, mode="w", format=fmt.container, options=dict(fmt.muxer_options)
        )
        self._stream = self._container.add_stream(fmt.codec, rate=SAMPLE_RATE)
        self._stream.layout = "mono"
        if fmt.bit_rate:
            self._stream.bit_rate = fmt.bit_rate
        self._closed = False

    def encode(self, samples: np.ndarray) -> bytes:
        """Feed float32 samples; return whatever encoded bytes are ready (possibly none)."""
        if samples.size == 0:
            return b""
        frame = mono_float_frame(samples, self._input_rate, self._samples_in)
        self._samples_in += samples.size
        # PyAV resamples to the encoder's rate and sample format and re-frames to its frame size.
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._sink.drain()

    def finish(self) -> bytes:
        """Flush the encoder and write the trailer; the last bytes of the file."""
        if self._closed:
            return b""
        self._closed = True
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._sink.drain()

    def close(self) -> None:
        """Release the codec without finishing the file (the client went away)."""
        if not self._closed:
            self._closed = True
            self._container.close()


def encode_wav(samples: np.ndarray, sample_rate: int) -> bytes:
    """A whole 16-bit mono WAV file of float32 `samples` (clipped to [-1, 1])."""
    encoder = StreamingEncoder(FORMATS["wav"], sample_rate)
    try:
        clipped = np.clip(np.nan_to_num(np.asarray(samples, dtype=np.float32)), -1.0, 1.0)
        return encoder.encode(clipped) + encoder.finish()
    finally:
        encoder.close()
