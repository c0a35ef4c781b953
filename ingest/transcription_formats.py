"""A transcription in each of OpenAI's response formats: `json` and `verbose_json` as the
objects OpenAI answers with, `text`, `srt` and `vtt` as the text OpenAI sends."""

import math
from typing import Any

from ingest.transcription import TRANSCRIBE, Segment, SpeechText, TranscriptionRequest


def transcription_body(result: SpeechText, request: TranscriptionRequest) -> dict[str, Any] | str:
    """The answer's body: a JSON object (json, verbose_json) or text (text, srt, vtt)."""
    fmt = request.response_format
    if fmt == "text":
        return f"{result.text}\n"
    if fmt == "srt":
        return _srt(result.segments)
    if fmt == "vtt":
        return _vtt(result.segments)
    if fmt == "verbose_json":
        return _verbose(result, request)
    body: dict[str, Any] = {"text": result.text}
    if result.task == TRANSCRIBE:
        body["usage"] = _usage(result)
    return body


def _verbose(result: SpeechText, request: TranscriptionRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": result.task,
        "language": result.language,
        "duration": result.duration,
        "text": result.text,
    }
    if request.wants_segments:
        body["segments"] = [_segment(segment) for segment in result.segments]
    if result.words is not None:
        body["words"] = [
            {"word": word.word, "start": word.start, "end": word.end} for word in result.words
        ]
    if result.task == TRANSCRIBE:
        body["usage"] = _usage(result)
    return body


def _segment(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "seek": segment.seek,
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "tokens": segment.tokens,
        "temperature": segment.temperature,
        "avg_logprob": segment.avg_logprob,
        "compression_ratio": segment.compression_ratio,
        "no_speech_prob": segment.no_speech_prob,
    }


def _usage(result: SpeechText) -> dict[str, Any]:
    # whisper-1 is billed by the second of audio, counted whole.
    return {"type": "duration", "seconds": math.ceil(result.duration)}


def _cues(segments: list[Segment]) -> list[tuple[float, float, str]]:
    """The segments that say something, as subtitle cues."""
    return [(s.start, s.end, s.text.strip()) for s in segments if s.text.strip()]


def _srt(segments: list[Segment]) -> str:
    return "".join(
        f"{number}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{text}\n\n"
        for number, (start, end, text) in enumerate(_cues(segments), start=1)
    )


def _vtt(segments: list[Segment]) -> str:
    cues = "".join(
        f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{text}\n\n"
        for start, end, text in _cues(segments)
    )
    return f"WEBVTT\n\n{cues}"


def _timestamp(seconds: float, decimal_marker: str) -> str:
    """HH:MM:SS,mmm (SubRip) or HH:MM:SS.mmm (WebVTT)."""
    milliseconds = round(seconds * 1000)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    whole, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{decimal_marker}{milliseconds:03d}"
