"""Fixtures for the tests that clone voices through the live server (registered by
tests/conftest.py)."""

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from speech.engines.espeak import EspeakEngine
from tests.support.audio import RATE, m4a, recording
from tests.support.cloning import MEDIA_HOST, VideoSite, clone, video_page


@pytest.fixture
def jobs_run_in_process(monkeypatch) -> None:
    """Jobs run in the server's process, as in the embedded default (CI sets REDIS_URL, which
    otherwise sends them to a broker that no worker reads here)."""
    from csmsite.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


@pytest.fixture
def cloned(api, media_root, jobs_run_in_process) -> dict:
    """Alice's voice "narrator", cloned through the API from the usual sample."""
    response = clone(api)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def short_speech(settings, csm_engine) -> None:
    """CSM (the tiny random checkpoint) answers with at most half a second of audio (the
    preview route has no length field)."""
    settings.SPEECH_MAX_AUDIO_SECONDS = 0.5


@pytest.fixture
def as_bob(live_server_url, bob_key) -> Iterator[httpx.Client]:
    """An HTTP client for the live server, authenticated as bob."""
    with httpx.Client(
        base_url=live_server_url, headers={"Authorization": f"Bearer {bob_key}"}, timeout=60
    ) as client:
        yield client


@pytest.fixture
def stand_in_whisper(monkeypatch) -> list[np.ndarray]:
    """A stand-in for a real Whisper model, which the tests cannot have: it reports the audio
    it is given as consecutive two-second segments labelled w0, w1, ... (the reference text
    then says which windows were kept). Returns the audio it was asked to transcribe."""
    from ingest import transcribe as transcribe_module
    from ingest.reference import TranscriptSegment

    heard: list[np.ndarray] = []

    def transcribe(samples: np.ndarray, sample_rate: int = RATE):
        heard.append(samples)
        step = 2 * sample_rate
        starts = range(0, max(samples.size - sample_rate, 1), step)
        segments = [
            TranscriptSegment(
                start=start / sample_rate,
                end=min(start + step, samples.size) / sample_rate,
                text=f"w{index}",
            )
            for index, start in enumerate(starts)
        ]
        return transcribe_module.Transcript(
            text=" ".join(s.text for s in segments), segments=segments, language="en"
        )

    monkeypatch.setattr(transcribe_module, "transcribe", transcribe)
    return heard


@pytest.fixture
def video_site(settings, monkeypatch, tmp_path) -> Iterator[list[str]]:
    """http://media.test/ serves /watch (a page for a speech recording) and /long (a page for
    a five-hour video); yields the paths the site was asked for.

    The site is reached as MEDIA_HOST through a resolver that maps that name to it, with the
    settings that tests/ingest/test_download.py widens: that host allowed, yt-dlp's generic
    extractor, loopback addresses. Everything else (no IP literals, no ports, the guard) is as
    in production."""
    from ingest import download

    audio = recording()
    requests: list[str] = []
    files = {
        "/watch": (video_page(audio.size / RATE), "text/html"),
        "/long": (video_page(5 * 3600), "text/html"),
        "/clip.m4a": (m4a(audio, tmp_path / "clip.m4a"), "audio/mp4"),
    }
    handler = type("Site", (VideoSite,), {"files": files, "requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def resolve(host: str, service: int, family: int = 0, kind: int = 0, *rest: int) -> list:
        if host == MEDIA_HOST:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return socket.getaddrinfo(host, service, family, kind, 0, socket.AI_NUMERICHOST)

    validate, fetch = download.validate_source_url, download.download_audio
    monkeypatch.setattr(
        download, "validate_source_url", lambda url, resolver=None: validate(url, resolver=resolve)
    )
    monkeypatch.setattr(
        download, "download_audio", lambda url, **kwargs: fetch(url, **kwargs, resolver=resolve)
    )
    settings.YOUTUBE_ALLOWED_HOSTS = [MEDIA_HOST]
    settings.YOUTUBE_ALLOWED_EXTRACTORS = ["generic"]
    settings.YOUTUBE_ALLOW_LOOPBACK_FOR_TESTS = True
    try:
        yield requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def endless_engine(monkeypatch) -> Iterator[threading.Event]:
    """An engine that speaks until its stream is closed; set the event to end every one."""
    stop = threading.Event()

    def endless(self, chunks, voice, params):
        # A first chunk, then a trickle: audio builds up far slower than it is made, so no
        # cap on a request's audio ends the stream while the test holds it.
        yield np.full(1200, 0.1, dtype=np.float32)
        while not stop.is_set():
            time.sleep(0.02)
            yield np.full(24, 0.1, dtype=np.float32)

    monkeypatch.setattr(EspeakEngine, "synthesize", endless)
    yield stop
    stop.set()
