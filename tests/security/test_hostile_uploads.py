"""Hostile uploads and hostile bodies: refused early, with memory and time bounded.

- Playlists, concat scripts and other non-audio never reach a demuxer that could follow them;
  audio signatures in front of them reach only that signature's demuxer, which fails.
- Decode bombs (hours of Opus in a few megabytes, a FLAC or WAV whose header claims 1 Hz) stop
  at the duration cap or the sample-rate check, in a child process whose peak memory is read.
- Bodies over a route's limit are refused before they are read: by their Content-Length, or,
  when that is absent or lies, as soon as the bytes pass the limit; a body that stops arriving
  is given up.
"""

import base64
import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.conf import settings as django_settings
from hostile_cases import HOSTILE_UPLOADS, Upload, flac_forged_rate, opus_hours

from ingest.models import IngestJob
from voices.models import Voice, VoiceConsent

pytestmark = pytest.mark.django_db(transaction=True)

HANG_GUARD_SECONDS = 60
# A decode may use memory for its output (600 s at 24 kHz is 58 MB of float32) and FFmpeg's
# buffers; a bomb that got through would use gigabytes.
DECODE_PEAK_MEMORY_MB = 600

_DECODE_IN_CHILD = """
import json, resource, sys
from speech.audio.decode import AudioDecodeError, decode_audio

data = sys.stdin.buffer.read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    samples = decode_audio(data, sample_rate=24000, max_seconds=float(sys.argv[1]))
    outcome, detail = "decoded", samples.size
except AudioDecodeError as exc:
    outcome, detail = "refused", str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "detail": detail, "grew_mb": (after - before) / 1024}))
"""


def _decode_in_child(data: bytes, max_seconds: float = 600) -> dict:
    """decode_audio in a fresh process, which reports how much its peak memory grew."""
    completed = subprocess.run(
        [sys.executable, "-c", _DECODE_IN_CHILD, str(max_seconds)],
        input=data,
        capture_output=True,
        cwd=django_settings.BASE_DIR,
        timeout=HANG_GUARD_SECONDS,
        check=True,
    )
    return json.loads(completed.stdout)


def _non_empty(uploads: list[Upload]) -> list[Upload]:
    return [upload for upload in uploads if upload.code != "empty_file"]


@pytest.mark.parametrize("upload", _non_empty(HOSTILE_UPLOADS), ids=lambda upload: upload.name)
def test_the_decoder_refuses_every_hostile_upload_within_bounded_memory(upload: Upload):
    report = _decode_in_child(upload.build())

    assert report["outcome"] == "refused", report
    assert report["grew_mb"] < DECODE_PEAK_MEMORY_MB, report


@pytest.mark.parametrize("rate", [1, 100, 3999, 192_001])
def test_a_flac_whose_header_lies_about_its_rate_is_refused_before_decoding(rate):
    # (at 1 Hz its 8 kB decoded to 4.6 GB before the sample-rate check)
    report = _decode_in_child(flac_forged_rate(rate))

    assert report["outcome"] == "refused"
    assert "sample rate" in report["detail"]


def test_hours_of_opus_stop_at_the_duration_cap():
    report = _decode_in_child(opus_hours(3.0), max_seconds=600)

    assert report["outcome"] == "refused"
    assert "longer than the limit of 600 seconds" in report["detail"]
    assert report["grew_mb"] < DECODE_PEAK_MEMORY_MB


# --- Through the API ------------------------------------------------------------------------------


@pytest.fixture
def client(live_server_url, alice_key, settings, media_root):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    with httpx.Client(
        base_url=live_server_url,
        headers={"Authorization": f"Bearer {alice_key}"},
        timeout=HANG_GUARD_SECONDS,
    ) as client:
        yield client


def _stored(media_root: Path) -> list[Path]:
    return [path for path in media_root.rglob("*") if path.is_file()] if media_root.exists() else []


def test_every_hostile_upload_is_refused_by_every_upload_route(client, alice, media_root):
    consent = VoiceConsent.objects.create(id="cons_given", owner=alice, name="Al", language="en")
    routes = [
        ("/v1/voice-cloning/clone", "audio_file", {"name": "n", "consent": "true"}),
        ("/v1/audio/voices", "audio_sample", {"name": "n", "consent": consent.id}),
        ("/v1/audio/voice_consents", "recording", {"name": "n", "language": "en"}),
        ("/v1/audio/watermark/detect", "file", {}),
    ]
    for upload in HOSTILE_UPLOADS:
        data = upload.build()
        for path, field, form in routes:
            response = client.post(
                path, data=form, files={field: (upload.filename, data, "audio/wav")}
            )

            assert response.status_code == 400, (upload.name, path, response.text)
            error = response.json()["error"]
            assert error["param"] == field, (upload.name, path, error)
            if path == "/v1/voice-cloning/clone":
                assert error["code"] == upload.code, (upload.name, error)
    # Refused uploads leave nothing behind: no voice, no consent, no stored file.
    assert not Voice.objects.filter(kind=Voice.Kind.CLONED).exists()
    assert list(VoiceConsent.objects.values_list("id", flat=True)) == [consent.id]
    assert not IngestJob.objects.exclude(status=IngestJob.Status.FAILED).exists()
    assert _stored(media_root) == []


def test_hostile_context_audio_in_a_conversation_is_a_400_naming_the_turn(client, csm_engine):
    for upload in _non_empty(HOSTILE_UPLOADS):
        body = {
            "model": "csm-1b",
            "text": "And then?",
            "context": [
                {"speaker": 0, "text": "Hello.", "audio": base64.b64encode(upload.build()).decode()}
            ],
        }

        response = client.post("/v1/audio/conversation", json=body)

        assert response.status_code == 400, (upload.name, response.text)
        assert response.json()["error"]["param"] == "context[0].audio"


# --- Bodies over the limit, lying or stalling -----------------------------------------------------


def _raw_exchange(url: str, head: str, body: bytes = b"") -> bytes:
    """Send a hand-made request (headers, then `body`) and read the answer until the server
    closes the connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=HANG_GUARD_SECONDS) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _head(path: str, key: str, **headers: str) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {key}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/voice-cloning/clone",
        "/v1/audio/voices",
        "/v1/audio/watermark/detect",
        "/v1/audio/speech",
        "/v1/audio/conversation",
        "/voice-cloning/clone",
    ],
)
def test_a_body_announced_as_ten_gigabytes_is_refused_before_it_is_sent(
    live_server_url, alice_key, path
):
    # Nothing of the body is sent: a server that waited for it would never answer.
    head = _head(
        path,
        alice_key,
        Content_Type="multipart/form-data; boundary=x",
        Content_Length="10" + "0" * 10,
    )

    answer = _raw_exchange(live_server_url, head)

    assert _status(answer) == 413
    assert b'"code": "request_too_large"' in answer
    assert b"x-request-id" in answer.lower()


def _chunked(total: int, piece: bytes) -> bytes:
    """Chunked transfer coding of at least `total` bytes, without the final empty chunk: the
    sender stops there and waits, as if more were coming."""
    count = total // len(piece) + 1
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(count))


@pytest.mark.parametrize(
    ("path", "content_type", "piece"),
    [
        ("/v1/audio/speech", "application/json", b"a" * 65536),
        ("/v1/voice-cloning/clone", "multipart/form-data; boundary=x", b"RIFF" + b"\0" * 65532),
    ],
    ids=["json", "upload"],
)
def test_a_body_without_a_length_is_cut_off_once_it_passes_the_limit(
    live_server_url, alice_key, media_root, path, content_type, piece
):
    # given a body sent chunked (no Content-Length) that passes the route's limit and then
    # pauses: a server that read on would wait for the rest, and never answer
    from core.body_limit import body_limit

    head = _head(path, alice_key, Content_Type=content_type, Transfer_Encoding="chunked")

    answer = _raw_exchange(live_server_url, head, _chunked(body_limit(path), piece))

    assert _status(answer) == 413
    assert _stored(media_root) == []
    assert not IngestJob.objects.exists()


def test_a_body_that_stops_arriving_is_given_up(live_server_url, alice_key, settings):
    # given a client that announces 1000 bytes, sends 10 and then waits
    settings.REQUEST_BODY_TIMEOUT_SECONDS = 0.5
    head = _head(
        "/v1/audio/speech", alice_key, Content_Type="application/json", Content_Length="1000"
    )

    answer = _raw_exchange(live_server_url, head, b'{"model":')

    assert _status(answer) == 408
    assert b'"code": "request_timeout"' in answer


def test_a_ten_megabyte_json_body_is_refused_by_its_length(client):
    body = b'{"model": "tts-1", "input": "' + b"a" * (10 * 1024 * 1024) + b'"}'

    response = client.post(
        "/v1/audio/speech", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_bodies_within_the_limits_still_pass(client, settings):
    # The guard never refuses what the parsers accept: a body just under API_MAX_BODY_BYTES
    # reaches the view (and is spoken), and a small upload reaches the cloning checks.
    padding = "x" * (settings.API_MAX_BODY_BYTES - 200)
    speech = client.post(
        "/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "pad": padding}
    )
    upload = client.post(
        "/v1/voice-cloning/clone",
        data={"name": "n", "consent": "true"},
        files={"audio_file": ("a.txt", b"not audio", "text/plain")},
    )

    assert speech.status_code == 200
    assert upload.status_code == 400
    assert upload.json()["error"]["code"] == "unsupported_format"
