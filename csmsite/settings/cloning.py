"""Voice cloning: what a caller may send (uploads, YouTube links), what a voice keeps, the
transcription, and the ingest jobs that do the work."""

from django.core.exceptions import ImproperlyConfigured

from csmsite.env import env_bool, env_float, env_int, env_list, env_str

# Limits on what a caller may send, and what a voice keeps.
VOICE_UPLOAD_MAX_BYTES = env_int("VOICE_UPLOAD_MAX_BYTES", 50 * 1024 * 1024, minimum=1024)
VOICE_MAX_AUDIO_SECONDS = env_float("VOICE_MAX_AUDIO_SECONDS", 600.0, minimum=5.0, maximum=7200.0)
VOICE_MIN_SPEECH_SECONDS = env_float("VOICE_MIN_SPEECH_SECONDS", 3.0, minimum=0.5, maximum=60.0)
# The longest reference kept for a voice (the cleanest speech windows, with their transcript).
VOICE_REFERENCE_SECONDS = env_float("VOICE_REFERENCE_SECONDS", 20.0, minimum=3.0, maximum=120.0)
VOICE_KEEP_ORIGINALS = env_bool("VOICE_KEEP_ORIGINALS", False)
# A consent recording is a short spoken statement: longer or larger ones are refused (400).
VOICE_CONSENT_MAX_SECONDS = env_float("VOICE_CONSENT_MAX_SECONDS", 60.0, minimum=5.0, maximum=600.0)
VOICE_CONSENT_MAX_BYTES = env_int("VOICE_CONSENT_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
# What one user may keep (0: no limit): voices (their jobs in flight counted), consent
# recordings, and the bytes of both together. A full quota answers 409 quota_exceeded.
VOICE_QUOTA_VOICES = env_int("VOICE_QUOTA_VOICES", 100, minimum=0)
VOICE_QUOTA_CONSENTS = env_int("VOICE_QUOTA_CONSENTS", 100, minimum=0)
VOICE_QUOTA_BYTES = env_int("VOICE_QUOTA_BYTES", 1024 * 1024 * 1024, minimum=0)
# A clone needs the caller to attest the right to clone the voice (false: single-user installs).
VOICE_REQUIRE_CONSENT = env_bool("VOICE_REQUIRE_CONSENT", True)

# The openai-whisper model that transcribes cloned voices.
WHISPER_MODEL = env_str("WHISPER_MODEL", "base.en")
# The language Whisper transcribes in (a code such as en or de); auto: detect it.
WHISPER_LANGUAGE = env_str("WHISPER_LANGUAGE", "en")

# --- Speech to text (/v1/audio/transcriptions and /translations, with the same Whisper) --------
# OpenAI's upload limit; longer audio is refused (400), not cut.
STT_MAX_BYTES = env_int("STT_MAX_BYTES", 25 * 1024 * 1024, minimum=1024)
STT_MAX_AUDIO_SECONDS = env_float("STT_MAX_AUDIO_SECONDS", 600.0, minimum=1.0, maximum=7200.0)
# Transcriptions one process takes at once (one decodes, the rest wait their turn); beyond them
# 503 server_busy with Retry-After.
STT_MAX_INFLIGHT = env_int("STT_MAX_INFLIGHT", 4, minimum=1, maximum=64)
# How long a request waits for Whisper to load before it is answered 503 transcription_loading.
STT_LOAD_WAIT_SECONDS = env_float("STT_LOAD_WAIT_SECONDS", 30.0, minimum=0.0, maximum=600.0)

# --- YouTube links ------------------------------------------------------------------------------
YOUTUBE_ALLOWED_HOSTS = env_list(
    "YOUTUBE_ALLOWED_HOSTS",
    ["youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com", "youtu.be"],
)
YOUTUBE_MAX_DURATION_SECONDS = env_float(
    "YOUTUBE_MAX_DURATION_SECONDS", 600.0, minimum=1.0, maximum=3600.0
)
# The longest video a section may be cut from (the whole audio stream is downloaded).
YOUTUBE_MAX_VIDEO_SECONDS = env_float(
    "YOUTUBE_MAX_VIDEO_SECONDS", 3 * 3600.0, minimum=1.0, maximum=24 * 3600.0
)
YOUTUBE_MAX_DOWNLOAD_BYTES = env_int(
    "YOUTUBE_MAX_DOWNLOAD_BYTES", 200 * 1024 * 1024, minimum=1024 * 1024
)
YOUTUBE_SOCKET_TIMEOUT_SECONDS = env_float(
    "YOUTUBE_SOCKET_TIMEOUT_SECONDS", 30.0, minimum=1.0, maximum=600.0
)
# The yt-dlp extractors a link may reach, by exact name ("youtube": single videos only).
YOUTUBE_ALLOWED_EXTRACTORS = env_list("YOUTUBE_ALLOWED_EXTRACTORS", ["youtube"])

# --- Ingest jobs --------------------------------------------------------------------------------
# The synchronous cloning routes wait this long for their job, then answer 202 with it.
INGEST_WAIT_SECONDS = env_float("INGEST_WAIT_SECONDS", 60.0, minimum=0.0, maximum=600.0)
INGEST_MAX_RETRIES = env_int("INGEST_MAX_RETRIES", 2, minimum=0, maximum=10)
# Without a broker (CELERY_TASK_ALWAYS_EAGER), jobs run in the server process on a pool of this
# many threads of their own, the rest waiting their turn. Two: one job's slow download does not
# hold up every other, while peak memory stays that of two jobs beside the speech model.
INGEST_EMBEDDED_WORKERS = env_int("INGEST_EMBEDDED_WORKERS", 2, minimum=1, maximum=64)
# Those threads run this much nicer than the server (Linux), so that requests get the CPU
# before jobs do; 0 keeps them level with requests.
INGEST_EMBEDDED_NICE = env_int("INGEST_EMBEDDED_NICE", 10, minimum=0, maximum=19)
# Jobs one user may have queued or running at once (with a broker too); the next is refused
# with 429 too_many_jobs until one finishes.
INGEST_JOBS_PER_USER = env_int("INGEST_JOBS_PER_USER", 2, minimum=1, maximum=1000)
# A running job's worker touches its row this often; a running job untouched for
# INGEST_STALE_SECONDS lost its worker, and the next delivery of its message takes it over.
INGEST_HEARTBEAT_SECONDS = env_float("INGEST_HEARTBEAT_SECONDS", 10.0, minimum=0.1, maximum=600.0)
INGEST_STALE_SECONDS = env_float("INGEST_STALE_SECONDS", 60.0, minimum=0.5, maximum=86400.0)
if INGEST_STALE_SECONDS <= 2 * INGEST_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        "INGEST_STALE_SECONDS must be more than twice INGEST_HEARTBEAT_SECONDS"
    )
