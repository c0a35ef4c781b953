"""Which peers may say who the client is: uvicorn's proxy headers, from TRUSTED_PROXIES only.

uvicorn rewrites a request's client address and scheme from `X-Forwarded-For` and
`X-Forwarded-Proto` when the peer is in its `forwarded_allow_ips`, which defaults to loopback.
Then any local process (or anything a local proxy forwards unchanged) could choose the address
that the sign-in throttle counts and the /metrics allow-list checks. Here nothing is trusted
unless TRUSTED_PROXIES names the proxy; `manage.py serve` and the tests' live server both take
their options from this one place.
"""

from typing import Any

from django.conf import settings


def uvicorn_proxy_options() -> dict[str, Any]:
    """uvicorn's `proxy_headers` and `forwarded_allow_ips` for TRUSTED_PROXIES."""
    trusted = list(settings.TRUSTED_PROXIES)
    if not trusted:
        # Off entirely: uvicorn would otherwise read FORWARDED_ALLOW_IPS or trust loopback.
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}
