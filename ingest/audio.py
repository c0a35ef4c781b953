"""Decoding a caller's recording: the shared safe decoder, with the cloning limits."""

import numpy as np
from django.conf import settings

from ingest.errors import IngestError
from speech.audio.decode import AudioDecodeError, decode_audio, sniff_container
from speech.audio.formats import SAMPLE_RATE


def check_upload(head: bytes, size: int, *, param: str) -> None:
    """Refuse at once, before any job exists, what cannot be audio or is too large."""
    if size == 0:
        raise IngestError("The audio file is empty.", code="empty_file", param=param)
    if size > settings.VOICE_UPLOAD_MAX_BYTES:
        raise IngestError(
            f"The audio file is larger than {settings.VOICE_UPLOAD_MAX_BYTES // (1024 * 1024)} MB.",
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
