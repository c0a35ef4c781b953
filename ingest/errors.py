"""What can go wrong with a caller's recording or URL, said so the caller can fix it."""

from enum import StrEnum


class TranscriptionErrorCode(StrEnum):
    """The codes of speech to text (ingest.transcription) and of the Whisper model
    (ingest.transcribe). The cloning checks name theirs where they raise them."""

    INVALID_AUDIO = "invalid_audio"
    INVALID_LANGUAGE_FORMAT = "invalid_language_format"
    MODEL_NOT_SUPPORTED = "model_not_supported"
    RECORDING_TOO_LONG = "recording_too_long"
    TRANSCRIPTION_LOADING = "transcription_loading"
    TRANSCRIPTION_UNAVAILABLE = "transcription_unavailable"
    UNSUPPORTED_LANGUAGE = "unsupported_language"


class IngestError(Exception):
    """The input cannot make a voice. `message` is for the caller; `code` names the problem
    (e.g. "not_audio", "too_short", "silent", "url_not_allowed") and `param` the request field
    it is about, as the cloning routes name it (download.URL_PARAM, audio.UPLOAD_PARAM)."""

    def __init__(self, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


class TooManyJobs(IngestError):
    """The caller already has INGEST_JOBS_PER_USER jobs queued or running: a wait, not a fault
    of the request (the same request succeeds once one of them finishes)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="too_many_jobs")
