"""Decoding untrusted audio with PyAV, under limits, to mono float32 at a chosen rate.

The container is recognised from its first bytes and opened with that demuxer only, so no
other FFmpeg demuxer (playlists, concat scripts, image sequences) ever sees the data and no
network protocol can be reached: PyAV reads from the in-memory file object and nothing else.
Decoding stops as soon as the decoded audio passes the duration cap, so a small file that
expands to hours (a decode bomb) costs no more than the cap.
"""

import io
from typing import BinaryIO

import av
import numpy as np

# Demuxer name by the signature at the start of the file.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"RIFF", "wav"),
    (0, b"fLaC", "flac"),
    (0, b"OggS", "ogg"),
    (0, b"ID3", "mp3"),
    (0, b"\x1a\x45\xdf\xa3", "matroska"),  # also WebM
    (4, b"ftyp", "mp4"),  # also m4a
)
_MP3_SYNC_MASK = 0xFFE0
# ADTS (raw AAC) shares MPEG audio's sync word but its two layer bits are zero.
_ADTS_SYNC_MASK = 0xFFF6
_ADTS_SYNC = 0xFFF0
ALLOWED_CODECS = frozenset(
    {
        "pcm_s16le",
        "pcm_s24le",
        "pcm_s32le",
        "pcm_f32le",
        "pcm_f64le",
        "pcm_u8",
        "pcm_alaw",
        "pcm_mulaw",
        "mp3",
        "mp3float",
        "flac",
        "vorbis",
        "opus",
        "aac",
    }
)


# Recordings are sampled at 8 to 192 kHz. A header that claims a far lower rate makes every
# decoded sample expand into thousands when resampled: kilobytes of FLAC would become gigabytes
# before the duration cap could see them.
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 192000


class AudioDecodeError(ValueError):
    """The data is not audio this server accepts; the message says why, for the caller."""


class AudioTooLong(AudioDecodeError):
    """The audio runs past the duration cap it was decoded under (decoding stopped there)."""


def sniff_container(head: bytes) -> str | None:
    """The demuxer for a file starting with `head`, or None when it is not an accepted format."""
    for offset, signature, name in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return name
    if len(head) >= 2:
        word = int.from_bytes(head[:2], "big")
        if word & _ADTS_SYNC_MASK == _ADTS_SYNC:
            return "aac"
        if word & _MP3_SYNC_MASK == _MP3_SYNC_MASK:
            return "mp3"
    return None


def decode_audio(source: bytes | BinaryIO, *, sample_rate: int, max_seconds: float) -> np.ndarray:
    """Decode the first audio stream of `source` to mono float32 at `sample_rate`.

    Raises AudioDecodeError for unrecognised, unsupported, broken, empty or too long input.
    """
    stream_in = io.BytesIO(source) if isinstance(source, bytes) else source
    head = stream_in.read(16)
    stream_in.seek(0)
    container_format = sniff_container(head)
    if container_format is None:
        raise AudioDecodeError(
            "The file is not audio in a supported format (wav, mp3, flac, ogg/opus, m4a/aac, webm)."
        )
    max_samples = int(max_seconds * sample_rate)
    try:
        with av.open(stream_in, mode="r", format=container_format) as container:
            if not container.streams.audio:
                raise AudioDecodeError("The file has no audio stream.")
            stream = container.streams.audio[0]
            if stream.codec_context.name not in ALLOWED_CODECS:
                raise AudioDecodeError(
                    f"The audio codec '{stream.codec_context.name}' is not supported."
                )
            check_sample_rate(stream.sample_rate)
            samples = _decode_stream(container, stream, sample_rate, max_samples, max_seconds)
    except AudioDecodeError:
        raise
    except (av.FFmpegError, ValueError, EOFError) as exc:
        raise AudioDecodeError(
            "The audio file is damaged or truncated and cannot be decoded."
        ) from exc
    if samples.size == 0:
        raise AudioDecodeError("The audio file contains no audio.")
    return samples


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    sample_rate: int,
    max_samples: int,
    max_seconds: float,
) -> np.ndarray:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    parts: list[np.ndarray] = []
    total = 0
    for frame in container.decode(stream):
        # Each frame says its own rate, and may contradict the stream's header.
        check_sample_rate(frame.sample_rate)
        frame.pts = None  # the resampler keeps its own clock; broken timestamps cannot confuse it
        for converted in resampler.resample(frame):
            total = _append(parts, converted, total, max_samples, max_seconds)
    for converted in resampler.resample(None):
        total = _append(parts, converted, total, max_samples, max_seconds)
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.nan_to_num(np.concatenate(parts))


def check_sample_rate(rate: int | None) -> None:
    """Refuse (AudioDecodeError) a stream or frame whose rate is outside what recordings use,
    before the resampler multiplies its samples; every decoder of untrusted audio calls it."""
    if not rate or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(
            f"The audio's sample rate ({rate or 'none'} Hz) is outside {MIN_SAMPLE_RATE} to "
            f"{MAX_SAMPLE_RATE} Hz."
        )


def _append(
    parts: list[np.ndarray], frame: av.AudioFrame, total: int, max_samples: int, max_seconds: float
) -> int:
    samples = frame.to_ndarray().reshape(-1).astype(np.float32, copy=False)
    total += samples.size
    if total > max_samples:
        raise AudioTooLong(f"The audio is longer than the limit of {max_seconds:g} seconds.")
    parts.append(samples)
    return total
