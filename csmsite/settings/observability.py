"""What the server tells its operators: logs and Prometheus metrics."""

import ipaddress

from django.core.exceptions import ImproperlyConfigured

from csmsite.env import env_choice, env_list, env_secret

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
    # The HTTP clients under the Hub client log every request at INFO (a dozen per model
    # download): at the default level they say no more than warnings, and the loaders' own
    # lines say what came of it.
    "loggers": {
        name: {"level": "WARNING" if LOG_LEVEL == "INFO" else LOG_LEVEL}
        for name in ("httpx", "httpx2")
    },
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
