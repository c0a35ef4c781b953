"""The Django project itself: where it lives, its apps, middleware, templates and the API
framework's wiring."""

from pathlib import Path

from dotenv import load_dotenv

from csmsite.env import env_bool, env_float, env_int, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# Real environment variables win over the .env file.
load_dotenv(BASE_DIR / ".env", override=False)

VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)

# Where `python manage.py serve` (and so `make run`) listens.
HOST = env_str("HOST", "127.0.0.1")
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)
# On SIGTERM the server stops accepting connections and gives requests in flight this long to
# finish (then cuts them) before it exits.
SHUTDOWN_GRACE_SECONDS = env_float("SHUTDOWN_GRACE_SECONDS", 30.0, minimum=0.0, maximum=3600.0)

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
    # Every request's Host against ALLOWED_HOSTS, the API's included (core/hosts.py).
    "core.hosts.HostCheckMiddleware",
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
# Where csmsite/urls.py mounts the API: OpenAI's prefix, and the original server's. The body
# guard in front of Django (core/body_limit.py) applies the API's limits under both.
API_URL_PREFIXES = ("v1/", "api/v1/")

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

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- API ------------------------------------------------------------------------------------
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
    # Two choice sets share the field name response_format: speech's audio formats keep the
    # name they always had, transcription's text formats get their own.
    "ENUM_NAME_OVERRIDES": {
        "ResponseFormatEnum": "speech.audio.formats.FORMATS",
        "TranscriptionResponseFormatEnum": "ingest.transcription.RESPONSE_FORMATS",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
