"""Every `code` and `type` the API puts in an error body: the wire strings, named once.

Domain apps name their own codes (speech.errors, voices.errors, ingest.errors); they reach the
wire unchanged, so each is listed here too, and a test checks that none is missing.
"""

from enum import StrEnum


class ErrorType(StrEnum):
    INVALID_REQUEST = "invalid_request_error"
    SERVER_ERROR = "server_error"
    # OpenAI's type for a rate-limit refusal.
    REQUESTS = "requests"


class ErrorCode(StrEnum):
    # Validation of a request's fields (DRF's codes renamed to OpenAI's).
    EMPTY_STRING = "empty_string"
    INVALID_VALUE = "invalid_value"
    MISSING_REQUIRED_PARAMETER = "missing_required_parameter"
    NUMBER_ABOVE_MAX_VALUE = "number_above_max_value"
    NUMBER_BELOW_MIN_VALUE = "number_below_min_value"
    STRING_ABOVE_MAX_LENGTH = "string_above_max_length"
    STRING_BELOW_MIN_LENGTH = "string_below_min_length"

    # The HTTP exchange itself (DRF's own codes for method, media type and permission).
    # AUTH_MODE=open: a keyless write sent by another site's page (api/authentication.py).
    CROSS_SITE_REQUEST = "cross_site_request"
    INVALID_API_KEY = "invalid_api_key"
    # A Host not in ALLOWED_HOSTS (answered by core/hosts.py, which cannot import this enum).
    INVALID_HOST = "invalid_host"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    PERMISSION_DENIED = "permission_denied"
    REQUEST_TIMEOUT = "request_timeout"
    REQUEST_TOO_LARGE = "request_too_large"
    # More query parameters, form fields or files than DATA_UPLOAD_MAX_NUMBER_FIELDS / _FILES.
    TOO_MANY_FIELDS = "too_many_fields"
    UNKNOWN_URL = "unknown_url"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"

    # Limits and the server's own state.
    API_KEY_LIMIT_REACHED = "api_key_limit_reached"
    CONCURRENCY_LIMIT_EXCEEDED = "concurrency_limit_exceeded"
    DATABASE_UNAVAILABLE = "database_unavailable"
    QUEUE_UNAVAILABLE = "queue_unavailable"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    SERVER_BUSY = "server_busy"
    SERVER_ERROR = "server_error"

    # The pages' speech links.
    EXPIRED = "expired"

    # Idempotency-Key.
    IDEMPOTENCY_KEY_IN_PROGRESS = "idempotency_key_in_progress"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"

    # Speech (speech.errors) and its engines.
    ENGINE_ERROR = "engine_error"
    ENGINE_LOADING = "engine_loading"
    ENGINE_UNAVAILABLE = "engine_unavailable"
    INVALID_AUDIO = "invalid_audio"
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_NOT_SUPPORTED = "model_not_supported"
    VOICE_NOT_SUPPORTED = "voice_not_supported"
    WATERMARK_LOADING = "watermark_loading"
    WATERMARK_UNAVAILABLE = "watermark_unavailable"

    # Voices (voices.errors), consents and jobs.
    JOB_NOT_FOUND = "job_not_found"
    NOT_FOUND = "not_found"
    NOT_OWNER = "not_owner"
    VOICE_NOT_FOUND = "voice_not_found"
    VOICE_PROTECTED = "voice_protected"
    CONSENT_IN_USE = "consent_in_use"
    QUOTA_EXCEEDED = "quota_exceeded"

    # Cloning (ingest.errors): what is wrong with a recording, a URL or a voice's details.
    CONSENT_NOT_FOUND = "consent_not_found"
    CONSENT_REQUIRED = "consent_required"
    DOWNLOAD_FAILED = "download_failed"
    DOWNLOAD_TOO_LARGE = "download_too_large"
    DURATION_TOO_LONG = "duration_too_long"
    EMPTY_FILE = "empty_file"
    EMPTY_TRANSCRIPT = "empty_transcript"
    FILE_TOO_LARGE = "file_too_large"
    INVALID_SECTION = "invalid_section"
    LIVE_STREAM = "live_stream"
    NAME_REQUIRED = "name_required"
    NAME_TAKEN = "name_taken"
    NAME_TOO_LONG = "name_too_long"
    NO_USABLE_SPEECH = "no_usable_speech"
    NOT_AUDIO = "not_audio"
    RECORDING_TOO_LONG = "recording_too_long"
    SILENT = "silent"
    START_AFTER_END = "start_after_end"
    TOO_LITTLE_SPEECH = "too_little_speech"
    TOO_MANY_JOBS = "too_many_jobs"
    TRANSCRIPT_AUDIO_TOO_LONG = "transcript_audio_too_long"
    UNSUPPORTED_FORMAT = "unsupported_format"
    URL_NOT_ALLOWED = "url_not_allowed"
    VIDEO_TOO_LONG = "video_too_long"

    # Speech to text and the Whisper model (ingest.errors.TranscriptionErrorCode).
    INVALID_LANGUAGE_FORMAT = "invalid_language_format"
    TRANSCRIPTION_LOADING = "transcription_loading"
    TRANSCRIPTION_UNAVAILABLE = "transcription_unavailable"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
