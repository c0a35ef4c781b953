"""The one table from domain errors to OpenAI's errors: the status and type of each.

Domain apps raise their own errors, each with a machine code, a message, the field it is about
and, for a wait, a retry hint; none of them knows HTTP. Here they get their status and type,
and the rest passes to the caller unchanged (the field as `param`, the hint as Retry-After).
"""

from dataclasses import dataclass

from accounts.errors import ApiKeyLimitReached
from api.error_codes import ErrorCode, ErrorType
from ingest.errors import IngestError, TooManyJobs
from ingest.transcribe import TranscriptionUnavailable
from speech.errors import EngineUnavailable, InvalidInput, UnknownModel
from speech.watermark import WatermarkUnavailable
from speech.watermark.service import DETECT_RETRY_AFTER_SECONDS
from voices.errors import (
    ConsentInUse,
    NotVoiceOwner,
    QuotaExceeded,
    VoiceNotFound,
    VoiceProtected,
)


@dataclass(frozen=True)
class Wire:
    status: int
    type: ErrorType = ErrorType.INVALID_REQUEST


# Looked up along the error's class hierarchy: the most specific entry wins.
DOMAIN_ERRORS: dict[type[Exception], Wire] = {
    # speech
    InvalidInput: Wire(400),
    UnknownModel: Wire(404),
    EngineUnavailable: Wire(503, ErrorType.SERVER_ERROR),
    WatermarkUnavailable: Wire(503, ErrorType.SERVER_ERROR),
    # voices
    VoiceNotFound: Wire(404),
    VoiceProtected: Wire(400),
    NotVoiceOwner: Wire(403),
    # The request is fine; the state it meets is not (a consent still in use, a full quota):
    # 409, as deleting a voice (or a consent) resolves it, and the same request then succeeds.
    ConsentInUse: Wire(409),
    QuotaExceeded: Wire(409),
    # ingest: what is wrong with a recording, a URL or a voice's details
    IngestError: Wire(400),
    # ...but one job too many for the caller is a wait: 429, as OpenAI answers a rate limit
    TooManyJobs: Wire(429, ErrorType.REQUESTS),
    # ...and Whisper still loading (with Retry-After) or not to be had (with the reason)
    TranscriptionUnavailable: Wire(503, ErrorType.SERVER_ERROR),
    # accounts
    ApiKeyLimitReached: Wire(409),
}


@dataclass(frozen=True)
class OpenAIError:
    status: int
    type: ErrorType
    message: str
    code: str | None
    param: str | None
    retry_after: int | None


def openai_error_of(exc: Exception) -> OpenAIError | None:
    """`exc` as OpenAI's error, or None when it is no domain error."""
    wire = _wire_of(type(exc))
    if wire is None:
        return None
    message, code, field, retry_after = _facts(exc)
    return OpenAIError(wire.status, wire.type, message, code, field, retry_after)


def _wire_of(error_class: type) -> Wire | None:
    for cls in error_class.__mro__:
        if cls in DOMAIN_ERRORS:
            return DOMAIN_ERRORS[cls]
    return None


def _facts(exc: Exception) -> tuple[str, str | None, str | None, int | None]:
    """(message, code, field, retry hint) of a domain error."""
    if isinstance(exc, WatermarkUnavailable):
        # The detector says only whether it is loading: loading is worth a retry, off is not.
        if exc.loading:
            return exc.message, ErrorCode.WATERMARK_LOADING, None, DETECT_RETRY_AFTER_SECONDS
        return exc.message, ErrorCode.WATERMARK_UNAVAILABLE, None, None
    field = getattr(exc, "field", None) or getattr(exc, "param", None)
    code = getattr(exc, "code", None)
    return (
        exc.message,
        None if code is None else str(code),
        field,
        getattr(exc, "retry_after", None),
    )
