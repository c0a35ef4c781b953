"""Decoding a caller's recording: the shared safe decoder, with the cloning limits."""

import numpy as np
from django.conf import settings
from django.core.files import File

from ingest.errors import IngestError
from speech.audio.decode import AudioDecodeError, AudioTooLong, decode_audio, sniff_container
from speech.audio.formats import SAMPLE_RATE

# The field a cloning upload is reported under, as the cloning API and the page name it (a
# route that names it otherwise, such as OpenAI's audio_sample, renames it).
UPLOAD_PARAM = "audio_file"


def check_upload(head: bytes, size: int, *, param: str, max_bytes: int | None = None) -> None:
    """Refuse at once, before any job exists, what cannot be audio or is larger than
    `max_bytes` (VOICE_UPLOAD_MAX_BYTES unless given)."""
    if max_bytes is None:
        max_bytes = settings.VOICE_UPLOAD_MAX_BYTES
    if size == 0:
        raise IngestError("The audio file is empty.", code="empty_file", param=param)
    if size > max_bytes:
        raise IngestError(
            f"The audio file is larger than {_megabytes(max_bytes)} MB.",
            code="file_too_large",
            param=param,
        )
    if sniff_container(head) is None:
        raise IngestError(
            "The file is not audio in a supported format (wav, mp3, flac, ogg/opus, m4a/aac, "
            "webm).",
            code="unsupported_format",
            param=param,
        )


def decode_recording(data: bytes, *, param: str) -> np.ndarray:
    """Mono float32 at 24 kHz, at most VOICE_MAX_AUDIO_SECONDS long."""
    try:
        return decode_audio(
            data, sample_rate=SAMPLE_RATE, max_seconds=settings.VOICE_MAX_AUDIO_SECONDS
        )
    except AudioDecodeError as exc:
        raise IngestError(str(exc), code="invalid_audio", param=param) from exc


def recording_checked(recording: File, *, param: str) -> bytes:
    """A consent recording's bytes, once they are known to decode within the consent limits
    (IngestError about `param` otherwise), before it is stored.

    A consent is a short spoken statement: at most VOICE_CONSENT_MAX_BYTES (checked before the
    file is read) and VOICE_CONSENT_MAX_SECONDS (decoding stops there). A longer one is
    refused, not cut, so what is stored is always the whole statement the speaker made.
    """
    max_bytes = settings.VOICE_CONSENT_MAX_BYTES
    data = recording.read(max_bytes + 1)
    check_upload(data[:16], max(len(data), recording.size or 0), param=param, max_bytes=max_bytes)
    max_seconds = settings.VOICE_CONSENT_MAX_SECONDS
    try:
        decode_audio(data, sample_rate=SAMPLE_RATE, max_seconds=max_seconds)
    except AudioTooLong as exc:
        raise IngestError(
            f"The consent recording is longer than {max_seconds:g} seconds: record only the "
            "consent statement.",
            code="recording_too_long",
            param=param,
        ) from exc
    except AudioDecodeError as exc:
        raise IngestError(str(exc), code="invalid_audio", param=param) from exc
    return data


def reference_bytes_bound() -> int:
    """The most a voice's stored reference (16-bit mono WAV at SAMPLE_RATE, at most
    VOICE_REFERENCE_SECONDS, a second's slack) takes: what a job in flight will store."""
    return (int(settings.VOICE_REFERENCE_SECONDS) + 1) * SAMPLE_RATE * 2 + 44


def _megabytes(size: int) -> str:
    """A limit in MB as people read it: whole when it is whole, else to one decimal."""
    megabytes = size / (1024 * 1024)
    return f"{megabytes:.0f}" if megabytes.is_integer() else f"{megabytes:.1f}"
