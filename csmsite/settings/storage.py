"""Where state lives: the database, Redis (cache, channel layer, Celery broker) and files (local
disk or an S3-compatible bucket)."""

import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from csmsite.env import env_bool, env_choice, env_float, env_int, env_secret, env_str
from csmsite.settings.base import VAR_DIR

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
            # No socket_timeout: the layer's receive blocks on Redis for seconds by design
            # (BZPOPMIN, 5 s), and redis-py's default read timeout (5 s) would cut it short,
            # failing every WebSocket that waits longer than that for its next event.
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_connect_timeout": SERVICE_CONNECT_TIMEOUT_SECONDS,
                        "socket_timeout": None,
                    }
                ]
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Security state (rate-limit counters, generation slots, sign-in failures, Idempotency-Key
# records) has a store of its own, the "limits" cache: nothing else written to the cache can
# push it out. Embedded, each kind of entry (the key's first segment: "ratelimit",
# "login-failures", "idempotency") is bounded on its own, least recently used out, so a flood of
# one kind cannot evict another; with Redis, the same server under its own key prefix, where
# every entry expires and nothing is evicted (keep Redis's default maxmemory-policy noeviction).
LIMITS_CACHE_MAX_ENTRIES = env_int("LIMITS_CACHE_MAX_ENTRIES", 50_000, minimum=1000)
_LIMITS_LOCAL = {"MAX_ENTRIES": LIMITS_CACHE_MAX_ENTRIES, "CULL_FREQUENCY": 10}
if REDIS_URL:
    CACHES["limits"] = {
        "BACKEND": "core.cache.FallbackRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "limits",
        "OPTIONS": dict(_REDIS_TIMEOUTS),
        # While Redis is down, the process keeps them itself, bounded per kind likewise.
        "LOCAL_BACKEND": "core.cache.PerKindLocMemCache",
        "LOCAL_OPTIONS": _LIMITS_LOCAL,
    }
else:
    CACHES["limits"] = {
        "BACKEND": "core.cache.PerKindLocMemCache",
        "LOCATION": "limits",
        "OPTIONS": _LIMITS_LOCAL,
    }

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
