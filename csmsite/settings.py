"""Settings for the speech server, read from the environment (and a `.env` file).

With nothing set this is the embedded default: SQLite and files under `var/`, an in-memory
channel layer, eager Celery tasks and a local-memory cache. `DATABASE_URL` and `REDIS_URL`
switch the same code to Postgres and Redis. Every variable is listed in the README.
"""

import ipaddress
import re
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from csmsite.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# Real environment variables win over the .env file.
load_dotenv(BASE_DIR / ".env", override=False)

VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in VAR_DIR."""
    key = env_secret("SECRET_KEY")
    if key:
        if len(key) < 32:
            raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long")
        return key
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Where `python manage.py serve` (and so `make run`) listens.
HOST = env_str("HOST", "127.0.0.1")
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "core",
    "accounts",
    "voices",
    "speech",
    "ingest",
    "api",
    "web",
]

# Browser-only middleware is skipped on the API (/v1, /api): see core/middleware.py.
MIDDLEWARE = [
    # First: the request id and metrics cover every response, errors from later layers too.
    "core.logging.RequestIdMiddleware",
    "core.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.BrowserSessionMiddleware",
    "core.middleware.BrowserCommonMiddleware",
    "core.middleware.BrowserCsrfMiddleware",
    "core.middleware.BrowserAuthenticationMiddleware",
    "core.middleware.BrowserMessageMiddleware",
    "core.middleware.BrowserXFrameOptionsMiddleware",
]

ROOT_URLCONF = "csmsite.urls"
ASGI_APPLICATION = "csmsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
try:
    # conn_max_age=0: under ASGI each request runs on a fresh thread, so a persistent
    # connection would never be reused, only left open.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from exc
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Seconds to wait for the database (and Redis) to accept a connection, then answer 503: a
# server that went away must not hold requests until the kernel gives up.
SERVICE_CONNECT_TIMEOUT_SECONDS = env_float(
    "SERVICE_CONNECT_TIMEOUT_SECONDS", 3.0, minimum=0.1, maximum=120.0
)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", max(1, round(SERVICE_CONNECT_TIMEOUT_SECONDS))
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent requests write (usage rows): WAL lets readers go on during a write, IMMEDIATE
    # transactions queue writers instead of failing, and a busy writer is waited for.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Tests use a file, not shared-cache memory, whose table locks fail instead of waiting.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer, Celery broker ---------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} is not a redis:// URL")
    _REDIS_TIMEOUTS = {
        "socket_connect_timeout": SERVICE_CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": SERVICE_CONNECT_TIMEOUT_SECONDS,
    }
    CACHES = {
        "default": {
            # Django's Redis cache that carries on in process memory while Redis is down
            # (core/cache.py): rate limits and the key cache hold per process meanwhile.
            "BACKEND": "core.cache.FallbackRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": dict(_REDIS_TIMEOUTS),
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # No socket_timeout: the layer's receive blocks on Redis for seconds by design.
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_connect_timeout": SERVICE_CONNECT_TIMEOUT_SECONDS,
                    }
                ]
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
# Without a broker there is no worker: run tasks in-process.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A job taken by a worker that then died as a whole (SIGKILL, lost machine) goes back to the
# queue this long after it was taken (a killed pool process's job goes back within seconds). Longer
# than the longest job: an unfinished job past it is delivered a second time (which the job's
# claim then turns away while its first worker still beats).
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "socket_connect_timeout": SERVICE_CONNECT_TIMEOUT_SECONDS,
    "socket_timeout": SERVICE_CONNECT_TIMEOUT_SECONDS,
}
CELERY_BROKER_CONNECTION_TIMEOUT = SERVICE_CONNECT_TIMEOUT_SECONDS
# A worker that starts while Redis is down keeps trying to connect.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Files ----------------------------------------------------------------------------------
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Voice audio, consent recordings and uploads waiting for their job live on local disk
# (MEDIA_ROOT), or in an S3-compatible bucket through django-storages: STORAGE_BACKEND=s3 (the
# default once a bucket is named). Every process (web, workers) must use the same storage. The
# objects stay private: the server reads them and streams them to whoever may hear them; no
# page links into the bucket (a URL, if ever asked for, is signed and expires).
STORAGE_BACKEND = env_choice(
    "STORAGE_BACKEND",
    "s3" if env_str("AWS_STORAGE_BUCKET_NAME") else "filesystem",
    ["filesystem", "s3"],
)
if STORAGE_BACKEND == "s3":
    if not env_str("AWS_STORAGE_BUCKET_NAME"):
        raise ImproperlyConfigured("STORAGE_BACKEND=s3 needs AWS_STORAGE_BUCKET_NAME")
    _s3_endpoint = env_str("AWS_S3_ENDPOINT_URL")
    if _s3_endpoint and not re.fullmatch(r"https?://[^/?#\s]+/?", _s3_endpoint):
        raise ImproperlyConfigured(
            f"AWS_S3_ENDPOINT_URL={_s3_endpoint!r} must be http(s)://host[:port], "
            "such as http://minio:9000"
        )
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME"),
            # Empty: Amazon S3 itself. Else MinIO, Ceph, Garage, R2, ... at this URL.
            "endpoint_url": _s3_endpoint or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            # Empty: boto3's own chain (instance role, ~/.aws, AWS_* variables).
            "access_key": env_secret("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env_secret("AWS_SECRET_ACCESS_KEY") or None,
            # A key prefix inside the bucket, so that one bucket can hold several installs.
            "location": env_str("AWS_LOCATION").strip("/"),
            # path: http://host/bucket/key, which most self-hosted servers need.
            "addressing_style": {"auto": None, "path": "path", "virtual": "virtual"}[
                env_choice("AWS_S3_ADDRESSING_STYLE", "auto", ["auto", "path", "virtual"])
            ],
            # No ACL header: objects get the bucket's (private) access, and buckets with ACLs
            # disabled (Amazon's default) accept the upload.
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": 300,
            # As on local disk: saving never replaces an object that exists.
            "file_overwrite": False,
        },
    }

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Accounts -------------------------------------------------------------------------------
# The account that `make run` prepares, and that keyless requests act as.
ADMIN_USERNAME = env_str("ADMIN_USERNAME", "admin")
# required: every request that generates audio or touches voices needs an API key.
# open: a trusted single-user localhost; requests without a key act as ADMIN_USERNAME.
AUTH_MODE = env_choice("AUTH_MODE", "required", ["required", "open"])
# The Django admin's URL path (move it off the well-known /admin/).
ADMIN_URL = env_str("ADMIN_URL", "admin/").strip("/") + "/"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "api-keys"
LOGOUT_REDIRECT_URL = "login"
# Per-key (keyless: per-user) limits on speech generation; 0 turns a limit off.
RATE_LIMIT_REQUESTS_PER_MINUTE = env_int("RATE_LIMIT_REQUESTS_PER_MINUTE", 120, minimum=0)
RATE_LIMIT_CONCURRENT = env_int("RATE_LIMIT_CONCURRENT", 4, minimum=0)

# Sign-in (the login page and the admin's): after this many failed attempts for one username
# from one address within the window, further attempts are refused without checking the password.
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 5, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60, minimum=1)

# --- Security -------------------------------------------------------------------------------
# Browser hardening that holds everywhere (Django's defaults, stated so they cannot drift).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Load balancers and scrapers probe over plain HTTP: health checks and metrics are never
# redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]


_PLAIN_HTTP_SUFFIXES = (".localhost", ".local", ".lan", ".internal", ".home.arpa")


def _is_plain_http_host(host: str) -> bool:
    """Hosts usually served without TLS: loopback, IP addresses (a LAN install reached as
    http://192.168.1.10), local names, and the wildcard. A domain name suggests TLS."""
    name = host.strip().lower().lstrip(".").strip("[]")
    if name in {"localhost", "*", ""} or name.endswith(_PLAIN_HTTP_SUFFIXES):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _proxy_ssl_header() -> tuple[str, str] | None:
    """SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https: the header (as Django's META names
    it) and value by which the TLS-terminating proxy says the original request was HTTPS."""
    raw = env_str("SECURE_PROXY_SSL_HEADER")
    if not raw:
        return None
    header, _, value = (part.strip() for part in raw.partition(","))
    if not re.fullmatch(r"HTTP_[A-Z0-9_]+", header) or not value or "," in value:
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER={raw!r} must be HEADER,value such as "
            "HTTP_X_FORWARDED_PROTO,https"
        )
    return header, value


# HTTPS: the site is reached over TLS, so redirect plain HTTP, send HSTS and mark cookies
# secure. On by default for a production install (DEBUG off and a domain name among the
# hosts); the embedded default (`make run` on 127.0.0.1), docker-compose on localhost and a LAN
# install reached by its IP address serve plain HTTP. HTTPS=true|false decides explicitly.
HTTPS = env_bool("HTTPS", not DEBUG and not all(_is_plain_http_host(h) for h in ALLOWED_HOSTS))
# Only trust this header when a proxy always sets it (and strips it from clients' requests).
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header()
SILENCED_SYSTEM_CHECKS: list[str] = []
if HTTPS:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # The preload directive only matters once the domain is submitted to hstspreload.org.
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # An operator who turns one of these off has decided: `check --deploy` need not repeat it.
    SILENCED_SYSTEM_CHECKS += [
        check
        for check, enabled in [
            ("security.W008", SECURE_SSL_REDIRECT),
            ("security.W005", SECURE_HSTS_INCLUDE_SUBDOMAINS),
            ("security.W021", SECURE_HSTS_PRELOAD),
        ]
        if not enabled
    ]
# Django's checks look for its own clickjacking and CSRF middleware by name; ours are those
# same classes, skipped only on the token-authenticated API (core/middleware.py).
if "core.middleware.BrowserXFrameOptionsMiddleware" in MIDDLEWARE:
    SILENCED_SYSTEM_CHECKS.append("security.W002")
if "core.middleware.BrowserCsrfMiddleware" in MIDDLEWARE:
    SILENCED_SYSTEM_CHECKS.append("security.W003")

# --- API ------------------------------------------------------------------------------------
# A speech request is small JSON: 4096 characters of input, even fully \u-escaped, fit easily.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 256 * 1024, minimum=16 * 1024)
# Conversation requests carry their context turns' audio as base64 in the JSON body.
CONVERSATION_MAX_BODY_BYTES = env_int(
    "CONVERSATION_MAX_BODY_BYTES", 32 * 1024 * 1024, minimum=16 * 1024
)
# Django's own cap on a body read into memory: the parsers enforce the limits above, per route.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_MAX_BODY_BYTES, CONVERSATION_MAX_BODY_BYTES)
# A request body whose next piece takes longer than this is given up (408): a client that
# announces a body and then trickles or stops cannot hold a request open (core/body_limit.py).
REQUEST_BODY_TIMEOUT_SECONDS = env_float(
    "REQUEST_BODY_TIMEOUT_SECONDS", 60.0, minimum=0.1, maximum=3600.0
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "api.negotiation.JsonOnlyNegotiation",
    "EXCEPTION_HANDLER": "api.errors.openai_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "CSM speech server",
    "DESCRIPTION": "OpenAI-compatible text-to-speech with Sesame CSM-1B and eSpeak NG.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["api.openapi.canonical_paths_only"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.openapi.error_responses",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Speech engines -------------------------------------------------------------------------
# Which engine OpenAI's model names (tts-1, tts-1-hd, gpt-4o-mini-tts) mean. "auto": CSM once
# its weights have loaded, eSpeak NG when they cannot be had (the model name "csm-1b" always
# means CSM, and answers 503 with the reason when it is unavailable).
DEFAULT_ENGINE = env_choice("DEFAULT_ENGINE", "auto", ["auto", "csm", "espeak"])
# Concurrent generations one server process accepts; beyond it requests get 503 + Retry-After.
SPEECH_MAX_INFLIGHT = env_int("SPEECH_MAX_INFLIGHT", 32, minimum=1, maximum=4096)
# Upper bound on the audio of one request, whatever max_audio_length_ms asks for.
SPEECH_MAX_AUDIO_SECONDS = env_float(
    "SPEECH_MAX_AUDIO_SECONDS", 1200.0, minimum=1.0, maximum=3600.0
)
SPEECH_RETRY_AFTER_SECONDS = env_int("SPEECH_RETRY_AFTER_SECONDS", 1, minimum=1, maximum=600)
# On SIGTERM the server stops accepting connections and gives requests in flight this long to
# finish (then cuts them) before it exits.
SHUTDOWN_GRACE_SECONDS = env_float("SHUTDOWN_GRACE_SECONDS", 30.0, minimum=0.0, maximum=3600.0)

# CSM-1B: a Hub id or a local directory in transformers format; a token for the gated Hub repo;
# an accelerate device map to spread the model over several GPUs.
CSM_MODEL = env_str("CSM_MODEL", "sesame/csm-1b")
HF_TOKEN = env_secret("HF_TOKEN")
CSM_DEVICE_MAP = env_str("CSM_DEVICE_MAP")
if CSM_DEVICE_MAP and CSM_DEVICE_MAP not in {"auto", "balanced", "sequential"}:
    raise ImproperlyConfigured(
        f"CSM_DEVICE_MAP={CSM_DEVICE_MAP!r} must be one of: auto, balanced, sequential"
    )
# Where and in which precision CSM runs: default CUDA in bfloat16 when present, else the CPU
# in float32.
CSM_DEVICE = env_str("CSM_DEVICE")
CSM_DTYPE = env_choice("CSM_DTYPE", "auto", ["auto", "bfloat16", "float16", "float32"])
# Generate the standard voices' reference segments right after CSM loads (else on first use).
CSM_PREPARE_VOICES = env_bool("CSM_PREPARE_VOICES", True)
# The batching scheduler: requests stepped together at most, and requests admitted beyond
# those to wait for a place; past both, 503 with Retry-After at once.
CSM_MAX_BATCH = env_int("CSM_MAX_BATCH", 16, minimum=1, maximum=512)
CSM_MAX_QUEUE = env_int("CSM_MAX_QUEUE", 32, minimum=0, maximum=4096)
# Memory for the prefilled voice references reused across requests (least recently used out).
CSM_PREFIX_CACHE_MB = env_int("CSM_PREFIX_CACHE_MB", 512, minimum=0)
# torch.compile the per-frame modules (CUDA graphs for the depth decoder on a GPU); compiling
# takes minutes at start-up, before the engine reports ready.
CSM_COMPILE = env_bool("CSM_COMPILE", False)
# The openai-whisper model that transcribes cloned voices.
WHISPER_MODEL = env_str("WHISPER_MODEL", "base.en")
# The language Whisper transcribes in (a code such as en or de); auto: detect it.
WHISPER_LANGUAGE = env_str("WHISPER_LANGUAGE", "en")

# --- Voice cloning ------------------------------------------------------------------------------
# Limits on what a caller may send, and what a voice keeps.
VOICE_UPLOAD_MAX_BYTES = env_int("VOICE_UPLOAD_MAX_BYTES", 50 * 1024 * 1024, minimum=1024)
VOICE_MAX_AUDIO_SECONDS = env_float("VOICE_MAX_AUDIO_SECONDS", 600.0, minimum=5.0, maximum=7200.0)
VOICE_MIN_SPEECH_SECONDS = env_float("VOICE_MIN_SPEECH_SECONDS", 3.0, minimum=0.5, maximum=60.0)
# The longest reference kept for a voice (the cleanest speech windows, with their transcript).
VOICE_REFERENCE_SECONDS = env_float("VOICE_REFERENCE_SECONDS", 20.0, minimum=3.0, maximum=120.0)
VOICE_KEEP_ORIGINALS = env_bool("VOICE_KEEP_ORIGINALS", False)
# A clone needs the caller to attest the right to clone the voice (false: single-user installs).
VOICE_REQUIRE_CONSENT = env_bool("VOICE_REQUIRE_CONSENT", True)
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
# For tests only, and deliberately not read from the environment so that no deployment can
# switch it on: lets downloads reach a loopback test server. Private, link-local, metadata
# and other non-public addresses stay refused even when it is on.
YOUTUBE_ALLOW_LOOPBACK_FOR_TESTS = False
# The synchronous cloning routes wait this long for their job, then answer 202 with it.
INGEST_WAIT_SECONDS = env_float("INGEST_WAIT_SECONDS", 60.0, minimum=0.0, maximum=600.0)
INGEST_MAX_RETRIES = env_int("INGEST_MAX_RETRIES", 2, minimum=0, maximum=10)
# A running job's worker touches its row this often; a running job untouched for
# INGEST_STALE_SECONDS lost its worker, and the next delivery of its message takes it over.
INGEST_HEARTBEAT_SECONDS = env_float("INGEST_HEARTBEAT_SECONDS", 10.0, minimum=0.1, maximum=600.0)
INGEST_STALE_SECONDS = env_float("INGEST_STALE_SECONDS", 60.0, minimum=0.5, maximum=86400.0)
if INGEST_STALE_SECONDS <= 2 * INGEST_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        "INGEST_STALE_SECONDS must be more than twice INGEST_HEARTBEAT_SECONDS"
    )

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ["DEBUG", "INFO", "WARNING", "ERROR"])
# plain for people at a terminal (`make run`); json (one object per line) for log stores:
# production deployments set LOG_FORMAT=json. Both carry the request id (core/logging.py).
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", ["plain", "json"])
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {
            "()": "core.logging.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s",
        },
        "json": {"()": "core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

# --- Metrics --------------------------------------------------------------------------------
# /metrics (Prometheus) needs no API key; it answers clients in these networks, or with
# `Authorization: Bearer <METRICS_TOKEN>`, and 404 to anyone else. The default is loopback and
# the private ranges a Prometheus server scrapes from (compose networks, a LAN); behind a
# reverse proxy on the same host, uvicorn's proxy headers make the client's own address count.
METRICS_ALLOWED_IPS = env_list(
    "METRICS_ALLOWED_IPS",
    ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
)
METRICS_TOKEN = env_secret("METRICS_TOKEN")
for _network in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {exc}") from exc

# --- Watermark ------------------------------------------------------------------------------
# Generated speech (CSM) carries Meta's AudioSeal watermark, as Sesame asks; speech/watermark/.
# On by default: while its weights cannot be loaded, speech still goes out unmarked and /readyz
# says why. The generator must be a streaming (causal) one, which marks audio as it is made;
# either model is a card shipped in the audioseal package (weights downloaded once), a
# facebook/audioseal/<file>.pth Hub file, or a local checkpoint.
WATERMARK = env_bool("WATERMARK", True)
WATERMARK_MODEL = env_str("WATERMARK_MODEL", "audioseal_wm_streaming")
WATERMARK_DETECTOR_MODEL = env_str("WATERMARK_DETECTOR_MODEL", "audioseal_detector_streaming")


def _default_watermark_message() -> int:
    """16 bits that identify this installation: stable, different for every SECRET_KEY, and
    saying nothing useful about the key itself."""
    import hashlib
    import hmac

    digest = hmac.new(SECRET_KEY.encode(), b"audioseal watermark message", hashlib.sha256)
    return int.from_bytes(digest.digest()[:2], "big")


# The 16-bit message in the watermark (0..65535), read back by the detection endpoint.
WATERMARK_MESSAGE = env_int(
    "WATERMARK_MESSAGE", _default_watermark_message(), minimum=0, maximum=0xFFFF
)
