"""Who may use the server and how: the secret key, hosts, accounts and their limits, HTTPS and
browser hardening, and the bounds on request bodies."""

import ipaddress
import re
import secrets

from django.core.exceptions import ImproperlyConfigured

from csmsite.env import env_bool, env_choice, env_float, env_int, env_list, env_secret, env_str
from csmsite.settings.base import DEBUG, MIDDLEWARE, VAR_DIR


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


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# The reverse proxies (addresses or networks) whose X-Forwarded-For and X-Forwarded-Proto name
# the client; empty (the default) believes no one, so a client cannot choose the address the
# sign-in throttle and /metrics see (core/proxies.py). "*" believes every peer.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
for _proxy in TRUSTED_PROXIES:
    try:
        if _proxy != "*":
            ipaddress.ip_network(_proxy, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {exc}") from exc

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
# The same limits per user, over all of a user's keys (and keyless requests) together, so that
# more keys do not mean more of the server. Twice the per-key value by default: a person's two
# integrations (a chat front-end and a voice assistant, say) each keep a key's whole allowance
# at once, while one user can still hold only a small part of the process's generations.
RATE_LIMIT_USER_REQUESTS_PER_MINUTE = env_int(
    "RATE_LIMIT_USER_REQUESTS_PER_MINUTE", 2 * RATE_LIMIT_REQUESTS_PER_MINUTE, minimum=0
)
RATE_LIMIT_USER_CONCURRENT = env_int(
    "RATE_LIMIT_USER_CONCURRENT", 2 * RATE_LIMIT_CONCURRENT, minimum=0
)
# Active (neither revoked nor expired) API keys one user may have; 0: no cap.
API_KEYS_PER_USER_MAX = env_int("API_KEYS_PER_USER_MAX", 10, minimum=0)

# Sign-in (the login page and the admin's): after this many failed attempts for one username
# (in any spelling: NFKC, case; accounts/login_throttle.py) from one address within the
# window, further attempts are refused without checking the password.
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 5, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60, minimum=1)

# --- Browsers and HTTPS ---------------------------------------------------------------------
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

# --- Request bodies -------------------------------------------------------------------------
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
# ...and a body must keep up this average rate once that much time has passed: a trickle of a
# byte now and then is given up too (408), however often its pieces come.
REQUEST_BODY_MIN_BYTES_PER_SECOND = env_int("REQUEST_BODY_MIN_BYTES_PER_SECOND", 1024, minimum=1)

# --- Connections (core/connections.py) ------------------------------------------------------
# A connection must complete its request line and headers within this long of connecting (or,
# kept alive, of its previous response); otherwise it is closed.
HTTP_HEADER_TIMEOUT_SECONDS = env_float(
    "HTTP_HEADER_TIMEOUT_SECONDS", 10.0, minimum=0.1, maximum=3600.0
)
# Open connections per server process: beyond it, the one waiting longest for its request head
# is closed to make room (or, where every one is mid-request, the newcomer gets 503 but for
# /healthz and /readyz).
HTTP_MAX_CONNECTIONS = env_int("HTTP_MAX_CONNECTIONS", 1000, minimum=1)
# An idle kept-alive connection is closed after this long without a new request (uvicorn's
# default, 5). A reverse proxy that pools idle connections to the server must close them first:
# set this above the proxy's own idle timeout (ingress-nginx: 60 s), or a request it sends on a
# connection the server is closing at that moment fails with a 502.
HTTP_KEEPALIVE_SECONDS = env_int("HTTP_KEEPALIVE_SECONDS", 5, minimum=1, maximum=3600)
