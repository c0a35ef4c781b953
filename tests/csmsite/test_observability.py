"""/metrics, request ids and structured logs, against the live server."""

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from core.logging import JsonFormatter, RequestIdFilter, redact, request_id_from_header
from core.metrics import metrics_access_allowed

SPEECH = {"model": "tts-1", "input": "Hello.", "response_format": "pcm"}
VOICE_ROUTE = "v1/audio/voices/<str:voice_id>"


class _Lines(logging.Handler):
    """Every log record, formatted as the JSON log would write it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())
        self.addFilter(RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    root = logging.getLogger()
    handler = _Lines()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _wait_for(condition, timeout: float = 5.0) -> bool:
    # Real-time factor is observed when generation has stopped, just after the last byte.
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_metrics_after_speech(api: httpx.Client) -> None:
    ttfa = _sample("tts_speech_time_to_first_audio_seconds_count", engine="espeak")
    rtf = _sample("tts_speech_real_time_factor_count", engine="espeak")

    response = api.post("/v1/audio/speech", json=SPEECH)
    assert response.status_code == 200 and response.content

    assert _sample("tts_speech_time_to_first_audio_seconds_count", engine="espeak") == ttfa + 1
    assert _wait_for(
        lambda: _sample("tts_speech_real_time_factor_count", engine="espeak") == rtf + 1
    )
    text = httpx.get(f"{api.base_url}/metrics").text
    for name in (
        "tts_http_requests_total",
        "tts_http_request_duration_seconds_bucket",
        "tts_speech_time_to_first_audio_seconds_bucket",
        "tts_speech_real_time_factor_bucket",
        "tts_speech_inflight",
        # eSpeak needs no batch: the scheduler has no rows and nobody waiting.
        "tts_speech_batch_size 0.0",
        "tts_speech_scheduler_waiting 0.0",
        'tts_engine_state{engine="espeak",state="ready"} 1.0',
        'tts_engine_state{engine="espeak",state="loading"} 0.0',
        'tts_ingest_jobs{status="queued"} 0.0',
    ):
        assert name in text, name
    assert 'tts_http_requests_total{method="POST",route="v1/audio/speech",status="200"}' in text


def test_route_label_is_the_template(api: httpx.Client) -> None:
    voice_id = str(uuid.uuid4())
    before = _sample("tts_http_requests_total", method="GET", route=VOICE_ROUTE, status="404")

    assert api.get(f"/v1/audio/voices/{voice_id}").status_code == 404

    after = _sample("tts_http_requests_total", method="GET", route=VOICE_ROUTE, status="404")
    assert after == before + 1
    text = httpx.get(f"{api.base_url}/metrics").text
    assert voice_id not in text
    uuid_like = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
    assert not any(uuid_like.search(route) for route in re.findall(r'route="([^"]*)"', text))


def test_ingest_jobs_by_status(api: httpx.Client, alice) -> None:
    from ingest.models import IngestJob

    IngestJob.objects.create(owner=alice, status=IngestJob.Status.FAILED)
    text = httpx.get(f"{api.base_url}/metrics").text
    assert 'tts_ingest_jobs{status="failed"} 1.0' in text


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("10.1.2.3", True),
        ("192.168.1.10", True),
        ("::ffff:127.0.0.1", True),
        ("203.0.113.5", False),
        ("2001:db8::1", False),
        ("not an address", False),
        (None, False),
    ],
)
def test_metrics_access_by_address(settings, address: str | None, allowed: bool) -> None:
    settings.METRICS_TOKEN = ""
    assert metrics_access_allowed(address, None) is allowed


def test_metrics_access_by_token(settings) -> None:
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    settings.METRICS_ALLOWED_IPS = []
    assert metrics_access_allowed("203.0.113.5", "Bearer s3cret-metrics-token")
    assert not metrics_access_allowed("203.0.113.5", "Bearer wrong")
    assert not metrics_access_allowed("203.0.113.5", "Basic s3cret-metrics-token")
    assert not metrics_access_allowed("127.0.0.1", None)


def test_metrics_refused_outside_allowed_networks(live_server_url: str, settings) -> None:
    settings.METRICS_ALLOWED_IPS = ["203.0.113.0/24"]
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    assert httpx.get(f"{live_server_url}/metrics").status_code == 404
    allowed = httpx.get(
        f"{live_server_url}/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"}
    )
    assert allowed.status_code == 200
    assert allowed.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        ("abc-123_X.y", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("bad id!", False),
        ("a/b", False),
        ("", False),
    ],
)
def test_request_id_from_header(sent: str, echoed: bool) -> None:
    assigned = request_id_from_header(sent)
    if echoed:
        assert assigned == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", assigned)


def test_request_id_echoed_or_generated(live_server_url: str) -> None:
    sane = httpx.get(f"{live_server_url}/healthz", headers={"X-Request-ID": "client-id.1"})
    assert sane.headers["X-Request-ID"] == "client-id.1"
    too_long = httpx.get(f"{live_server_url}/healthz", headers={"X-Request-ID": "a" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", too_long.headers["X-Request-ID"])
    bad = httpx.get(f"{live_server_url}/healthz", headers={"X-Request-ID": "x;y=1"})
    assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["X-Request-ID"])
    absent = httpx.get(f"{live_server_url}/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", absent.headers["X-Request-ID"])


def test_request_id_on_streaming_and_error_responses(api: httpx.Client) -> None:
    with api.stream("POST", "/v1/audio/speech", json=SPEECH, headers={"X-Request-ID": "s-1"}) as r:
        assert r.status_code == 200
        assert r.headers["X-Request-ID"] == "s-1"
        assert b"".join(r.iter_bytes())
    missing = api.get(f"/v1/audio/voices/{uuid.uuid4()}", headers={"X-Request-ID": "e-1"})
    assert missing.status_code == 404
    assert missing.headers["X-Request-ID"] == "e-1"
    assert "error" in missing.json()


def test_json_logs_carry_the_request_id_and_never_the_key(
    api: httpx.Client, alice_key: str, log_lines: list[str]
) -> None:
    api.post("/v1/audio/speech", json=SPEECH, headers={"X-Request-ID": "log-1"})
    api.get(f"/v1/audio/voices/{uuid.uuid4()}", headers={"X-Request-ID": "log-2"})
    api.get("/v1/audio/voices", headers={"X-Request-ID": "log-3"})
    httpx.post(f"{api.base_url}/v1/audio/speech", json=SPEECH, headers={"X-Request-ID": "log-4"})

    entries = [json.loads(line) for line in log_lines]
    assert entries
    for entry in entries:
        assert {"time", "level", "logger", "message", "request_id"} <= entry.keys()
    # The 404 is logged by Django (django.request) while the request's id is current.
    assert any(e["request_id"] == "log-2" and e["level"] == "WARNING" for e in entries)
    assert all(alice_key not in line for line in log_lines)
    assert all(alice_key[-12:] not in line for line in log_lines)


def test_json_formatter_exception_and_redaction() -> None:
    logger = logging.getLogger("tests.observability")
    try:
        raise ValueError("boom")
    except ValueError:
        args = ("Bearer sk-abcdefghijklmnop",)
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "failed with %s", args, sys.exc_info()
        )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "ERROR"
    assert "sk-abcdefghijklmnop" not in entry["message"]
    assert "ValueError: boom" in entry["exception"]
    assert redact("the bearer token is required") == "the bearer token is required"
