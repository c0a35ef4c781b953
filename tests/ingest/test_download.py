"""YouTube ingestion's download step: which links are refused before anything is fetched, and
real yt-dlp downloads from a loopback HTTP server (generic extractor, allowed here only).

The server is reached as "media.test": a fake resolver maps that name to the server's loopback
address and port, so the production rules (no IP literals, no ports) stay exactly as they are.
Names the fake resolver does not know are resolved numerically only, never through DNS.
"""

import gzip
import http.server
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings

from ingest.download import (
    DOWNLOAD_STEM,
    AddressGuard,
    AddressRefusedError,
    GuardedUrllibRH,
    _DownloadState,
    _GuardedYoutubeDL,
    _locked_options,
    _match_filter,
    address_refusal,
    download_audio,
    load_section,
    validate_source_url,
)
from ingest.errors import IngestError
from speech.audio.decode import decode_audio
from tests.security.hostile_cases import flac_forged_rate
from tests.support.audio import written

SAMPLE_RATE = 24000
CLIP_SECONDS = 6.0
CLIP_RATE = 48000
AAC_FRAME = 1024
# One AAC frame at the clip's rate, in output samples: the tolerance of a seek.
FRAME_TOLERANCE = AAC_FRAME * SAMPLE_RATE // CLIP_RATE
MEDIA_HOST = "media.test"
VIDEO_ID = "dQw4w9WgXcQ"
PUBLIC = ["142.250.185.78", "2a00:1450:4001:82b::200e"]


# --- Fixtures ----------------------------------------------------------------------------------


def _tone(path: Path, seconds: float, *, container_format: str, codec: str) -> bytes:
    """A mono tone whose pitch rises over time (so sections differ), written to `path`."""
    t = np.arange(int(seconds * CLIP_RATE)) / CLIP_RATE
    signal = (0.4 * np.sin(2 * np.pi * (200 + 60 * t) * t)).astype(np.float32)
    return written(signal, path, rate=CLIP_RATE, container_format=container_format, codec=codec)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """m4a (AAC), one of the two audio formats YouTube serves."""
    path = tmp_path_factory.mktemp("media") / "tone.m4a"
    return _tone(path, CLIP_SECONDS, container_format="mp4", codec="aac")


@dataclass
class MediaServer:
    """A loopback HTTP server; `requests` lists every path it was asked for."""

    port: int
    requests: list[str] = field(default_factory=list)


def _page(body: str) -> bytes:
    return (
        f"<!doctype html><html><head><title>clip</title></head><body>{body}</body></html>".encode()
    )


def _json_ld(*, duration: str, host: str = MEDIA_HOST) -> str:
    """A page describing its video in schema.org terms, as yt-dlp's generic extractor reads
    them: the media URL goes straight to the downloader (its type is given), and the duration
    reaches the match filter, as YouTube's would."""
    video = {
        "@context": "https://schema.org",
        "@type": "VideoObject",
        "name": "clip",
        "description": "a tone",
        "uploadDate": "2024-01-01",
        "thumbnailUrl": "http://media.test/thumb.jpg",
        "contentUrl": f"http://{host}/clip.m4a",
        "encodingFormat": "audio/mp4",
        "duration": duration,
    }
    return f'<script type="application/ld+json">{json.dumps(video)}</script>'


class _QuietServer(http.server.ThreadingHTTPServer):
    """Clients that hang up early (the size cap does) are expected here, not errors."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def _handler(clip: bytes, server: MediaServer) -> type[http.server.BaseHTTPRequestHandler]:
    bomb = gzip.compress(b"\0" * 5_000_000)
    pages = {
        "/page.html": _page(_json_ld(duration="PT6S")),
        "/page-private.html": _page(_json_ld(duration="PT6S", host="internal.test")),
        "/long.html": _page(_json_ld(duration="PT5H")),
        "/short.html": _page(_json_ld(duration="PT3S")),
    }
    redirects = {
        "/to-private": "http://10.0.0.1/clip.m4a",
        "/to-metadata": "http://169.254.169.254/latest/meta-data/",
        "/to-internal-name": "http://internal.test/clip.m4a",
        "/to-ipv6-loopback": "http://[::1]/clip.m4a",
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def _answer(self, *, send_body: bool) -> None:
            server.requests.append(self.path)
            if self.path in redirects:
                self.send_response(302)
                self.send_header("Location", redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path in pages:
                self._send(pages[self.path], send_body=send_body, length=True, kind="text/html")
            elif self.path == "/clip.m4a":
                self._send(clip, send_body=send_body, length=True)
            elif self.path == "/streamed.m4a":
                self._send(clip, send_body=send_body, length=False)  # ends when closed
            elif self.path == "/bomb.m4a":
                self._send(bomb, send_body=send_body, length=True, encoding="gzip")
            else:
                self.send_error(404)

        def _send(
            self,
            body: bytes,
            *,
            send_body: bool,
            length: bool,
            encoding: str | None = None,
            kind: str = "audio/mp4",
        ) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            if length:
                self.send_header("Content-Length", str(len(body)))
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def media_server(clip: bytes) -> Iterator[MediaServer]:
    state = MediaServer(port=0)
    httpd = _QuietServer(("127.0.0.1", 0), _handler(clip, state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


class FakeResolver:
    """getaddrinfo with a fixed table; loopback answers carry the test server's port.

    `answers` maps a name to a list of addresses; a list of lists gives a different answer
    to each lookup (the last one repeats), as a rebinding DNS server would."""

    def __init__(self, answers: dict[str, list] | None = None, *, server_port: int = 0) -> None:
        self.answers = answers or {}
        self.server_port = server_port
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, family: int = 0, kind: int = 0, *rest: int) -> list:
        self.calls.append(host)
        if host not in self.answers:
            # IP literals resolve to themselves; names raise instead of reaching real DNS.
            return socket.getaddrinfo(host, port, family, kind, 0, socket.AI_NUMERICHOST)
        answer = self.answers[host]
        if answer and isinstance(answer[0], list):
            answer = answer[min(self.calls.count(host), len(answer)) - 1]
        return [self._record(address, port) for address in answer]

    def _record(self, address: str, port: int) -> tuple:
        loopback = address.startswith("127.") or address == "::1"
        if loopback and self.server_port:
            port = self.server_port
        if ":" in address:
            return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
        return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


@pytest.fixture
def test_downloads(settings) -> None:
    """The only widening: media.test allowed, the generic extractor, loopback addresses."""
    settings.YOUTUBE_ALLOWED_HOSTS = [MEDIA_HOST]
    settings.YOUTUBE_ALLOWED_EXTRACTORS = ["generic"]
    settings.YOUTUBE_ALLOW_LOOPBACK_FOR_TESTS = True


@pytest.fixture
def media_resolver(media_server: MediaServer) -> FakeResolver:
    return FakeResolver(
        {MEDIA_HOST: ["127.0.0.1"], "internal.test": ["192.168.1.5"]},
        server_port=media_server.port,
    )


def _files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


# --- The refusal matrix ------------------------------------------------------------------------

REFUSED = [
    # loopback, in every spelling
    ("http://127.0.0.1", "IP address"),
    ("http://127.0.0.1:{port}/clip.m4a", "IP address"),
    ("http://localhost", "Only links to"),
    ("http://localhost:{port}/clip.m4a", "Only links to"),
    ("http://[::1]", "IP address"),
    ("http://[::1]:{port}/clip.m4a", "IP address"),
    ("http://0.0.0.0", "IP address"),
    ("http://2130706433", "IP address"),
    ("http://0177.0.0.1", "IP address"),
    ("http://0x7f000001", "IP address"),
    ("http://0x7f.1", "IP address"),
    ("http://127.1", "IP address"),
    ("http://[::ffff:127.0.0.1]", "IP address"),
    ("http://[0:0:0:0:0:ffff:7f00:1]", "IP address"),
    # private ranges and the cloud metadata address
    ("http://10.0.0.1", "IP address"),
    ("http://192.168.1.1", "IP address"),
    ("http://172.16.0.1", "IP address"),
    ("http://169.254.169.254/latest/meta-data", "IP address"),
    # schemes
    ("file:///etc/passwd", "http and https"),
    ("gopher://youtube.com", "http and https"),
    ("ftp://youtube.com", "http and https"),
    ("javascript:alert(1)", "http and https"),
    ("//youtube.com/watch?v=x", "http and https"),
    # look-alike hosts and credentials
    ("https://youtube.com.evil.com", "Only links to"),
    ("https://evil-youtube.com", "Only links to"),
    ("https://youtu.be.evil.com", "Only links to"),
    ("https://xn--yutube-wqf.com/watch?v=x", "Only links to"),
    ("https://y\u043eutube.com/watch?v=x", "Only links to"),  # a Cyrillic o
    ("https://youtube.com..", "Only links to"),
    ("https://youtube.com@evil.com", "user name or password"),
    ("https://user:pass@youtube.com/watch?v=x", "user name or password"),
    ("https://youtube.com\\@evil.com/", "backslashes"),
    ("https://youtube.com:8080/watch?v=x", "port"),
    ("https://youtube.com:0/watch?v=x", "port"),
    ("https://youtube.com:99999/watch?v=x", "port"),
    ("https://[youtube.com/watch?v=x", "not a valid URL"),
    # not a link at all
    ("", "Give a link"),
    ("   ", "Give a link"),
    ("not a url", "spaces"),
    ("https://www.youtube.com/watch?v=x\nHost: evil", "control characters"),
    ("https://www.youtube.com/watch?v=" + "x" * 2100, "longer than 2048"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused_links_are_refused_before_anything_is_resolved(url: str, reason: str) -> None:
    resolver = FakeResolver()
    with pytest.raises(IngestError) as caught:
        validate_source_url(url.format(port=8000), resolver=resolver)
    assert caught.value.code == "url_not_allowed"
    assert caught.value.param == "youtube_url"
    assert reason in caught.value.message
    assert resolver.calls == []


def test_host_refusal_lists_the_allowed_hosts() -> None:
    with pytest.raises(IngestError) as caught:
        validate_source_url("https://evil.com/watch?v=x", resolver=FakeResolver())
    assert "youtube.com, www.youtube.com, m.youtube.com, music.youtube.com, youtu.be" in (
        caught.value.message
    )


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused_links_fetch_nothing(
    url: str, reason: str, media_server: MediaServer, tmp_path: Path
) -> None:
    resolver = FakeResolver()
    with pytest.raises(IngestError) as caught:
        download_audio(
            url.format(port=media_server.port),
            start=0.0,
            duration=2.0,
            dest_dir=tmp_path,
            resolver=resolver,
        )
    assert caught.value.code == "url_not_allowed"
    assert media_server.requests == []
    assert resolver.calls == []
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("addresses", "kind"),
    [
        (["10.0.0.1"], "private"),
        (["192.168.1.1"], "private"),
        (["172.16.0.1"], "private"),
        (["127.0.0.1"], "loopback"),
        (["::1"], "loopback"),
        (["::ffff:127.0.0.1"], "loopback"),
        (["::ffff:10.1.2.3"], "private"),
        (["0.0.0.0"], "unspecified"),
        (["169.254.169.254"], "link-local"),
        (["fe80::1"], "link-local"),
        (["fd00::1"], "private"),
        (["224.0.0.1"], "multicast"),
        (["100.64.0.1"], "non-public"),
        (["240.0.0.1"], "private"),
        (["2002:a00:1::"], "private"),  # 6to4 around 10.0.0.1
        (["64:ff9b::a9fe:a9fe"], "link-local"),  # NAT64 around 169.254.169.254
        (["142.250.1.1", "10.0.0.1"], "private"),  # any bad address refuses the host
    ],
)
def test_allowed_host_resolving_to_a_non_public_address_is_refused(
    addresses: list[str], kind: str
) -> None:
    resolver = FakeResolver({"www.youtube.com": addresses})
    with pytest.raises(IngestError) as caught:
        validate_source_url(f"https://www.youtube.com/watch?v={VIDEO_ID}", resolver=resolver)
    assert caught.value.code == "url_not_allowed"
    assert f"a {kind} address" in caught.value.message
    assert resolver.calls == ["www.youtube.com"]


def test_allowed_host_that_cannot_be_resolved_is_refused() -> None:
    with pytest.raises(IngestError) as caught:
        validate_source_url(f"https://youtu.be/{VIDEO_ID}", resolver=FakeResolver())
    assert caught.value.code == "url_not_allowed"
    assert "cannot be resolved" in caught.value.message


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        (f"https://www.youtube.com/watch?v={VIDEO_ID}", f"https://www.youtube.com/watch?v={VIDEO_ID}"),
        (f"HTTPS://WWW.YouTube.COM./watch?v={VIDEO_ID}#t=5", f"https://www.youtube.com/watch?v={VIDEO_ID}"),
        (f"https://youtube.com:443/watch?v={VIDEO_ID}", f"https://youtube.com/watch?v={VIDEO_ID}"),
        (f"http://m.youtube.com:80/watch?v={VIDEO_ID}", f"http://m.youtube.com/watch?v={VIDEO_ID}"),
        (f"https://youtu.be/{VIDEO_ID}?t=3", f"https://youtu.be/{VIDEO_ID}?t=3"),
        (f"https://music.youtube.com/watch?v={VIDEO_ID}", f"https://music.youtube.com/watch?v={VIDEO_ID}"),
        (f"https://www.youtube.com/shorts/{VIDEO_ID}", f"https://www.youtube.com/shorts/{VIDEO_ID}"),
        # one video is all that is downloaded: a playlist around it is dropped
        (f"https://www.youtube.com/watch?v={VIDEO_ID}&list=PL0123&index=4&t=7",
         f"https://www.youtube.com/watch?v={VIDEO_ID}&t=7"),
    ],
)  # fmt: skip
def test_allowed_host_resolving_to_public_addresses_is_accepted(url: str, normalised: str) -> None:
    names = ("www.youtube.com", "youtube.com", "m.youtube.com", "music.youtube.com", "youtu.be")
    resolver = FakeResolver({name: PUBLIC for name in names})
    assert validate_source_url(url, resolver=resolver) == normalised
    assert resolver.calls == [urllib.parse.urlsplit(normalised).hostname]


@pytest.mark.parametrize(
    "url",
    [
        "https://www.youtube.com/",
        "https://www.youtube.com/@somechannel",
        "https://www.youtube.com/playlist?list=PL0123",
        "https://www.youtube.com/results?search_query=voice",
        "https://www.youtube.com/watch?v=short",
    ],
)
def test_allowed_host_links_that_are_not_one_video_are_refused(url: str) -> None:
    resolver = FakeResolver({"www.youtube.com": PUBLIC})
    with pytest.raises(IngestError) as caught:
        validate_source_url(url, resolver=resolver)
    assert caught.value.code == "url_not_allowed"
    assert "not a single video" in caught.value.message
    assert resolver.calls == []


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("127.0.0.1", "loopback"),
        ("fe80::1%eth0", "link-local"),
        ("198.18.0.1", "private"),
        ("not-an-address", "unrecognised"),
    ],
)
def test_address_refusal(address: str, expected: str | None) -> None:
    assert address_refusal(address) == expected


def test_loopback_exemption_covers_loopback_only() -> None:
    assert address_refusal("127.0.0.1", allow_loopback=True) is None
    assert address_refusal("::ffff:127.0.0.1", allow_loopback=True) is None
    for address in ("10.0.0.1", "169.254.169.254", "0.0.0.0", "192.168.0.1"):
        assert address_refusal(address, allow_loopback=True) is not None


def test_the_loopback_exemption_is_off_in_the_real_settings() -> None:
    assert django_settings.YOUTUBE_ALLOW_LOOPBACK_FOR_TESTS is False
    assert django_settings.YOUTUBE_ALLOWED_EXTRACTORS == ["youtube"]


def test_guard_refuses_before_connecting(media_server: MediaServer) -> None:
    resolver = FakeResolver({MEDIA_HOST: ["127.0.0.1"]}, server_port=media_server.port)
    guard = AddressGuard(resolver=resolver, allow_loopback=False)
    with pytest.raises(AddressRefusedError):
        guard.connect((MEDIA_HOST, 80), 5)
    assert guard.refused == "loopback"

    open_guard = AddressGuard(resolver=resolver, allow_loopback=True)
    with open_guard.connect((MEDIA_HOST, 80), 5) as sock:
        sock.sendall(b"GET /clip.m4a HTTP/1.0\r\n\r\n")
        assert sock.recv(12).startswith(b"HTTP/1.0 200")
    assert media_server.requests == ["/clip.m4a"]


# --- Real downloads from the loopback server ---------------------------------------------------


@pytest.mark.usefixtures("test_downloads")
def test_download_and_load_the_requested_section(
    clip: bytes, media_server: MediaServer, media_resolver: FakeResolver, tmp_path: Path
) -> None:
    path = download_audio(
        f"http://{MEDIA_HOST}/clip.m4a",
        start=1.5,
        duration=2.0,
        dest_dir=tmp_path,
        resolver=media_resolver,
    )
    assert path.parent == tmp_path.resolve()
    assert path.name.startswith(DOWNLOAD_STEM)
    assert path.read_bytes() == clip
    assert "/clip.m4a" in media_server.requests

    section = load_section(path, start=1.5, duration=2.0)
    assert section.dtype == np.float32 and section.ndim == 1
    assert abs(section.size - 2 * SAMPLE_RATE) <= FRAME_TOLERANCE

    # It is the right part of the audio: it lines up with the whole decode at 1.5 s.
    whole = decode_audio(clip, sample_rate=SAMPLE_RATE, max_seconds=60)
    offset = _best_offset(whole, section[: SAMPLE_RATE // 2], around=int(1.5 * SAMPLE_RATE))
    assert abs(offset - 1.5 * SAMPLE_RATE) <= FRAME_TOLERANCE


def _best_offset(whole: np.ndarray, piece: np.ndarray, *, around: int) -> int:
    span = range(max(0, around - 4 * FRAME_TOLERANCE), around + 4 * FRAME_TOLERANCE)
    errors = [np.mean((whole[i : i + piece.size] - piece) ** 2) for i in span]
    return span[int(np.argmin(errors))]


@pytest.mark.usefixtures("test_downloads")
def test_download_without_content_length(
    clip: bytes, media_server: MediaServer, media_resolver: FakeResolver, tmp_path: Path
) -> None:
    path = download_audio(
        f"http://{MEDIA_HOST}/streamed.m4a",
        start=0.0,
        duration=1.0,
        dest_dir=tmp_path,
        resolver=media_resolver,
    )
    assert path.read_bytes() == clip


@pytest.mark.parametrize(
    ("container_format", "codec", "suffix"),
    [("mp4", "aac", "m4a"), ("webm", "libopus", "webm"), ("ogg", "libopus", "opus")],
)
def test_load_section_seeks_to_the_requested_part(
    container_format: str, codec: str, suffix: str, tmp_path: Path
) -> None:
    path = tmp_path / f"clip.{suffix}"
    data = _tone(path, CLIP_SECONDS, container_format=container_format, codec=codec)
    whole = decode_audio(data, sample_rate=SAMPLE_RATE, max_seconds=60)
    for start in (0.0, 1.5, 3.25):
        section = load_section(path, start=start, duration=2.0)
        assert section.dtype == np.float32 and section.ndim == 1
        assert abs(section.size - 2 * SAMPLE_RATE) <= FRAME_TOLERANCE
        offset = _best_offset(whole, section[: SAMPLE_RATE // 2], around=int(start * SAMPLE_RATE))
        assert abs(offset - start * SAMPLE_RATE) <= FRAME_TOLERANCE, (start, offset)

    tail = load_section(path, start=CLIP_SECONDS - 1.0, duration=5.0)
    assert abs(tail.size - SAMPLE_RATE) <= 2 * FRAME_TOLERANCE  # cut short by the end

    with pytest.raises(IngestError) as caught:
        load_section(path, start=CLIP_SECONDS + 10, duration=2.0)
    assert caught.value.code == "start_after_end"
    assert caught.value.param == "start_time"
    assert "about 6" in caught.value.message


@pytest.mark.parametrize(
    ("start", "duration", "param"),
    [(-1.0, 2.0, "start_time"), (float("nan"), 2.0, "start_time"), (1e9, 2.0, "start_time"),
     (0.0, 0.0, "duration"), (0.0, -1.0, "duration"), (0.0, 1e9, "duration")],
)  # fmt: skip
def test_load_section_refuses_impossible_sections(
    clip: bytes, tmp_path: Path, start: float, duration: float, param: str
) -> None:
    path = tmp_path / "clip.m4a"
    path.write_bytes(clip)
    with pytest.raises(IngestError) as caught:
        load_section(path, start=start, duration=duration)
    assert (caught.value.code, caught.value.param) == ("invalid_section", param)


def test_load_section_refuses_what_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_bytes(b"<!doctype html><html></html>")
    with pytest.raises(IngestError) as caught:
        load_section(path, start=0.0, duration=1.0)
    assert caught.value.code == "not_audio"


@pytest.mark.usefixtures("test_downloads")
@pytest.mark.parametrize("route", ["/clip.m4a", "/streamed.m4a"])
def test_download_over_the_size_cap(
    route: str, settings, media_resolver: FakeResolver, tmp_path: Path
) -> None:
    settings.YOUTUBE_MAX_DOWNLOAD_BYTES = 10_000  # the clip is several times larger
    with pytest.raises(IngestError) as caught:
        download_audio(
            f"http://{MEDIA_HOST}{route}",
            start=0.0,
            duration=1.0,
            dest_dir=tmp_path,
            resolver=media_resolver,
        )
    assert caught.value.code == "download_too_large"
    assert _files(tmp_path) == []


@pytest.mark.usefixtures("test_downloads")
def test_compressed_body_is_inflated_under_the_cap(
    settings, media_resolver: FakeResolver, tmp_path: Path
) -> None:
    settings.YOUTUBE_MAX_DOWNLOAD_BYTES = 100_000  # the body inflates to 5 MB
    with pytest.raises(IngestError) as caught:
        download_audio(
            f"http://{MEDIA_HOST}/bomb.m4a",
            start=0.0,
            duration=1.0,
            dest_dir=tmp_path,
            resolver=media_resolver,
        )
    assert caught.value.code == "download_too_large"
    assert _files(tmp_path) == []


@pytest.mark.usefixtures("test_downloads")
@pytest.mark.parametrize(
    ("route", "target", "kind"),
    [
        ("/to-private", "10.0.0.1", "private"),
        ("/to-metadata", "169.254.169.254", "link-local"),
        ("/to-internal-name", "internal.test", "private"),
    ],
)
def test_redirect_to_a_non_public_address_is_refused(
    route: str,
    target: str,
    kind: str,
    media_server: MediaServer,
    media_resolver: FakeResolver,
    tmp_path: Path,
) -> None:
    with pytest.raises(IngestError) as caught:
        download_audio(
            f"http://{MEDIA_HOST}{route}",
            start=0.0,
            duration=1.0,
            dest_dir=tmp_path,
            resolver=media_resolver,
        )
    assert caught.value.code == "url_not_allowed"
    assert f"a {kind} address" in caught.value.message
    # The first hop was served; the redirect's target was looked up and never contacted.
    assert media_server.requests and set(media_server.requests) == {route}
    assert target in media_resolver.calls
    assert _files(tmp_path) == []


@pytest.mark.usefixtures("test_downloads")
def test_redirect_to_loopback_is_refused_when_loopback_is_not_allowed(
    settings, media_server: MediaServer, tmp_path: Path
) -> None:
    # The first hop's name answers with a public address at the check and then, as a
    # rebinding DNS server would, with loopback: the connection's own check refuses it.
    settings.YOUTUBE_ALLOW_LOOPBACK_FOR_TESTS = False
    resolver = FakeResolver(
        {MEDIA_HOST: [["93.184.216.34"], ["127.0.0.1"]]}, server_port=media_server.port
    )
    with pytest.raises(IngestError) as caught:
        download_audio(
            f"http://{MEDIA_HOST}/clip.m4a",
            start=0.0,
            duration=1.0,
            dest_dir=tmp_path,
            resolver=resolver,
        )
    assert caught.value.code == "url_not_allowed"
    assert "a loopback address" in caught.value.message
    assert resolver.calls.count(MEDIA_HOST) >= 2
    assert media_server.requests == []
    assert _files(tmp_path) == []


@pytest.mark.usefixtures("test_downloads")
def test_missing_media_is_a_clean_download_failure(
    media_resolver: FakeResolver, tmp_path: Path
) -> None:
    with pytest.raises(IngestError) as caught:
        download_audio(
            f"http://{MEDIA_HOST}/missing.m4a",
            start=0.0,
            duration=1.0,
            dest_dir=tmp_path,
            resolver=media_resolver,
        )
    assert caught.value.code == "download_failed"
    assert "404" in caught.value.message
    assert str(tmp_path) not in caught.value.message
    assert "Traceback" not in caught.value.message


def test_only_the_allowed_extractors_run(
    settings, media_server: MediaServer, media_resolver: FakeResolver, tmp_path: Path
) -> None:
    # media.test is an allowed host here, but the generic extractor is not allowed: the link
    # is refused by the extractors' own URL patterns, before any lookup or request.
    settings.YOUTUBE_ALLOWED_HOSTS = [MEDIA_HOST]
    settings.YOUTUBE_ALLOW_LOOPBACK_FOR_TESTS = True
    with pytest.raises(IngestError) as caught:
        download_audio(
            f"http://{MEDIA_HOST}/clip.m4a",
            start=0.0,
            duration=1.0,
            dest_dir=tmp_path,
            resolver=media_resolver,
        )
    assert caught.value.code == "url_not_allowed"
    assert "not a single video" in caught.value.message
    assert media_server.requests == []
    assert media_resolver.calls == []


@pytest.mark.usefixtures("test_downloads")
def test_media_found_on_a_page_is_downloaded(
    clip: bytes, media_server: MediaServer, media_resolver: FakeResolver, tmp_path: Path
) -> None:
    path = download_audio(
        f"http://{MEDIA_HOST}/page.html",
        start=0.0,
        duration=1.0,
        dest_dir=tmp_path,
        resolver=media_resolver,
    )
    assert path.read_bytes() == clip
    assert media_server.requests[0] == "/page.html"
    assert "/clip.m4a" in media_server.requests


@pytest.mark.usefixtures("test_downloads")
def test_media_on_a_private_address_is_refused_at_download(
    media_server: MediaServer, media_resolver: FakeResolver, tmp_path: Path
) -> None:
    # The page is public; the media it points to is not. The downloader's own connection
    # (not only the extractor's) goes through the address check.
    with pytest.raises(IngestError) as caught:
        download_audio(
            f"http://{MEDIA_HOST}/page-private.html",
            start=0.0,
            duration=1.0,
            dest_dir=tmp_path,
            resolver=media_resolver,
        )
    assert caught.value.code == "url_not_allowed"
    assert "a private address" in caught.value.message
    assert set(media_server.requests) == {"/page-private.html"}
    assert "internal.test" in media_resolver.calls
    assert _files(tmp_path) == []


@pytest.mark.usefixtures("test_downloads")
@pytest.mark.parametrize(
    ("route", "start", "code"),
    [("/long.html", 0.0, "video_too_long"), ("/short.html", 10.0, "start_after_end")],
)
def test_known_duration_is_checked_before_downloading(
    route: str,
    start: float,
    code: str,
    media_server: MediaServer,
    media_resolver: FakeResolver,
    tmp_path: Path,
) -> None:
    with pytest.raises(IngestError) as caught:
        download_audio(
            f"http://{MEDIA_HOST}{route}",
            start=start,
            duration=1.0,
            dest_dir=tmp_path,
            resolver=media_resolver,
        )
    assert caught.value.code == code
    assert "/clip.m4a" not in media_server.requests
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("info", "code"),
    [
        ({"is_live": True}, "live_stream"),
        ({"live_status": "is_upcoming"}, "live_stream"),
        ({"live_status": "post_live", "duration": 30}, "live_stream"),
        ({"duration": 40000}, "video_too_long"),
        ({"duration": 5}, "start_after_end"),
        ({"duration": 60, "live_status": "was_live"}, None),
        ({}, None),
    ],
)
def test_match_filter(info: dict, code: str | None) -> None:
    state = _DownloadState(max_bytes=1)
    message = _match_filter(state, start=10.0)(info, incomplete=False)
    if code is None:
        assert message is None and state.rejection is None
    else:
        assert state.rejection is not None and state.rejection.code == code
        assert message == state.rejection.message


def test_locked_options(settings, tmp_path: Path) -> None:
    settings.YOUTUBE_ALLOWED_EXTRACTORS = ["youtube", "a.b"]
    options = _locked_options(tmp_path, _DownloadState(max_bytes=123), start=0.0)
    assert options["allowed_extractors"] == ["youtube", r"a\.b"]  # names, not patterns
    assert options["noplaylist"] is True and options["max_downloads"] == 1
    assert options["max_filesize"] == 123
    assert options["postprocessors"] == [] and options["fixup"] == "never"
    assert options["proxy"] == "" and options["enable_file_urls"] is False
    assert options["cookiefile"] is None and options["cookiesfrombrowser"] is None
    assert "download_ranges" not in options and "exec" not in options
    assert options["outtmpl"]["default"].startswith(str(tmp_path))


def test_guarded_handler_is_the_only_way_out() -> None:
    # The address check holds only while every request yt-dlp makes goes through our handler;
    # this notices a yt-dlp release that adds another path (e.g. its requests or curl_cffi
    # handlers, which would open connections of their own).
    guard = AddressGuard(resolver=FakeResolver())
    with _GuardedYoutubeDL({"quiet": True}, guard=guard, max_body_bytes=1) as ydl:
        handlers = list(ydl._request_director.handlers.values())
    assert [type(handler) for handler in handlers] == [GuardedUrllibRH]


# --- Forged sample rates -----------------------------------------------------------------------

# load_section in a fresh process whose address space is capped: a forged rate that got past the
# check would ask for gigabytes (8 kB of FLAC claiming 1 Hz reached 4.6 GB) and fail there,
# instead of taking this process's memory.
_LOAD_IN_CHILD = """
import json, resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))
from ingest.download import load_section
from ingest.errors import IngestError

try:
    samples = load_section(Path(sys.argv[1]), start=0.0, duration=30.0)
    report = {"outcome": "decoded", "samples": int(samples.size)}
except IngestError as exc:
    report = {"outcome": "refused", "code": exc.code, "param": exc.param, "message": exc.message}
except MemoryError:
    report = {"outcome": "out of memory"}
print(json.dumps(report))
"""


def _load_in_child(path: Path) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", _LOAD_IN_CHILD, str(path)],
        capture_output=True,
        cwd=django_settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "csmsite.settings.test"},
        timeout=120,
        check=False,
    )
    assert completed.stdout, completed.stderr.decode(errors="replace")[-2000:]
    return json.loads(completed.stdout)


def _wav_claiming(rate: int) -> bytes:
    """Two seconds' worth of 16-bit mono samples at 24 kHz, under a header that claims `rate`."""
    samples = 48_000
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + samples * 2)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2 % 2**32, 2, 16)
        + b"data"
        + struct.pack("<I", samples * 2)
    )
    return header + b"\x01\x00" * samples


@pytest.mark.parametrize(
    ("container", "rate"),
    [("flac", 1), ("flac", 100), ("flac", 3999), ("flac", 192_001), ("flac", 2**20 - 1),
     ("wav", 0), ("wav", 1), ("wav", 100), ("wav", 2**31)],
)  # fmt: skip
def test_load_section_refuses_a_forged_sample_rate(
    container: str, rate: int, tmp_path: Path
) -> None:
    path = tmp_path / f"download.{container}"
    path.write_bytes(flac_forged_rate(rate) if container == "flac" else _wav_claiming(rate))

    report = _load_in_child(path)

    assert report["outcome"] == "refused", report
    assert (report["code"], report["param"]) == ("not_audio", "youtube_url")


@pytest.mark.parametrize("rate", [8000, 48_000, 192_000])
def test_load_section_still_takes_the_rates_recordings_use(rate: int, tmp_path: Path) -> None:
    path = tmp_path / "download.flac"
    signal = (0.3 * np.sin(np.arange(rate) * 2 * np.pi * 220 / rate)).astype(np.float32)
    written(signal, path, rate=rate, container_format="flac", codec="flac")

    section = load_section(path, start=0.0, duration=5.0)

    # One second, give or take the encoder's padding of its last frame.
    assert 0.95 * SAMPLE_RATE <= section.size <= 1.1 * SAMPLE_RATE
