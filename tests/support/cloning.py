"""Voice cloning through the live server: the requests a caller makes and what a refusal or a
failed job must leave behind."""

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx

from ingest.models import IngestJob
from tests.support.audio import TRANSCRIPT, encoded, recording, sample_wav
from tests.support.storage import stored_files
from voices.models import Voice

CLONED_VOICE_KEYS = {
    "id",
    "name",
    "description",
    "created_at",
    "audio_duration",
    "sample_count",
    "speaker_id",
}
# The host the stand-in video site is reached as (see the `video_site` fixture).
MEDIA_HOST = "media.test"


def clone(
    client: httpx.Client,
    *,
    name: str = "narrator",
    audio: bytes | None = None,
    filename: str = "sample.wav",
    content_type: str = "audio/wav",
    transcript: str | None = TRANSCRIPT,
    description: str = "Reads the evening news.",
    consent: str | None = "true",
    prefix: str = "/v1",
) -> httpx.Response:
    data = {"name": name, "description": description}
    if transcript is not None:
        data["transcript"] = transcript
    if consent is not None:
        data["consent"] = consent
    files = {"audio_file": (filename, sample_wav() if audio is None else audio, content_type)}
    return client.post(f"{prefix}/voice-cloning/clone", data=data, files=files)


def error_of(response: httpx.Response) -> dict:
    """The OpenAI error object of a refusal (and nothing else in the body)."""
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def consent_recording() -> tuple[str, bytes, str]:
    """A consent recording as the openai SDK uploads it: (filename, bytes, MIME type)."""
    audio = recording(("I agree to have my voice cloned.",), lead=0.5)
    return ("consent.wav", encoded(audio), "audio/wav")


def assert_refused_before_any_job(response: httpx.Response, code: str, media_root: Path) -> dict:
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == code
    assert error["message"]
    assert IngestJob.objects.count() == 0
    assert not Voice.objects.filter(kind=Voice.Kind.CLONED).exists()
    assert stored_files(media_root) == []
    return error


def assert_failed_in_job(response: httpx.Response, code: str, media_root: Path) -> dict:
    """A 400 from a job that ran and failed: the job says why, nothing else is left."""
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == code
    job = IngestJob.objects.get()
    assert job.status == IngestJob.Status.FAILED
    assert job.error_code == code
    assert job.error == error["message"]
    assert job.voice is None
    assert not Voice.objects.filter(kind=Voice.Kind.CLONED).exists()
    # The waiting upload went with the failed job.
    assert stored_files(media_root) == []
    return error


# --- Small HTTP servers on loopback ---------------------------------------------------------------


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str]
    body: bytes = b""
    content_type: str = "text/plain"

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def loopback_http_server(
    requests: list[str], *, body: bytes = b"", content_type: str = "text/plain"
) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that records the paths it is asked for; yields its base URL."""
    handler = type(
        "Handler",
        (_RecordingHandler,),
        {"requests": requests, "body": body, "content_type": content_type},
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def video_page(seconds: float) -> bytes:
    """A page that describes its video in schema.org terms, as yt-dlp's generic extractor
    reads them (the duration reaches the download's checks, as YouTube's would)."""
    video = {
        "@context": "https://schema.org",
        "@type": "VideoObject",
        "name": "clip",
        "description": "someone speaking",
        "uploadDate": "2024-01-01",
        "thumbnailUrl": f"http://{MEDIA_HOST}/thumb.jpg",
        "contentUrl": f"http://{MEDIA_HOST}/clip.m4a",
        "encodingFormat": "audio/mp4",
        "duration": f"PT{round(seconds)}S",
    }
    script = f'<script type="application/ld+json">{json.dumps(video)}</script>'
    page = f"<!doctype html><html><head><title>clip</title></head><body>{script}</body></html>"
    return page.encode()


class VideoSite(http.server.BaseHTTPRequestHandler):
    """Serves `files` (path: (body, content type)) and records every path asked for."""

    files: dict[str, tuple[bytes, str]]
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path not in self.files:
            self.send_error(404)
            return
        body, kind = self.files[self.path]
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass
