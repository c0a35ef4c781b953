"""The process's openai-whisper model, and transcribing a recording with it for a cloned
voice's reference transcript.

The model loads lazily, once per process, from `WHISPER_MODEL` (a model name that whisper
downloads once into its cache, or a local checkpoint file), on a thread of its own; cloning and
the speech-to-text API (ingest/transcription.py) share it. When it cannot be had, the caller
gets `TranscriptionUnavailable` with what to do about it; the message reaches API callers, so it
never names a filesystem path (the server log has the details).
"""

import logging
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings

from ingest.errors import TranscriptionErrorCode
from ingest.reference import TranscriptSegment
from speech.audio.formats import SAMPLE_RATE

if TYPE_CHECKING:
    from whisper.model import Whisper

logger = logging.getLogger(__name__)

# Whisper's models hear 16 kHz audio.
WHISPER_SAMPLE_RATE = 16000
# Recordings are limited upstream; this only keeps one job from holding the model for long.
MAX_SECONDS = 600.0
# What a caller told that the model is still loading should wait before asking again.
LOADING_RETRY_AFTER_SECONDS = 5
# How long a failed load is remembered: meanwhile callers get its reason at once, rather than
# each starting a load (for a model name, a download that can hang) and logging it again. Long
# enough to spare a busy server, short enough that a fixed cache or network is soon noticed.
FAILED_LOAD_MEMORY_SECONDS = 60.0

# What else a cloning caller can do when no transcript can be made here.
_CLONING_ALTERNATIVE = "You can also give the recording's transcript with the upload instead."


@dataclass(frozen=True)
class Transcript:
    text: str
    segments: list[TranscriptSegment]
    # The language spoken: the configured one, or the one whisper detected.
    language: str


class TranscriptionUnavailable(Exception):
    """No transcript can be made here now; `message` says why and what to do, without paths.

    `loading`: the model is still loading (worth a retry after `retry_after` seconds); otherwise
    it cannot be loaded, and no retry helps until an operator acts.
    """

    def __init__(self, message: str, *, loading: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.loading = loading
        self.code = (
            TranscriptionErrorCode.TRANSCRIPTION_LOADING
            if loading
            else TranscriptionErrorCode.TRANSCRIPTION_UNAVAILABLE
        )
        self.retry_after = LOADING_RETRY_AFTER_SECONDS if loading else None


class _Load:
    """One loading of a WHISPER_MODEL, on a thread of its own; whoever needs it waits on it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.done = threading.Event()
        self.model: Whisper | None = None
        self.error: TranscriptionUnavailable | None = None


@dataclass(frozen=True)
class _Failure:
    """A load of WHISPER_MODEL `name` that failed, and until when (monotonic) to say so."""

    name: str
    message: str
    until: float


# Guards `_loaded`, `_loading` and `_failed`: two callers must not load the weights twice.
_state_lock = threading.Lock()
# The loaded model and the WHISPER_MODEL it came from (a changed setting loads the new one).
_loaded: tuple[str, "Whisper"] | None = None
# The load in progress, if any.
_loading: _Load | None = None
# The last failed load, for FAILED_LOAD_MEMORY_SECONDS; then the next caller tries again.
_failed: _Failure | None = None
# One decode at a time: whisper's decoder installs its key/value-cache hooks on the shared model
# for each decode, so two decodes at once would write into each other's caches.
_decode_lock = threading.Lock()


def transcribe(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Transcript:
    """Transcribe mono float32 audio (at most the first MAX_SECONDS of it), greedily, waiting
    for the model to load if it must.

    Segments keep whisper's timestamps (seconds from the start of `samples`), clamped to the
    audio; segments without text are dropped.
    """
    audio = _to_whisper_audio(samples, sample_rate)
    duration = audio.size / WHISPER_SAMPLE_RATE
    try:
        with whisper_in_use(wait=None) as model:
            result = model.transcribe(
                audio,
                language=_language(model),
                # Greedy decoding: deterministic, and no retries at higher temperatures.
                temperature=0.0,
                # Each window stands alone, so one bad window cannot derail the next ones.
                condition_on_previous_text=False,
                fp16=model.device.type == "cuda",
                verbose=None,
            )
    except TranscriptionUnavailable as exc:
        raise TranscriptionUnavailable(f"{exc.message} {_CLONING_ALTERNATIVE}") from exc
    segments, text = _segments(result["segments"], duration)
    return Transcript(text=text, segments=segments, language=result["language"])


@contextmanager
def whisper_in_use(*, wait: float | None) -> Iterator["Whisper"]:
    """The process's model for the current WHISPER_MODEL, held for one decode (others wait).

    A model not loaded yet starts loading; this waits for it at most `wait` seconds (None: as
    long as it takes), then raises TranscriptionUnavailable (loading). A model that cannot be
    loaded raises TranscriptionUnavailable with the reason (at once, while its failure is
    remembered).
    """
    model = _model(wait)
    with _decode_lock:
        yield model


def transcriber_reset() -> None:
    """Drop the loaded model and any remembered failure (tests; the next transcription loads
    WHISPER_MODEL again). A load still in progress finishes on its own and is then forgotten."""
    global _loaded, _loading, _failed
    with _state_lock:
        _loaded = None
        _loading = None
        _failed = None


def _to_whisper_audio(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (one dimension), got shape {audio.shape}")
    if sample_rate <= 0:
        raise ValueError(f"invalid sample rate {sample_rate}")
    audio = audio[: int(MAX_SECONDS * sample_rate)]
    if sample_rate != WHISPER_SAMPLE_RATE:
        # Deferred: the API's error table names this module's error, and every request loads it.
        from scipy.signal import resample_poly

        common = math.gcd(WHISPER_SAMPLE_RATE, sample_rate)
        audio = resample_poly(audio, WHISPER_SAMPLE_RATE // common, sample_rate // common)
    # Whisper turns the array into a tensor as it is: it must be float32 and contiguous.
    return np.ascontiguousarray(audio, dtype=np.float32)


def _segments(raw: list[dict[str, Any]], duration: float) -> tuple[list[TranscriptSegment], str]:
    """Whisper's segments as TranscriptSegments, and the text they make together.

    Timestamps are clamped into the audio and kept in order without overlaps: whisper can
    place the last segment's end past the end of the audio, and a segment that starts there is
    made up.
    """
    segments: list[TranscriptSegment] = []
    kept_text: list[str] = []
    previous_end = 0.0
    for item in raw:
        text = item["text"].strip()
        start = min(max(float(item["start"]), previous_end), duration)
        end = min(max(float(item["end"]), start), duration)
        if not text or end <= start:
            continue
        segments.append(TranscriptSegment(start=start, end=end, text=text))
        # The raw text keeps the tokenizer's spacing between segments (none in some scripts).
        kept_text.append(item["text"])
        previous_end = end
    return segments, "".join(kept_text).strip()


def _model(wait: float | None) -> "Whisper":
    """The model for the current WHISPER_MODEL, loading it (once, on its own thread) if needed."""
    global _loaded, _loading
    name = settings.WHISPER_MODEL
    with _state_lock:
        if _loaded is not None and _loaded[0] == name:
            return _loaded[1]
        if _failed is not None and _failed.name == name and monotonic() < _failed.until:
            raise TranscriptionUnavailable(_failed.message)
        load = _loading
        if load is None or load.name != name:
            # Let the old model go before the new one takes its memory.
            _loaded = None
            load = _loading = _Load(name)
            threading.Thread(
                target=_run_load, args=(load,), name="whisper-load", daemon=True
            ).start()
    if not load.done.wait(wait):
        raise TranscriptionUnavailable(
            "Transcription is not ready yet: the Whisper model is still loading. Retry in a "
            "few seconds.",
            loading=True,
        )
    if load.error is not None:
        # A fresh error for each caller: one instance raised in several threads would share
        # (and garble) its traceback.
        raise TranscriptionUnavailable(load.error.message)
    assert load.model is not None
    return load.model


def _run_load(load: _Load) -> None:
    global _loaded, _loading, _failed
    try:
        load.model = _load(load.name)
    except TranscriptionUnavailable as exc:
        load.error = exc
    except BaseException:  # the waiting callers learn of it; the log has the details
        logger.exception("the Whisper model could not be loaded")
        load.error = TranscriptionUnavailable(
            "Transcription is unavailable: the Whisper model could not be loaded (the server's "
            "log says why)."
        )
    finally:
        with _state_lock:
            # A reset or a changed setting while loading: this load is no longer wanted.
            if _loading is load:
                _loading = None
                if load.model is not None:
                    _loaded = (load.name, load.model)
                    _failed = None
                elif load.error is not None:
                    until = monotonic() + FAILED_LOAD_MEMORY_SECONDS
                    _failed = _Failure(load.name, load.error.message, until)
        load.done.set()


def _load(name: str) -> "Whisper":
    # Deferred: whisper loads only in a process that transcribes.
    import torch
    import whisper

    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        model = whisper.load_model(name, device=device)
    except Exception as exc:
        reason = describe_failure(exc, name)
        # One line at the default level; the traceback (which may name paths) only at DEBUG.
        logger.warning("Whisper unavailable: %s", reason)
        logger.debug("the Whisper model could not be loaded", exc_info=True)
        raise TranscriptionUnavailable(reason) from exc
    model.eval()
    logger.info(
        "Whisper loaded: %s parameters, %s, %s",
        f"{sum(p.numel() for p in model.parameters()):,}",
        "multilingual" if model.is_multilingual else "English-only",
        device,
    )
    return model


def describe_failure(exc: BaseException, name: str) -> str:
    """Why the model could not load and what to do about it, without any path."""
    # Deferred: whisper loads only in a process that transcribes.
    import torch
    import whisper

    if any(isinstance(cause, MemoryError | torch.OutOfMemoryError) for cause in _chain(exc)):
        return (
            "Transcription is unavailable: not enough memory to load the Whisper model. Set "
            "WHISPER_MODEL to a smaller model (such as base.en)."
        )
    if name in whisper.available_models():
        return (
            f"Transcription is unavailable: the Whisper model '{name}' is not in the server's "
            "cache and could not be downloaded. Let the server download it once (it needs "
            "network access the first time), or set WHISPER_MODEL to a local checkpoint file."
        )
    if not os.path.isfile(name):
        # Never echo the value: it is most likely a path.
        return (
            "Transcription is unavailable: WHISPER_MODEL is neither a Whisper model name (such "
            "as tiny.en, base.en, small.en, turbo) nor a checkpoint file that exists and can be "
            "read. Set it to one of those."
        )
    return (
        "Transcription is unavailable: WHISPER_MODEL points to a file that is not a Whisper "
        "checkpoint (one saved with the model's dims and model_state_dict). Set it to a valid "
        "checkpoint or to a model name such as base.en."
    )


def _language(model: "Whisper") -> str | None:
    """The language cloning decodes in (WHISPER_LANGUAGE): None lets whisper detect it."""
    # Deferred: whisper loads only in a process that transcribes.
    from whisper.tokenizer import LANGUAGES, TO_LANGUAGE_CODE

    # English-only checkpoints know no other language (whisper would ignore the setting).
    if not model.is_multilingual:
        return "en"
    configured = settings.WHISPER_LANGUAGE.strip().lower()
    # An empty environment variable means the default, so detection has a name of its own.
    if configured in {"", "auto"}:
        return None
    if configured in LANGUAGES:
        return configured
    if configured in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[configured]
    raise TranscriptionUnavailable(
        f"Transcription is unavailable: WHISPER_LANGUAGE={configured!r} is not a language "
        "Whisper knows. Set it to a code such as en, de or fr, or to auto to detect the "
        "language."
    )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
