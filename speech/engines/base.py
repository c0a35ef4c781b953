"""The engine interface: text and a voice in, float32 mono PCM chunks out.

An engine declares what it can do (`Capabilities`) so the API can refuse clearly what it
cannot, and reports its state (loading, ready, unavailable with a reason) for /readyz and
for the 503s that tell a caller what to do.
"""

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np

from speech.engines.references import ReferenceProvider, StoredReference

logger = logging.getLogger(__name__)


class EngineState(StrEnum):
    LOADING = "loading"
    READY = "ready"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Capabilities:
    sample_rate: int
    cloning: bool
    context: bool
    streaming: bool
    batching: bool
    # Speeds the engine renders natively (no time stretch needed); None if it has no rate control.
    native_speed_range: tuple[float, float] | None
    # Longest text the engine takes in one go; the API splits longer input at sentences.
    max_chunk_chars: int
    # Output that must carry the AudioSeal watermark (generative speech models).
    watermarked: bool = False


@dataclass(frozen=True)
class ContextTurn:
    """An earlier turn of a conversation: who spoke, what they said, and how it sounded."""

    speaker: int
    text: str
    # Mono float32 audio at the engine's sample rate.
    samples: np.ndarray


@dataclass(frozen=True)
class VoiceSpec:
    """What an engine needs to know about a voice, whatever stores it."""

    name: str
    # A standard voice name (alloy, echo, ...) when the voice is one of them.
    standard: str | None = None
    # A cloned voice's reference segment: its audio file (storage name) and transcript.
    reference_audio: str | None = None
    reference_text: str = ""
    speaker_id: int = 0
    # The stored voice's id, where the engine may keep what it derives from the reference.
    voice_id: str | None = None
    # Earlier turns of a conversation, oldest first, for engines that take context.
    context: tuple[ContextTurn, ...] = ()

    @property
    def is_cloned(self) -> bool:
        return self.reference_audio is not None

    @property
    def stored_reference(self) -> StoredReference | None:
        """A cloned voice's reference as the engine's provider knows it."""
        if self.reference_audio is None:
            return None
        return StoredReference(
            audio=self.reference_audio,
            text=self.reference_text,
            speaker=self.speaker_id,
            voice_id=self.voice_id,
        )


@dataclass(frozen=True)
class SynthesisParams:
    speed: float = 1.0
    instructions: str | None = None
    temperature: float | None = None
    topk: int | None = None
    seed: int | None = None
    voice_consistency: float | None = None
    max_audio_ms: int | None = None
    # Who asked (a user id): a batching engine shares its places fairly between owners.
    owner: str = ""


class EngineError(Exception):
    """Generation failed. `retryable` says whether the same request could succeed later."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class EngineNotReady(EngineError):
    """The engine is loading, or cannot load; `message` says what to do about it."""

    def __init__(self, message: str, *, state: EngineState) -> None:
        super().__init__(message, retryable=state is EngineState.LOADING)
        self.state = state


class Engine(ABC):
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    # Slow loaders (model weights) load on a background thread; fast ones load inline.
    loads_in_background: ClassVar[bool] = False

    def __init__(self, references: ReferenceProvider | None = None) -> None:
        # Where stored voices' references come from, for engines that speak them.
        self.references = references
        self._state = EngineState.LOADING
        self._reason = "not loaded yet"
        self._load_lock = threading.Lock()

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def reason(self) -> str:
        return self._reason

    def load(self) -> None:
        """Load once; a failure leaves the engine unavailable with the reason, never raises."""
        with self._load_lock:
            if self._state is not EngineState.LOADING:
                return
            try:
                self._load()
            except Exception as exc:
                self._state = EngineState.UNAVAILABLE
                self._reason = self.describe_load_failure(exc)
                # One line says what is missing, why and what to do; the traceback is for
                # debugging (an offline start is not an error worth pages of it).
                logger.warning("engine %s unavailable: %s", self.name, self._reason)
                logger.debug("engine %s failed to load", self.name, exc_info=True)
            else:
                self._state = EngineState.READY
                self._reason = ""
                logger.info("engine %s is ready", self.name)

    def ensure_ready(self) -> None:
        if self._state is EngineState.READY:
            return
        if self._state is EngineState.LOADING:
            raise EngineNotReady(
                f"The {self.name} engine is still loading; retry shortly.", state=self._state
            )
        raise EngineNotReady(
            f"The {self.name} engine is unavailable: {self._reason}", state=self._state
        )

    def describe_load_failure(self, exc: Exception) -> str:
        """The reason shown to callers and in /readyz; engines add what to do about it."""
        return str(exc) or type(exc).__name__

    def reference_created(self, reference: StoredReference) -> None:
        """A stored voice was just created with this reference: engines that derive something
        from it may do it now rather than on the voice's first request."""
        return None

    def close(self) -> None:
        """Stop whatever threads the engine runs (its instance is being forgotten)."""
        return None

    def runtime_details(self) -> dict[str, Any]:
        """What /readyz and /metrics show about how the engine runs (device, precision, which
        optimisations are in force); nothing for engines with nothing to say."""
        return {}

    def count_input_tokens(self, text: str) -> int:
        """Input units for usage reports; engines without a text tokenizer count characters."""
        return len(text)

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def synthesize(
        self, chunks: Sequence[str], voice: VoiceSpec, params: SynthesisParams
    ) -> Iterator[np.ndarray]:
        """Speak the text chunks in order; yield float32 mono audio at `capabilities.sample_rate`
        as it is produced. `params.speed` is always within `native_speed_range`.

        The caller may stop iterating at any time (client gone); the engine must then free
        whatever it holds when the generator is closed.
        """
