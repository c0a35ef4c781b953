"""Decoding a caller's recording: the shared safe decoder, with the cloning limits."""

import numpy as np
from django.conf import settings
from django.core.files import File

from ingest.errors import IngestError
from speech.audio.decode import AudioDecodeError, decode_audio, sniff_container
from speech.audio.formats import SAMPLE_RATE

# The field a cloning upload is reported under, as the cloning API and the page name it (a
# route that names it otherwise, such as OpenAI's audio_sample, renames it).
UPLOAD_PARAM = "audio_file"


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


def recording_checked(recording: File, *, param: str) -> bytes:
    """The recording's bytes, once they are known to decode within the limits (IngestError
    about `param` otherwise): what a consent recording is checked by before it is stored."""
    data = recording.read()
    check_upload(data[:16], len(data), param=param)
    decode_recording(data, param=param)
    return data
