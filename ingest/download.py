"""Fetching a caller's YouTube clip safely, and decoding the part of it they asked for.

Three layers keep a caller's link from reaching anything but public video hosts:

1. `validate_source_url` runs before any job exists: http(s) only, no credentials, no port,
   no IP literal in any spelling, the host (IDNA-encoded, lower-cased, without a trailing
   dot) exactly on YOUTUBE_ALLOWED_HOSTS, and every address the host resolves to public.
2. Every connection yt-dlp opens goes through `AddressGuard.connect`: yt-dlp is given one
   request handler of ours (urllib based, no proxies, no ftp/file/data URLs) whose HTTP
   connections resolve their host, refuse it unless every address is public, and connect to
   exactly the addresses that were checked. Redirects are followed by urllib inside that
   handler, so each hop opens its own guarded connection: a redirect to a private or
   metadata address fails before a packet is sent, and a host whose DNS answer changes
   between the check and the download (rebinding) is checked again where it is used.
   YouTube's media hosts (*.googlevideo.com) need not be on the allow-list, only public.
3. yt-dlp runs with locked options: one video, the allowed extractors only, no cookies,
   config, plugins, post-processors, external downloaders or ffmpeg, a socket timeout and a
   byte cap enforced while bytes arrive (yt-dlp's own cap trusts Content-Length).

`load_section` then decodes only [start, start + duration) with PyAV, behind the same
container sniffing and codec allow-list as `speech.audio.decode`.
"""

import contextlib
import http.client
import io
import ipaddress
import logging
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import yt_dlp
from django.conf import settings
from yt_dlp.extractor import gen_extractor_classes
from yt_dlp.networking._urllib import HTTPHandler, RedirectHandler, UrllibRH
from yt_dlp.networking.exceptions import HTTPError as YtDlpHTTPError
from yt_dlp.networking.exceptions import TransportError
from yt_dlp.utils import (
    DownloadCancelled,
    DownloadError,
    ExtractorError,
    MaxDownloadsReached,
    UnsupportedError,
    YoutubeDLError,
)

from ingest.errors import IngestError
from speech.audio.decode import (
    ALLOWED_CODECS,
    AudioDecodeError,
    check_sample_rate,
    sniff_container,
)
from speech.audio.formats import SAMPLE_RATE

logger = logging.getLogger(__name__)

URL_PARAM = "youtube_url"
MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PLAYLIST_PARAMS = frozenset({"list", "index", "start_radio"})
# Whitespace, controls and backslashes: characters that parsers disagree about.
_UNSAFE_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
# A last label that is all digits, or 0x-hex, makes a WHATWG parser read the host as IPv4.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
# NAT64 prefixes: the well-known one embeds an IPv4 address; the local-use one is private.
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
# yt-dlp's downloads land as this name (plus the stream's extension) inside dest_dir.
DOWNLOAD_STEM = "youtube-source"

Resolver = Callable[..., Sequence[tuple[Any, ...]]]


def _refuse(message: str) -> IngestError:
    return IngestError(message, code="url_not_allowed", param=URL_PARAM)


# --- Addresses ---------------------------------------------------------------------------------


def address_refusal(address: str, *, allow_loopback: bool = False) -> str | None:
    """Why `address` may not be contacted ("private", "loopback", ...), or None when public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "unrecognised"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL_USE:
            return "private"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # An IPv4-mapped address is the IPv4 address; 6to4 and NAT64 must pass both checks.
            reason = address_refusal(str(embedded), allow_loopback=allow_loopback)
            if reason is not None or ip.ipv4_mapped is not None:
                return reason
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    return _non_public_kind(ip)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _non_public_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    checks = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "site-local"),
        # is_global also excludes shared address space (100.64/10) and documentation ranges.
        (not ip.is_global, "non-public"),
    )
    return next((kind for failed, kind in checks if failed), None)


class AddressRefusedError(OSError):
    """A connection was about to go to an address that is not public. An OSError, so that
    urllib and yt-dlp report it as the failed connection it is."""


class AddressGuard:
    """Resolves hosts and opens connections only to public addresses.

    The connection goes to the very addresses that were checked, so a DNS answer that changes
    after the check cannot redirect it. `refused` keeps the last refusal for error messages.
    """

    def __init__(self, *, resolver: Resolver = socket.getaddrinfo, allow_loopback: bool = False):
        self._resolver = resolver
        self._allow_loopback = allow_loopback
        self.refused: str | None = None

    def resolve(self, host: str, port: int) -> list[tuple[Any, ...]]:
        """The address records for host:port; raises AddressRefusedError unless all are public."""
        try:
            records = list(self._resolver(host, port, 0, socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            raise OSError(f"cannot resolve {host!r}") from exc
        if not records:
            raise OSError(f"{host!r} has no addresses")
        for record in records:
            reason = address_refusal(str(record[4][0]), allow_loopback=self._allow_loopback)
            if reason is not None:
                self.refused = reason
                raise AddressRefusedError(f"{host!r} resolves to a {reason} address")
        return records

    def connect(
        self, address: tuple[str, int], timeout: object = None, source_address: object = None
    ) -> socket.socket:
        """Stands in for socket.create_connection in http.client's connections."""
        host, port = address
        last_error: OSError | None = None
        for family, kind, proto, _, sockaddr in self.resolve(host, port):
            sock = socket.socket(family, kind, proto)
            try:
                if isinstance(timeout, int | float):
                    sock.settimeout(timeout)
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                last_error = exc
                continue
            return sock
        raise last_error or OSError(f"cannot connect to {host!r}")


def _guard_from_settings(resolver: Resolver) -> AddressGuard:
    # The switch exists only in the test settings (csmsite/settings/test.py).
    allow_loopback = bool(getattr(settings, "YOUTUBE_ALLOW_LOOPBACK_FOR_TESTS", False))
    return AddressGuard(resolver=resolver, allow_loopback=allow_loopback)


# --- The caller's link -------------------------------------------------------------------------


def validate_source_url(url: str, *, resolver: Resolver = socket.getaddrinfo) -> str:
    """The caller's link, normalised, if it may be downloaded; else IngestError(url_not_allowed).

    Nothing is fetched: the only network use is resolving an allowed host's name.
    """
    parts = _split_url(url)
    host = _allowed_host(parts)
    port = _default_port(parts)
    normalised = urllib.parse.urlunsplit(
        (parts.scheme, host, parts.path or "/", _without_playlist(parts.query), "")
    )
    if not _has_allowed_extractor(normalised):
        raise _refuse(
            "The link is not a single video that can be downloaded "
            "(use a watch, shorts or youtu.be link)."
        )
    guard = _guard_from_settings(resolver)
    try:
        guard.resolve(host, port)
    except AddressRefusedError as exc:
        raise _refuse(
            f"The link's host resolves to a {guard.refused} address; only public addresses "
            "can be reached."
        ) from exc
    except OSError as exc:
        raise _refuse(f"The link's host {host!r} cannot be resolved.") from exc
    return normalised


def _split_url(url: object) -> urllib.parse.SplitResult:
    if not isinstance(url, str) or not url.strip():
        raise _refuse("Give a link to a YouTube video (an http or https URL).")
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"The link is longer than {MAX_URL_LENGTH} characters.")
    if _UNSAFE_URL_CHARS.search(url):
        raise _refuse("The link contains spaces, control characters or backslashes.")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise _refuse("The link is not a valid URL.") from exc
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        raise _refuse("Only http and https links are accepted.")
    if "@" in parts.netloc:
        raise _refuse("Links with a user name or password are not accepted.")
    if not parts.hostname:
        raise _refuse("The link has no host.")
    return parts._replace(scheme=parts.scheme.lower())


def _allowed_host(parts: urllib.parse.SplitResult) -> str:
    """The host as it will be contacted (IDNA, lower case, no trailing dot), if it is allowed."""
    allowed = [_canonical_host(name) for name in settings.YOUTUBE_ALLOWED_HOSTS]
    allowed_text = ", ".join(name for name in allowed if name)
    raw = parts.hostname or ""
    if _is_ip_literal(raw):
        raise _refuse(f"Links to IP addresses are not accepted; use a link to {allowed_text}.")
    host = _canonical_host(raw)
    if host is None or _is_ip_literal(host) or host not in allowed:
        raise _refuse(f"Only links to {allowed_text} are accepted.")
    return host


def _canonical_host(name: str) -> str | None:
    """IDNA-encoded, lower case, one trailing dot removed; None when it cannot be encoded."""
    name = name.strip().lower()
    name = name.removesuffix(".")
    if not name or name.endswith("."):
        return None
    try:
        return name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def _is_ip_literal(host: str) -> bool:
    """True for an IP address in any spelling a resolver or browser would accept."""
    host = host.strip("[]").removesuffix(".").lower()
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        pass
    try:
        socket.inet_aton(host)  # decimal, octal, hex and shortened IPv4 forms
        return True
    except (OSError, UnicodeError, ValueError):
        pass
    last_label = host.rsplit(".", 1)[-1]
    return bool(_NUMERIC_LABEL.match(last_label))


def _without_playlist(query: str) -> str:
    """The query without a playlist's parameters: one video is all that is ever downloaded,
    and yt-dlp's video extractor declines watch links that name a playlist."""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    kept = [(key, value) for key, value in pairs if key not in _PLAYLIST_PARAMS]
    return query if len(kept) == len(pairs) else urllib.parse.urlencode(kept)


def _has_allowed_extractor(url: str) -> bool:
    """Whether one of the allowed yt-dlp extractors takes this link (judged by its pattern;
    nothing is fetched), so that a channel or playlist link is refused before any job."""
    allowed = {name.lower() for name in settings.YOUTUBE_ALLOWED_EXTRACTORS}
    return any(
        extractor.IE_NAME.lower() in allowed and extractor.suitable(url)
        for extractor in gen_extractor_classes()
    )


def _default_port(parts: urllib.parse.SplitResult) -> int:
    default = _DEFAULT_PORTS[parts.scheme]
    try:
        port = parts.port
    except ValueError as exc:
        raise _refuse("The link's port is not valid.") from exc
    if port is not None and port != default:
        raise _refuse("Links with a port number are not accepted.")
    return default


# --- yt-dlp's networking, guarded --------------------------------------------------------------


class _BodyTooLargeError(urllib.error.URLError):
    pass


class _GuardedHTTPHandler(HTTPHandler):
    """yt-dlp's HTTP handler with every connection opened through the AddressGuard, and
    compressed bodies decoded under a size cap (the stock handler inflates them unbounded)."""

    def __init__(self, *, guard: AddressGuard, max_body_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard = guard
        self._max_body_bytes = max_body_bytes

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection_class(http.client.HTTPConnection), req)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            self._connection_class(http.client.HTTPSConnection), req, context=self._context
        )

    def _connection_class(self, base: type[http.client.HTTPConnection]) -> Callable[..., Any]:
        def build(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
            connection = base(*args, **kwargs)
            # http.client opens its socket through this hook; HTTPS wraps that socket in TLS
            # afterwards, still verifying the certificate against the host name.
            connection._create_connection = self._guard.connect  # type: ignore[attr-defined]
            return connection

        return build

    def http_response(self, req: urllib.request.Request, resp: Any) -> Any:
        encodings = [
            token.strip().lower()
            for token in resp.headers.get("Content-Encoding", "").split(",")
            if token.strip() and token.strip().lower() != "identity"
        ]
        if not encodings:
            return resp
        body = _read_at_most(resp, self._max_body_bytes)
        for encoding in reversed(encodings):
            body = _inflate(body, encoding, self._max_body_bytes)
        decoded = urllib.request.addinfourl(io.BytesIO(body), resp.headers, resp.url, resp.code)
        decoded.msg = resp.msg
        return decoded

    https_response = http_response


def _read_at_most(resp: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := resp.read(min(1 << 16, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _BodyTooLargeError(f"response body over {limit} bytes")
    return b"".join(chunks)


def _inflate(data: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        attempts = (zlib.MAX_WBITS | 16,)
    elif encoding == "deflate":
        attempts = (-zlib.MAX_WBITS, zlib.MAX_WBITS)  # raw deflate, or zlib-wrapped
    else:
        raise urllib.error.URLError(f"unsupported content encoding {encoding!r}")
    for wbits in attempts:
        try:
            inflated = zlib.decompressobj(wbits).decompress(data, limit + 1)
        except zlib.error:
            continue
        if len(inflated) > limit:
            raise _BodyTooLargeError(f"decoded response body over {limit} bytes")
        return inflated
    raise urllib.error.URLError(f"cannot decode {encoding!r} response body")


class GuardedUrllibRH(UrllibRH):
    """The only request handler our YoutubeDL has: http(s) through guarded connections, no
    proxies (a proxy would resolve the target where the guard cannot see it), no ftp, file
    or data URLs, gzip/deflate only."""

    _SUPPORTED_URL_SCHEMES = ("http", "https")
    _SUPPORTED_PROXY_SCHEMES = ()
    _SUPPORTED_FEATURES = ()

    def __init__(self, *, guard: AddressGuard, max_body_bytes: int, **kwargs: Any) -> None:
        kwargs["enable_file_urls"] = False
        super().__init__(**kwargs)
        self._guard = guard
        self._max_body_bytes = max_body_bytes

    def _get_proxies(self, request: Any) -> dict[str, str]:
        return {}

    def _prepare_headers(self, request: Any, headers: Any) -> None:
        if "Accept-Encoding" not in headers:
            headers["Accept-Encoding"] = "gzip, deflate"

    def _create_instance(
        self, proxies: Any, cookiejar: Any, legacy_ssl_support: bool | None = None
    ) -> urllib.request.OpenerDirector:
        opener = urllib.request.OpenerDirector()
        handlers = (
            _GuardedHTTPHandler(
                guard=self._guard,
                max_body_bytes=self._max_body_bytes,
                debuglevel=0,
                context=self._make_sslcontext(legacy_ssl_support=legacy_ssl_support),
            ),
            urllib.request.HTTPCookieProcessor(cookiejar),
            urllib.request.UnknownHandler(),
            urllib.request.HTTPDefaultErrorHandler(),
            urllib.request.HTTPErrorProcessor(),
            RedirectHandler(),
        )
        for handler in handlers:
            opener.add_handler(handler)
        opener.addheaders = []
        return opener


class _GuardedYoutubeDL(yt_dlp.YoutubeDL):
    """A YoutubeDL whose every request goes through GuardedUrllibRH and nothing else."""

    def __init__(self, params: dict[str, Any], *, guard: AddressGuard, max_body_bytes: int):
        self._guard = guard
        self._max_body_bytes = max_body_bytes
        super().__init__(params)

    def build_request_director(self, handlers: Any, preferences: Any = None) -> Any:
        def guarded(**kwargs: Any) -> GuardedUrllibRH:
            return GuardedUrllibRH(guard=self._guard, max_body_bytes=self._max_body_bytes, **kwargs)

        return super().build_request_director([guarded], preferences)


# --- Download ----------------------------------------------------------------------------------


class _DownloadTooLargeError(DownloadCancelled):
    """Raised from the progress hook: yt-dlp lets it through and stops the download."""


@dataclass
class _DownloadState:
    max_bytes: int
    rejection: IngestError | None = None
    finished_file: str | None = None


class _YtDlpLogger:
    """yt-dlp's messages go to our log, never to the caller or the console."""

    def debug(self, message: str) -> None:
        logger.debug("yt-dlp: %s", message)

    def info(self, message: str) -> None:
        logger.debug("yt-dlp: %s", message)

    def warning(self, message: str) -> None:
        logger.info("yt-dlp: %s", message)

    def error(self, message: str) -> None:
        logger.info("yt-dlp: %s", message)


def download_audio(
    url: str,
    *,
    start: float,
    duration: float,
    dest_dir: Path,
    resolver: Resolver = socket.getaddrinfo,
) -> Path:
    """Download the best audio stream of the video at `url` into `dest_dir`; its path.

    The whole stream is fetched (cutting while downloading needs ffmpeg) under
    YOUTUBE_MAX_DOWNLOAD_BYTES; `start` and `duration` refuse early a section the video does
    not have. Raises IngestError: url_not_allowed, download_too_large, video_too_long,
    live_stream, start_after_end or download_failed.
    """
    checked_url = validate_source_url(url, resolver=resolver)
    guard = _guard_from_settings(resolver)
    state = _DownloadState(max_bytes=int(settings.YOUTUBE_MAX_DOWNLOAD_BYTES))
    options = _locked_options(dest_dir, state, start=start)
    info: dict[str, Any] | None = None
    try:
        with _GuardedYoutubeDL(options, guard=guard, max_body_bytes=state.max_bytes) as ydl:
            info = ydl.extract_info(checked_url, download=True)
    except MaxDownloadsReached:
        pass  # raised after the one download we allow; that download has finished
    except _DownloadTooLargeError as exc:
        _remove_partial_files(dest_dir)
        raise _too_large(state.max_bytes) from exc
    except (YoutubeDLError, OSError) as exc:
        _remove_partial_files(dest_dir)
        raise _download_failure(exc, guard, state.max_bytes) from exc
    if state.rejection is not None:
        raise state.rejection
    return _downloaded_file(dest_dir, info, state)


def _locked_options(dest_dir: Path, state: _DownloadState, *, start: float) -> dict[str, Any]:
    """Every option that matters is set here; nothing comes from config files or the
    environment (the Python API reads no config files; proxies from the environment are
    switched off with proxy="")."""
    return {
        "outtmpl": {"default": str(dest_dir / f"{DOWNLOAD_STEM}.%(ext)s")},
        "restrictfilenames": True,
        "overwrites": True,
        # Only formats fetched over plain HTTP(S), so yt-dlp's own (guarded) downloader
        # fetches them: never ffmpeg or another external program, never HLS playlists.
        "format": "bestaudio[protocol^=http]/best[protocol^=http]",
        "noplaylist": True,
        "playlist_items": "1",
        "max_downloads": 1,
        "allowed_extractors": [re.escape(name) for name in settings.YOUTUBE_ALLOWED_EXTRACTORS],
        "match_filter": _match_filter(state, start=start),
        "max_filesize": state.max_bytes,
        "progress_hooks": [_progress_hook(state)],
        "socket_timeout": float(settings.YOUTUBE_SOCKET_TIMEOUT_SECONDS),
        "retries": 2,
        "fragment_retries": 2,
        "extractor_retries": 1,
        "file_access_retries": 0,
        "proxy": "",
        "enable_file_urls": False,
        "cookiefile": None,
        "cookiesfrombrowser": None,
        "usenetrc": False,
        "cachedir": False,
        "postprocessors": [],
        "fixup": "never",
        "writesubtitles": False,
        "writeinfojson": False,
        "writethumbnail": False,
        "mark_watched": False,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "no_color": True,
        "logger": _YtDlpLogger(),
    }


def _match_filter(state: _DownloadState, *, start: float) -> Callable[..., str | None]:
    # The whole video, of which only a section is used: its length bounds the download.
    max_seconds = float(settings.YOUTUBE_MAX_VIDEO_SECONDS)

    def check(info: dict[str, Any], *, incomplete: bool = False) -> str | None:
        rejection = _rejection(info, start=start, max_seconds=max_seconds)
        if rejection is None:
            return None
        state.rejection = rejection
        return rejection.message

    return check


def _rejection(info: dict[str, Any], *, start: float, max_seconds: float) -> IngestError | None:
    if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming", "post_live"):
        return IngestError(
            "Live streams cannot be used; link a finished video.",
            code="live_stream",
            param=URL_PARAM,
        )
    duration = info.get("duration")
    if not isinstance(duration, int | float) or duration <= 0:
        return None
    if duration > max_seconds:
        return IngestError(
            f"The video is {duration:g} seconds long; the limit is {max_seconds:g} seconds.",
            code="video_too_long",
            param=URL_PARAM,
        )
    if start >= duration:
        return _start_after_end(start, duration)
    return None


def _progress_hook(state: _DownloadState) -> Callable[[dict[str, Any]], None]:
    def hook(status: dict[str, Any]) -> None:
        total = status.get("total_bytes")
        downloaded = status.get("downloaded_bytes") or 0
        if downloaded > state.max_bytes or (isinstance(total, int) and total > state.max_bytes):
            raise _DownloadTooLargeError("over the size cap")
        if status.get("status") == "finished":
            state.finished_file = status.get("filename")

    return hook


def _downloaded_file(dest_dir: Path, info: dict[str, Any] | None, state: _DownloadState) -> Path:
    """The file yt-dlp wrote, which must exist inside dest_dir. yt-dlp writes nothing and
    raises nothing when Content-Length is over max_filesize: that case ends here."""
    candidates = [state.finished_file]
    for download in (info or {}).get("requested_downloads") or []:
        candidates.append(download.get("filepath"))
    root = dest_dir.resolve()
    for candidate in candidates:
        if not candidate:
            continue
        path = Path(candidate).resolve()
        if path.parent == root and path.is_file():
            return path
    _remove_partial_files(dest_dir)
    raise _too_large(state.max_bytes)


def _remove_partial_files(dest_dir: Path) -> None:
    for path in dest_dir.glob(f"{DOWNLOAD_STEM}.*"):
        path.unlink(missing_ok=True)


def _too_large(max_bytes: int) -> IngestError:
    return IngestError(
        f"The video's audio is larger than the download limit of {max_bytes / 1e6:g} MB.",
        code="download_too_large",
        param=URL_PARAM,
    )


def _download_failure(exc: BaseException, guard: AddressGuard, max_bytes: int) -> IngestError:
    """A message the caller can act on, without yt-dlp's traceback or any local path."""
    if guard.refused is not None:
        return _refuse(
            f"A request for the video led to a {guard.refused} address (by a redirect or a "
            "changed DNS answer); only public addresses can be reached."
        )
    causes = _cause_chain(exc)
    for cause in causes:
        if isinstance(cause, _BodyTooLargeError):
            return _too_large(max_bytes)
        if isinstance(cause, UnsupportedError):
            return _failed("The link does not lead to a video that can be downloaded.")
        if isinstance(cause, YtDlpHTTPError):
            return _failed(f"The video host answered with HTTP error {cause.status}.")
        if isinstance(cause, ExtractorError) and cause.expected and cause.orig_msg:
            return _failed(f"The video cannot be downloaded: {cause.orig_msg[:300]}")
    if any(isinstance(cause, TransportError | OSError) for cause in causes):
        return _failed("The video host could not be reached, or the connection failed.")
    return _failed("The video could not be downloaded.")


def _cause_chain(exc: BaseException | None) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc is not None and exc not in chain and len(chain) < 10:
        chain.append(exc)
        if isinstance(exc, DownloadError) and exc.exc_info and exc.exc_info[1] is not None:
            exc = exc.exc_info[1]
        else:
            exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
        if not isinstance(exc, BaseException):
            exc = None
    return chain


def _failed(message: str) -> IngestError:
    return IngestError(message, code="download_failed", param=URL_PARAM)


def _start_after_end(start: float, duration: float | None) -> IngestError:
    length = f" (it is about {duration:.1f} seconds long)" if duration is not None else ""
    return IngestError(
        f"The start time {start:g} s is after the end of the audio{length}.",
        code="start_after_end",
        param="start_time",
    )


# --- Decoding the requested section ------------------------------------------------------------


def load_section(
    path: Path, *, start: float, duration: float, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Mono float32 audio at `sample_rate` for [start, start + duration) of the file at `path`.

    Seeks to `start` and decodes only until the section is complete; audio before `start` is
    dropped as it is decoded, so memory stays bounded by `duration`. A section that runs past
    the end is returned shorter. Raises IngestError: invalid_section, not_audio,
    start_after_end.
    """
    _check_section(start, duration)
    with path.open("rb") as file:
        container_format = sniff_container(file.read(16))
        file.seek(0)
        if container_format is None:
            raise _not_audio("The download is not audio in a supported format.")
        try:
            with av.open(file, mode="r", format=container_format) as container:
                stream = _audio_stream(container)
                section = _decode_section(container, stream, start, duration, sample_rate)
        except IngestError:
            raise
        except (av.FFmpegError, ValueError, EOFError) as exc:
            raise _not_audio("The downloaded audio is damaged and cannot be decoded.") from exc
    return section


def _check_section(start: float, duration: float) -> None:
    max_start = float(settings.YOUTUBE_MAX_VIDEO_SECONDS)
    max_duration = float(settings.VOICE_MAX_AUDIO_SECONDS)
    if not (np.isfinite(start) and 0 <= start <= max_start):
        raise IngestError(
            f"The start time must be between 0 and {max_start:g} seconds.",
            code="invalid_section",
            param="start_time",
        )
    if not (np.isfinite(duration) and 0 < duration <= max_duration):
        raise IngestError(
            f"The duration must be more than 0 and at most {max_duration:g} seconds.",
            code="invalid_section",
            param="duration",
        )


def _not_audio(message: str) -> IngestError:
    return IngestError(message, code="not_audio", param=URL_PARAM)


def _audio_stream(container: av.container.InputContainer) -> av.AudioStream:
    if not container.streams.audio:
        raise _not_audio("The video has no audio stream.")
    stream = container.streams.audio[0]
    if stream.codec_context.name not in ALLOWED_CODECS:
        raise _not_audio(f"The audio codec '{stream.codec_context.name}' is not supported.")
    _check_rate(stream.sample_rate)
    return stream


def _check_rate(rate: int | None) -> None:
    """decode_audio's sample-rate floor and ceiling: a header claiming 1 Hz would make the
    resampler turn each decoded sample into thousands before the section's budget sees them."""
    try:
        check_sample_rate(rate)
    except AudioDecodeError as exc:
        raise _not_audio(str(exc)) from exc


def _seek(container: av.container.InputContainer, stream: av.AudioStream, start: float) -> None:
    """Move to the last keyframe at or before `start`. Where the container cannot seek, decoding
    simply starts at the beginning and the audio before `start` is dropped."""
    if start <= 0:
        return
    try:
        if stream.time_base:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        else:
            container.seek(int(start * av.time_base), backward=True)
    except av.FFmpegError:
        with contextlib.suppress(av.FFmpegError):
            container.seek(0)


@dataclass
class _SectionCursor:
    """Counts resampled samples: `skip` still to drop before the section and `need` still to
    keep. Position comes from counting samples, not from timestamps, so a file whose
    timestamps lie cannot stretch the work; `budget` caps the samples decoded in all."""

    skip: int
    need: int
    budget: int
    decoded: int = 0
    parts: list[np.ndarray] = field(default_factory=list)

    def take(self, samples: np.ndarray) -> None:
        self.decoded += samples.size
        if self.decoded > self.budget:
            raise _not_audio("The audio decodes to more samples than its length allows.")
        if self.skip >= samples.size:
            self.skip -= samples.size
            return
        samples = samples[self.skip : self.skip + self.need]
        self.skip = 0
        self.need -= samples.size
        self.parts.append(samples)


def _decode_section(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    start: float,
    duration: float,
    sample_rate: int,
) -> np.ndarray:
    _seek(container, stream, start)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    cursor: _SectionCursor | None = None
    for frame in container.decode(stream):
        if cursor is None:
            # Where decoding really begins: the keyframe the seek found, at or before start.
            begin = min(max(float(frame.time or 0.0), 0.0), start)
            skip = round((start - begin) * sample_rate)
            need = round(duration * sample_rate)
            # Slack for the last frame, which may overshoot (a FLAC frame can be ~1.5 s).
            cursor = _SectionCursor(skip, need, budget=skip + need + 4 * sample_rate)
        # Each frame says its own rate, and may contradict the stream's header.
        _check_rate(frame.sample_rate)
        frame.pts = None  # the resampler keeps its own clock; odd timestamps cannot confuse it
        for converted in resampler.resample(frame):
            cursor.take(converted.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        if cursor.need <= 0:
            break
    else:
        if cursor is not None:
            for converted in resampler.resample(None):
                cursor.take(converted.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    if cursor is None or not cursor.parts:
        raise _start_after_end(start, _known_length(container, cursor, start, sample_rate))
    return np.nan_to_num(np.concatenate(cursor.parts))


def _known_length(
    container: av.container.InputContainer,
    cursor: _SectionCursor | None,
    start: float,
    sample_rate: int,
) -> float | None:
    """How long the audio is, for the message: where decoding ran out, else the header's word."""
    if cursor is not None:
        return start - cursor.skip / sample_rate
    if container.duration:
        return container.duration / av.time_base
    return None
