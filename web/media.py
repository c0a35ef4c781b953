"""Stored audio for the web UI: served in byte ranges, and drawn as a waveform."""

import logging
import re

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db.models.fields.files import FieldFile
from django.http import HttpRequest, HttpResponse

from speech.audio.decode import AudioDecodeError, decode_audio
from voices.models import Voice

logger = logging.getLogger(__name__)

WAVE_BARS = 96
WAVE_HEIGHT = 32
# Peaks need no detail: decoding at a low rate is cheaper.
_WAVE_RATE = 8000
_WAVE_CACHE_SECONDS = 7 * 24 * 3600
_BYTE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class _Unsatisfiable(Exception):
    pass


def requested_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range asked for (first and last byte), or None for the whole file: also
    the answer to several ranges or a malformed header, which a server may ignore (RFC 9110)."""
    match = _BYTE_RANGE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:
        # A suffix: the last N bytes.
        if int(last) == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        raise _Unsatisfiable
    return start, end


def ranged_file_response(request: HttpRequest, field: FieldFile, content_type: str) -> HttpResponse:
    size = field.size
    try:
        span = requested_range(request.headers.get("Range", ""), size)
    except _Unsatisfiable:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    with field.open("rb") as handle:
        if span is None:
            body = handle.read()
        else:
            handle.seek(span[0])
            body = handle.read(span[1] - span[0] + 1)
    response = HttpResponse(body, content_type=content_type, status=200 if span is None else 206)
    if span is not None:
        response["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["Content-Length"] = str(len(body))
    return response


def voice_waveform(voice: Voice) -> str:
    """The reference recording's peaks as an SVG path, cached: decoding costs a little, and
    a voice's recording never changes."""
    if not voice.reference_audio:
        return ""
    key = f"ui:waveform:{voice.id}:{voice.reference_audio.name}"
    path = cache.get(key)
    if path is None:
        path = _waveform_path(voice)
        cache.set(key, path, timeout=_WAVE_CACHE_SECONDS)
    return path


def _waveform_path(voice: Voice) -> str:
    try:
        with voice.reference_audio.open("rb") as handle:
            samples = decode_audio(
                handle.read(),
                sample_rate=_WAVE_RATE,
                max_seconds=settings.VOICE_REFERENCE_SECONDS * 2,
            )
    except (AudioDecodeError, OSError):
        # The page still works without the picture; the log says which voice lacks one.
        logger.warning("no waveform for voice %s", voice.id, exc_info=True)
        return ""
    return waveform_svg_path(samples, bars=WAVE_BARS, height=WAVE_HEIGHT)


def waveform_svg_path(samples: np.ndarray, *, bars: int, height: int) -> str:
    """One bar per slice of `samples`, centred, as tall as the slice's peak (relative to the
    loudest), in a viewBox of `bars` by `height`."""
    if samples.size == 0:
        return ""
    peaks = np.array([part.max(initial=0.0) for part in np.array_split(np.abs(samples), bars)])
    peaks = peaks / max(float(peaks.max()), 1e-9)
    middle = height / 2
    parts = []
    for index, peak in enumerate(peaks):
        half = max(float(peak) * (middle - 1), 0.5)
        parts.append(f"M{index + 0.15:.2f} {middle - half:.2f}h0.7v{2 * half:.2f}h-0.7z")
    return "".join(parts)
