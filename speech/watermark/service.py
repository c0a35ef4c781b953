"""The process's watermarker: AudioSeal's generator and detector, loaded once, in the background.

Like the engines, each model is loading, ready, or unavailable with a reason that says what to
do (never a path or a token), and a failure never reaches a request as an exception.

When WATERMARK is on but the generator cannot be loaded, speech is still generated, without
the watermark: refusing all speech over a missing watermark file would take the server down
for a configuration slip. /readyz reports the state, and the failure is logged once.
"""

import logging
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings

if TYPE_CHECKING:
    from speech.watermark.models import Detector, Generator
    from speech.watermark.stream import WatermarkStream

logger = logging.getLogger(__name__)

# How long a stream waits for a generator that is still loading (it loads in seconds from a
# local file or the cache; only the very first download takes longer). Unmarked audio is the
# worse outcome, and a request for a watermarked engine is rarely the first thing a server does.
_STREAM_LOAD_WAIT_SECONDS = 30.0
# Detection answers 503 with Retry-After rather than hold a request long.
_DETECT_LOAD_WAIT_SECONDS = 5.0
DETECT_RETRY_AFTER_SECONDS = 10


class WatermarkState(StrEnum):
    OFF = "off"
    LOADING = "loading"
    READY = "ready"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class WatermarkDetection:
    detected: bool
    # Share of the audio that carries the watermark, in [0, 1].
    probability: float
    # The 16-bit message (a server's WATERMARK_MESSAGE) when the watermark is detected.
    message: int | None


class WatermarkUnavailable(Exception):
    """Detection cannot run now; `message` says why, `loading` whether retrying will help."""

    def __init__(self, message: str, *, loading: bool) -> None:
        super().__init__(message)
        self.message = message
        self.loading = loading


@dataclass(frozen=True)
class _Config:
    enabled: bool
    generator: str
    detector: str
    message: int

    @classmethod
    def from_settings(cls) -> "_Config":
        return cls(
            enabled=settings.WATERMARK,
            generator=settings.WATERMARK_MODEL,
            detector=settings.WATERMARK_DETECTOR_MODEL,
            message=settings.WATERMARK_MESSAGE,
        )


class _Slot:
    """One model's state, reason and, once ready, the model."""

    def __init__(self, variable: str) -> None:
        self.variable = variable
        self.state = WatermarkState.LOADING
        self.reason = "not loaded yet"
        self.model: Any = None
        self.error: Exception | None = None

    def load(self, build: Any) -> None:
        try:
            self.model = build()
        except Exception as exc:
            # The reason goes to the log in one line once both models are tried (_log_failures);
            # the traceback only helps when debugging.
            logger.debug(
                "the watermark model named by %s failed to load", self.variable, exc_info=True
            )
            self.error = exc
            self.reason = _describe_failure(exc, self.variable)
            self.state = WatermarkState.UNAVAILABLE
        else:
            self.reason = ""
            self.state = WatermarkState.READY
            logger.info("the watermark model named by %s is ready", self.variable)

    def as_dict(self) -> dict[str, str]:
        return {"state": str(self.state), "reason": self.reason}


class Watermarker:
    def __init__(self, config: _Config) -> None:
        self.config = config
        self.generator = _Slot("WATERMARK_MODEL")
        self.detector = _Slot("WATERMARK_DETECTOR_MODEL")
        self._started = False
        self._start_lock = threading.Lock()
        self._generator_done = threading.Event()
        self._detector_done = threading.Event()

    def start(self) -> None:
        """Start loading on a background thread, once."""
        if not self.config.enabled or self._started:
            return
        with self._start_lock:
            if self._started:
                return
            self._started = True
            threading.Thread(target=self._load, name="load-watermark", daemon=True).start()

    def _load(self) -> None:
        from speech.watermark.models import load_detector, load_generator

        config = self.config
        try:
            self.generator.load(lambda: load_generator(config.generator, config.message))
        finally:
            self._generator_done.set()
        try:
            self.detector.load(lambda: load_detector(config.detector))
        finally:
            self._detector_done.set()
        self._log_failures()

    def _log_failures(self) -> None:
        """One line for each model that could not load, or one for both when the cause is the
        same (the usual case: no weights and no Hub)."""
        generator, detector = self.generator, self.detector
        if generator.error is not None and detector.error is not None:
            both = f"{generator.variable} and {detector.variable}"
            if _describe_failure(generator.error, both) == _describe_failure(detector.error, both):
                logger.warning(
                    "AudioSeal watermark and its detector unavailable, speech goes out "
                    "unmarked: %s",
                    _describe_failure(generator.error, both),
                )
                return
        if generator.error is not None:
            logger.warning(
                "AudioSeal watermark unavailable, speech goes out unmarked: %s", generator.reason
            )
        if detector.error is not None:
            logger.warning("AudioSeal watermark detector unavailable: %s", detector.reason)

    def wait_generator(self, timeout: float) -> "Generator | None":
        self.start()
        self._generator_done.wait(timeout)
        return self.generator.model if self.generator.state is WatermarkState.READY else None

    def wait_detector(self, timeout: float) -> "Detector":
        self.start()
        self._detector_done.wait(timeout)
        slot = self.detector
        if slot.state is WatermarkState.READY:
            return slot.model
        if slot.state is WatermarkState.LOADING:
            raise WatermarkUnavailable(
                "The watermark detector is still loading; retry shortly.", loading=True
            )
        raise WatermarkUnavailable(
            f"The watermark detector is unavailable: {slot.reason}", loading=False
        )

    def status(self) -> dict[str, Any]:
        if not self.config.enabled:
            off = {"state": str(WatermarkState.OFF), "reason": "WATERMARK is off"}
            return {"enabled": False, **off, "detector": dict(off)}
        self.start()
        return {"enabled": True, **self.generator.as_dict(), "detector": self.detector.as_dict()}


_current: Watermarker | None = None
_current_lock = threading.Lock()


def _watermarker() -> Watermarker:
    """The watermarker for the current settings (settings only change under tests)."""
    global _current
    config = _Config.from_settings()
    current = _current
    if current is not None and current.config == config:
        return current
    with _current_lock:
        if _current is None or _current.config != config:
            _current = Watermarker(config)
        return _current


def watermark_preload() -> None:
    """Start loading the watermark models now (a no-op when WATERMARK is off)."""
    _watermarker().start()


def watermark_status() -> dict[str, Any]:
    """For /readyz: whether watermarking is on, the generator's state and reason (what decides
    whether output is marked), and the detector's."""
    return _watermarker().status()


def watermark_stream(sample_rate: int) -> "WatermarkStream | None":
    """A stream that marks audio at `sample_rate`; None when WATERMARK is off or the generator
    is unavailable (the audio then goes out unmarked: see the module's docstring)."""
    watermarker = _watermarker()
    if not watermarker.config.enabled:
        return None
    generator = watermarker.wait_generator(_STREAM_LOAD_WAIT_SECONDS)
    if generator is None:
        return None
    from speech.watermark.stream import WatermarkStream

    return WatermarkStream(generator, sample_rate)


def watermark_detect(samples: np.ndarray, sample_rate: int) -> WatermarkDetection:
    """Look for the AudioSeal watermark in mono float32 audio; raise WatermarkUnavailable
    when the detector is off, loading or unavailable."""
    watermarker = _watermarker()
    if not watermarker.config.enabled:
        raise WatermarkUnavailable(
            "Watermarking is turned off on this server (WATERMARK=off).", loading=False
        )
    detector = watermarker.wait_detector(_DETECT_LOAD_WAIT_SECONDS)
    from speech.watermark.models import DETECTION_THRESHOLD, MODEL_RATE, bits_message
    from speech.watermark.resample import resample_whole

    audio = resample_whole(samples, sample_rate, MODEL_RATE)
    if audio.size == 0:
        return WatermarkDetection(detected=False, probability=0.0, message=None)
    result = detector.detect(audio)
    detected = result.probability > DETECTION_THRESHOLD
    message = bits_message(result.bits) if detected and result.bits else None
    return WatermarkDetection(detected=detected, probability=result.probability, message=message)


def _describe_failure(exc: Exception, variable: str) -> str:
    """What went wrong and what to do, without the exception's text (it may hold a path)."""
    from speech.watermark.models import (
        BadMessage,
        NotStreamable,
        WeightsNotCached,
        WeightsNotFound,
    )

    if isinstance(exc, WeightsNotCached):
        return (
            f"the weights named by {variable} are not in the local cache and the Hugging Face "
            "Hub cannot be reached: start the server once where it can reach the Hub (it "
            f"downloads them), point {variable} at local checkpoint files, or set WATERMARK=off."
        )
    if isinstance(exc, NotStreamable):
        return (
            f"{variable} names a generator that needs future audio and cannot mark a stream; "
            "use a streaming one such as audioseal_wm_streaming, or set WATERMARK=off."
        )
    if isinstance(exc, BadMessage):
        return "WATERMARK_MESSAGE does not fit in the generator's message bits."
    if isinstance(exc, WeightsNotFound | OSError):
        return (
            f"the weights named by {variable} cannot be found or downloaded. Give a card name "
            "such as audioseal_wm_streaming (downloaded once, needs network access), a "
            "facebook/audioseal/<file>.pth Hub file, or a local checkpoint file; "
            "or set WATERMARK=off."
        )
    return (
        f"the weights named by {variable} cannot be loaded ({type(exc).__name__}); "
        "check that it is an AudioSeal checkpoint, or set WATERMARK=off."
    )
