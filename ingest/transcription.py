"""Speech to text, OpenAI's way: an uploaded recording transcribed (or translated into English)
by the process's Whisper model, the one that transcribes cloned voices (ingest/transcribe.py).

The upload is checked and decoded under the STT_* limits with the same safe decoder as every
other upload, before the model is touched, so a request that cannot be served costs little.
Decoding with Whisper runs one at a time (the model is shared); at most STT_MAX_INFLIGHT
requests of a process take part at once (`transcription_slots`), the rest are refused. A
request whose caller has left stops before it decodes (`TranscriptionCancelled`).
"""

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File

from accounts.models import ApiKey
from accounts.services import usage_record
from ingest.audio import check_upload
from ingest.errors import IngestError, TranscriptionErrorCode
from ingest.transcribe import WHISPER_SAMPLE_RATE, whisper_in_use
from speech.audio.decode import AudioDecodeError, AudioTooLong, decode_audio
from speech.errors import UnknownModel

if TYPE_CHECKING:
    from whisper.model import Whisper

TRANSCRIBE = "transcribe"
TRANSLATE = "translate"
RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("word", "segment")
# The name OpenAI's clients send; the server's own WHISPER_MODEL name is accepted too.
OPENAI_MODEL = "whisper-1"
# OpenAI's newer transcription models, which clients default to (Home Assistant's
# openai_conversation sends gpt-4o-mini-transcribe): served by the same Whisper, with every
# response format. Not the diarizing one, whose answer has another shape.
OPENAI_MODEL_ALIASES = (
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-03-20",
    "gpt-4o-mini-transcribe-2025-12-15",
)
# The request fields problems are reported under, as OpenAI names them.
FILE_PARAM = "file"
LANGUAGE_PARAM = "language"
MODEL_PARAM = "model"
# OpenAI: at temperature 0 the model raises the temperature, by log probability, until its
# thresholds are met; whisper's fallback does exactly that, through these temperatures.
_FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class TranscriptionRequest:
    task: str  # TRANSCRIBE or TRANSLATE (into English)
    model: str
    response_format: str = "json"
    # An ISO-639-1 code; None: detect it (English-only models hear only English).
    language: str | None = None
    # Whisper's initial prompt: spelling, names, style of the text to come.
    prompt: str | None = None
    temperature: float = 0.0
    granularities: frozenset[str] = field(default_factory=frozenset)

    @property
    def wants_words(self) -> bool:
        """Word timestamps cost a second pass: only verbose transcriptions that ask get them."""
        return (
            self.task == TRANSCRIBE
            and self.response_format == "verbose_json"
            and "word" in self.granularities
        )

    @property
    def wants_segments(self) -> bool:
        return self.task == TRANSLATE or not self.granularities or "segment" in self.granularities


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    """One of whisper's segments, with the fields OpenAI's verbose answer has."""

    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


@dataclass(frozen=True)
class SpeechText:
    task: str
    # The language's name as OpenAI gives it ("english"); for a translation, its output's.
    language: str
    # Seconds of audio heard.
    duration: float
    text: str
    segments: list[Segment]
    # None unless the request asked for word timestamps.
    words: list[Word] | None


class TranscriptionCancelled(Exception):
    """The caller left (its `cancelled` event is set): the work stops before the costly part.
    Nobody is waiting for the answer, so this is no error to report."""


class _Slots:
    """A count of the requests taking part at once, bounded by STT_MAX_INFLIGHT; never waits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken = 0

    @property
    def taken(self) -> int:
        return self._taken

    def try_acquire(self) -> bool:
        with self._lock:
            if self._taken >= settings.STT_MAX_INFLIGHT:
                return False
            self._taken += 1
            return True

    def release(self) -> None:
        with self._lock:
            if self._taken <= 0:
                raise RuntimeError("released more transcription slots than were taken")
            self._taken -= 1


transcription_slots = _Slots()


def transcription_models() -> list[str]:
    """The model names a request may send: OpenAI's and, when it is a name rather than a
    checkpoint file, the server's WHISPER_MODEL."""
    # Deferred: whisper loads only in a process that transcribes.
    import whisper

    configured = settings.WHISPER_MODEL
    if configured in whisper.available_models():
        return [OPENAI_MODEL, configured]
    return [OPENAI_MODEL]


def transcription_create(
    *,
    user: AbstractBaseUser,
    api_key: ApiKey | None,
    upload: File,
    request: TranscriptionRequest,
    cancelled: threading.Event | None = None,
) -> SpeechText:
    """Transcribe (or translate) the upload and record its seconds in the caller's usage.

    IngestError for what the caller can fix (about the field it names), UnknownModel for a
    model this server does not have, TranscriptionUnavailable while Whisper loads or when it
    cannot load. TranscriptionCancelled when `cancelled` is set by the time the upload is
    decoded or the model is free: a decode nobody waits for would hold the model for minutes.
    """
    _model_check(request.model)
    language = _language_code(request.language)
    audio = _decoded(upload)
    _stop_if_cancelled(cancelled)
    duration = audio.size / WHISPER_SAMPLE_RATE
    with whisper_in_use(wait=settings.STT_LOAD_WAIT_SECONDS) as model:
        # Waiting for the model (a decode at a time) is when a caller most likely leaves.
        _stop_if_cancelled(cancelled)
        _capability_check(model, request.task, language)
        result = model.transcribe(
            audio,
            task=request.task,
            language=language,
            initial_prompt=request.prompt or None,
            temperature=_temperatures(request.temperature),
            word_timestamps=request.wants_words,
            fp16=model.device.type == "cuda",
            verbose=None,
        )
    # Requests count as speech requests do; the seconds are those heard.
    usage_record(user=user, api_key=api_key, input_characters=0, audio_seconds=duration)
    return _speech_text(result, request, duration)


def _stop_if_cancelled(cancelled: threading.Event | None) -> None:
    if cancelled is not None and cancelled.is_set():
        raise TranscriptionCancelled


def _model_check(name: str) -> None:
    models = transcription_models()
    if name not in models and name not in OPENAI_MODEL_ALIASES:
        raise UnknownModel(
            f"The model '{name}' does not exist or you do not have access to it. This server "
            f"transcribes with {' or '.join(models)}.",
            field=MODEL_PARAM,
        )


def _language_code(value: str | None) -> str | None:
    # Deferred: whisper loads only in a process that transcribes.
    from whisper.tokenizer import LANGUAGES

    if not value or not value.strip():
        return None
    code = value.strip().lower()
    if code not in LANGUAGES:
        raise IngestError(
            f"Invalid language '{value}'. Give the language of the audio in ISO-639-1 format, "
            "such as en, de or fr.",
            code=TranscriptionErrorCode.INVALID_LANGUAGE_FORMAT,
            param=LANGUAGE_PARAM,
        )
    return code


def _decoded(upload: File) -> np.ndarray:
    """The upload as mono float32 at Whisper's rate, within STT_MAX_BYTES and
    STT_MAX_AUDIO_SECONDS (IngestError about `file` otherwise)."""
    max_bytes = settings.STT_MAX_BYTES
    data = upload.read(max_bytes + 1)
    check_upload(data[:16], max(len(data), upload.size or 0), param=FILE_PARAM, max_bytes=max_bytes)
    max_seconds = settings.STT_MAX_AUDIO_SECONDS
    try:
        return decode_audio(data, sample_rate=WHISPER_SAMPLE_RATE, max_seconds=max_seconds)
    except AudioTooLong as exc:
        raise IngestError(
            f"The audio is longer than {max_seconds:g} seconds: send a shorter recording, or "
            "split it.",
            code=TranscriptionErrorCode.RECORDING_TOO_LONG,
            param=FILE_PARAM,
        ) from exc
    except AudioDecodeError as exc:
        raise IngestError(
            str(exc), code=TranscriptionErrorCode.INVALID_AUDIO, param=FILE_PARAM
        ) from exc


def _capability_check(model: "Whisper", task: str, language: str | None) -> None:
    """English-only checkpoints (*.en) hear English and cannot translate: say so rather than
    answer with what the model made of another language."""
    if model.is_multilingual:
        return
    if task == TRANSLATE:
        raise IngestError(
            "This server's Whisper model understands English only and cannot translate. Its "
            "operator can set WHISPER_MODEL to a multilingual model (such as base, small or "
            "turbo).",
            code=TranscriptionErrorCode.MODEL_NOT_SUPPORTED,
            param=MODEL_PARAM,
        )
    if language not in (None, "en"):
        raise IngestError(
            f"This server's Whisper model understands English only, not '{language}'. Send "
            "language=en or none, or ask its operator to set WHISPER_MODEL to a multilingual "
            "model (such as base, small or turbo).",
            code=TranscriptionErrorCode.UNSUPPORTED_LANGUAGE,
            param=LANGUAGE_PARAM,
        )


def _temperatures(temperature: float) -> tuple[float, ...]:
    return _FALLBACK_TEMPERATURES if temperature == 0 else (temperature,)


def _speech_text(
    result: dict[str, Any], request: TranscriptionRequest, duration: float
) -> SpeechText:
    # Deferred: whisper loads only in a process that transcribes.
    from whisper.tokenizer import LANGUAGES

    def within(seconds: float, earliest: float = 0.0) -> float:
        # Whisper can place the last end past the end of the audio.
        return min(max(float(seconds), earliest), duration)

    segments: list[Segment] = []
    words: list[Word] = []
    for item in result["segments"]:
        # Whisper keeps the segments it cleared (instantaneous, or no text): nothing to tell.
        if not item["text"].strip():
            continue
        start = within(item["start"])
        segments.append(
            Segment(
                id=len(segments),
                seek=int(item["seek"]),
                start=start,
                end=within(item["end"], start),
                text=item["text"],
                tokens=[int(token) for token in item["tokens"]],
                temperature=float(item["temperature"]),
                avg_logprob=float(item["avg_logprob"]),
                compression_ratio=float(item["compression_ratio"]),
                no_speech_prob=float(item["no_speech_prob"]),
            )
        )
        for word in item.get("words", []):
            word_start = within(word["start"])
            words.append(
                Word(
                    word=word["word"].strip(),
                    start=word_start,
                    end=within(word["end"], word_start),
                )
            )
    if request.task == TRANSLATE:
        language = LANGUAGES["en"]
    else:
        language = LANGUAGES.get(result["language"], result["language"])
    return SpeechText(
        task=request.task,
        language=language,
        duration=duration,
        text=result["text"].strip(),
        segments=segments,
        words=words if request.wants_words else None,
    )
