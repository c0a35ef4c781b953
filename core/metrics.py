"""Prometheus metrics, served at /metrics.

The metrics live in this process's memory (prometheus_client's default registry): one server
process per scrape target, as `make run` and the compose file run it. Several worker processes
behind one port would each report only their own share; prometheus_client's multiprocess mode
is not set up here.

Access: /metrics needs no API key, but only clients in METRICS_ALLOWED_IPS (default: loopback
and private networks, where a Prometheus server normally runs) or presenting
`Authorization: Bearer <METRICS_TOKEN>` get it; anyone else gets a 404, as for any unknown URL.
"""

import hmac
import ipaddress
import logging
import time
from collections.abc import Iterable, Iterator
from functools import lru_cache

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.hybrid_middleware import HybridMiddleware

logger = logging.getLogger(__name__)

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
SPEECH_TTFA = Histogram(
    "tts_speech_time_to_first_audio_seconds",
    "From admitting a speech request to its first encoded audio.",
    ["engine"],
    buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
SPEECH_RTF = Histogram(
    "tts_speech_real_time_factor",
    "Engine seconds per second of audio produced (below 1: faster than real time).",
    ["engine"],
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5, 10),
)
SPEECH_INFLIGHT = Gauge(
    "tts_speech_inflight", "Speech generations running in this process (the queue depth)."
)
SPEECH_BATCH_SIZE = Gauge(
    "tts_speech_batch_size", "Requests the batching scheduler steps together right now."
)
SPEECH_WAITING = Gauge(
    "tts_speech_scheduler_waiting",
    "Requests admitted by the batching scheduler and waiting for a place in its batch.",
)


def _inflight() -> float:
    from speech.admission import speech_slots

    return speech_slots.inflight


SPEECH_INFLIGHT.set_function(_inflight)


def _batch_size() -> float:
    from speech.engines.scheduler import scheduler_batch_size

    return scheduler_batch_size()


def _waiting() -> float:
    from speech.engines.scheduler import scheduler_waiting

    return scheduler_waiting()


SPEECH_BATCH_SIZE.set_function(_batch_size)
SPEECH_WAITING.set_function(_waiting)


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


def observe_first_audio(engine: str, seconds: float) -> None:
    SPEECH_TTFA.labels(engine=engine).observe(seconds)


def observe_generation(engine: str, engine_seconds: float, audio_seconds: float) -> None:
    if audio_seconds > 0:
        SPEECH_RTF.labels(engine=engine).observe(engine_seconds / audio_seconds)


class StateCollector(Collector):
    """Engine states and ingest jobs by status, read at scrape time."""

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Without describe(), registering would call collect() (and query the database) at import.
        return [self._engine_family(), self._ingest_family()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield self._engine_states()
        jobs = self._ingest_jobs()
        if jobs is not None:
            yield jobs

    @staticmethod
    def _engine_family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "tts_engine_state", "1 for each engine's current state.", labels=["engine", "state"]
        )

    @staticmethod
    def _ingest_family() -> GaugeMetricFamily:
        return GaugeMetricFamily("tts_ingest_jobs", "Ingest jobs by status.", labels=["status"])

    def _engine_states(self) -> GaugeMetricFamily:
        from speech.engines.base import EngineState
        from speech.engines.registry import engine_states

        family = self._engine_family()
        states = ["not_loaded", *(str(state) for state in EngineState)]
        for engine, info in engine_states().items():
            for state in states:
                family.add_metric([engine, state], 1.0 if info["state"] == state else 0.0)
        return family

    def _ingest_jobs(self) -> GaugeMetricFamily | None:
        from ingest.models import IngestJob

        counts = dict.fromkeys(IngestJob.Status.values, 0)
        try:
            # One aggregate query, whatever the number of jobs.
            rows = IngestJob.objects.order_by().values_list("status").annotate(n=Count("pk"))
            counts.update(dict(rows))
        except DatabaseError:
            logger.warning("metrics: could not count ingest jobs", exc_info=True)
            return None
        family = self._ingest_family()
        for status, count in counts.items():
            family.add_metric([status], float(count))
        return family


REGISTRY.register(StateCollector())


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
