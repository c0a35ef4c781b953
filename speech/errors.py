"""What can stop a speech request, said so the caller can fix it or knows to wait.

Each error carries a machine `code`, a `message` for people, the request `field` it is about
(where there is one) and, for a wait, `retry_after` in seconds. How an error reaches a caller
(an HTTP status, a page's message) is for the caller's side to decide.
"""

from enum import StrEnum


class SpeechErrorCode(StrEnum):
    EMPTY_TEXT = "empty_string"
    ENGINE_LOADING = "engine_loading"
    ENGINE_UNAVAILABLE = "engine_unavailable"
    INVALID_AUDIO = "invalid_audio"
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_NOT_SUPPORTED = "model_not_supported"
    VOICE_NOT_FOUND = "voice_not_found"
    VOICE_NOT_SUPPORTED = "voice_not_supported"


class SpeechError(Exception):
    def __init__(
        self,
        message: str,
        *,
        code: SpeechErrorCode,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.retry_after = retry_after


class InvalidInput(SpeechError):
    """The request cannot be spoken as asked: a field's value is wrong for this server."""


class UnknownModel(SpeechError):
    """No engine serves the requested model."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, code=SpeechErrorCode.MODEL_NOT_FOUND, field=field)


class EngineUnavailable(SpeechError):
    """The engine cannot speak now: still loading (worth a retry after `retry_after` seconds)
    or broken (no retry helps until an operator acts)."""

    def __init__(self, message: str, *, loading: bool, retry_after: int | None = None) -> None:
        code = SpeechErrorCode.ENGINE_LOADING if loading else SpeechErrorCode.ENGINE_UNAVAILABLE
        super().__init__(message, code=code, retry_after=retry_after if loading else None)
        self.loading = loading
