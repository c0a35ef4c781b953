"""Audio that tests send and read: eSpeak NG recordings, tones, noise, encoded files."""

import functools
from pathlib import Path

import av
import numpy as np
from scipy.signal import resample_poly

from speech.audio.decode import decode_audio
from speech.audio.encoder import StreamingEncoder
from speech.audio.formats import FORMATS, SAMPLE_RATE
from speech.engines.base import SynthesisParams, VoiceSpec
from speech.engines.registry import engine_get

RATE = SAMPLE_RATE
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A gentle breeze moved slowly through the tall grass by the river.",
)
TRANSCRIPT = " ".join(SENTENCES)
# Upload formats: the file extension and MIME type a client would send, and the encoder.
UPLOAD_FORMATS = {
    "wav": ("sample.wav", "audio/wav", "wav"),
    "mp3": ("sample.mp3", "audio/mpeg", "mp3"),
    "flac": ("sample.flac", "audio/flac", "flac"),
    "ogg": ("sample.ogg", "audio/ogg", "opus"),
}


@functools.cache
def _spoken(text: str) -> np.ndarray:
    chunks = engine_get("espeak").synthesize(
        [text], VoiceSpec(name="alloy", standard="alloy"), SynthesisParams()
    )
    speech = np.concatenate(list(chunks))
    return resample_poly(speech, 160, 147).astype(np.float32)  # 22050 Hz → 24000 Hz


def spoken(text: str) -> np.ndarray:
    """eSpeak NG saying `text`, mono float32 at 24 kHz."""
    return _spoken(text).copy()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.float32)


def recording(
    sentences: tuple[str, ...] = SENTENCES,
    *,
    lead: float = 1.0,
    pause: float = 0.6,
    noise: float = 0.003,
    seed: int = 0,
) -> np.ndarray:
    """Sentences with silence before, between and after them, and steady background noise."""
    pieces = [silence(lead)]
    for sentence in sentences:
        pieces += [spoken(sentence), silence(pause)]
    pieces.append(silence(lead))
    audio = np.concatenate(pieces)
    rng = np.random.default_rng(seed)
    audio += (noise * rng.standard_normal(audio.size)).astype(np.float32)
    return audio


def encoded(samples: np.ndarray, fmt: str = "wav") -> bytes:
    """`samples` (24 kHz) as a whole file in an API format or an upload format's encoder."""
    encoder = StreamingEncoder(FORMATS[UPLOAD_FORMATS.get(fmt, (None, None, fmt))[2]], RATE)
    try:
        return encoder.encode(samples) + encoder.finish()
    finally:
        encoder.close()


@functools.cache
def sample_wav() -> bytes:
    """The usual clean sample: two sentences, about six seconds of speech, as a 24 kHz WAV."""
    return encoded(recording())


def decoded(data: bytes, *, max_seconds: float = 60) -> np.ndarray:
    """Any audio file the server writes, back as 24 kHz samples."""
    return decode_audio(data, sample_rate=RATE, max_seconds=max_seconds)


def tone(seconds: float, frequency: float = 220.0) -> np.ndarray:
    """A steady sine at 24 kHz."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    """White noise at 24 kHz."""
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


def written(
    samples: np.ndarray, path: Path, *, rate: int = RATE, container_format: str, codec: str
) -> bytes:
    """`samples` encoded with PyAV into a file at `path` (m4a's faststart rewrites the file
    once it is complete, so it is written to disk); the file's bytes."""
    options = {"movflags": "faststart"} if container_format == "mp4" else {}
    with av.open(str(path), mode="w", format=container_format, options=options) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        size = stream.codec_context.frame_size or 1024
        for offset in range(0, samples.size, size):
            chunk = samples[offset : offset + size]
            chunk = np.pad(chunk, (0, size - chunk.size))
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = offset
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path.read_bytes()


def m4a(samples: np.ndarray, path: Path) -> bytes:
    """AAC in an MP4 container, one of the formats YouTube serves audio in."""
    return written(samples, path, container_format="mp4", codec="aac")
