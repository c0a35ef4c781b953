"""Prometheus metrics, served at /metrics.

The metrics live in this process's memory (prometheus_client's default registry): one server
process per scrape target, as `make run` and the compose file run it. Several worker processes
behind one port would each report only their own share; prometheus_client's multiprocess mode
is not set up here.

This module counts HTTP requests; each app registers its own metrics in its AppConfig.ready()
(speech/metrics.py, ingest/metrics.py), and /metrics serves the whole registry.

Access: /metrics needs no API key, but only clients in METRICS_ALLOWED_IPS (default: loopback
and private networks, where a Prometheus server normally runs) or presenting
`Authorization: Bearer <METRICS_TOKEN>` get it; anyone else gets a 404, as for any unknown URL.
"""

import hmac
import ipaddress
import time
from functools import lru_cache

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

from core.hybrid_middleware import HybridMiddleware

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "tts_http_requests",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "tts_http_request_duration_seconds",
    "Time until the response starts (for streamed speech: until its first audio).",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def route_label(request: HttpRequest) -> str:
    """The URL pattern the request matched (never the raw path: ids would explode the label
    set), or "unmatched"."""
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else "unmatched"


def observe_request(request: HttpRequest, status: int, seconds: float) -> None:
    method = request.method if request.method in _METHODS else "other"
    route = route_label(request)
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_LATENCY.labels(method=method, route=route).observe(seconds)


@lru_cache(maxsize=8)
def _networks(
    allowed: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in allowed)


def metrics_access_allowed(client_ip: str | None, authorization: str | None) -> bool:
    """Whether a client may read /metrics: its address is allowed, or it has the token."""
    token = settings.METRICS_TOKEN
    if token and authorization:
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            return True
    if not client_ip:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    # An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED_IPS)))


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics_access_allowed(
        request.META.get("REMOTE_ADDR"), request.headers.get("Authorization")
    ):
        # A 404, as for any unknown URL: do not advertise the endpoint.
        raise Http404
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware(HybridMiddleware):
    """Count every HTTP request by route and status, with its latency."""

    def handle(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = self.get_response(request)
        observe_request(request, response.status_code, time.perf_counter() - started)
        return response

    async def ahandle(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = await self.get_response(request)
        observe_request(request, response.status_code, time.perf_counter() - started)
        return response
