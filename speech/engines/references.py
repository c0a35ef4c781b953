"""What an engine may ask about stored voices, and nothing more.

Engines never look voices up themselves: the registry hands each one a `ReferenceProvider`,
which reads a voice's reference audio, keeps the codes an engine derives from it, and stores the
built-in voices an engine generates. Whatever stores voices (the database and file storage, in
the server) implements it outside the engine layer.
"""

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class StoredReference:
    """A stored voice's reference segment: the audio a generation is conditioned on."""

    # The provider's name for the audio (a storage key); opaque to engines.
    audio: str
    # What is said in the audio, and by which speaker id.
    text: str
    speaker: int
    # The stored voice, where codes derived from the reference are kept; None keeps none.
    voice_id: str | None


@dataclass(frozen=True)
class StoredCodes:
    """Codec codes kept with a voice: little-endian int16, `codebooks` per frame."""

    data: bytes
    codebooks: int


class ReferencesUnavailable(Exception):
    """The store behind the provider cannot be reached now; the same request may succeed later.

    The message says what is unavailable, in words fit for the caller.
    """


class ReferenceProvider(Protocol):
    def reference_audio(self, audio: str) -> bytes:
        """The encoded audio file named `audio` (raises OSError when it cannot be read)."""
        ...

    def codes_get(self, *, voice_id: str, tag: str) -> StoredCodes | None:
        """The codes kept with the voice, if they were made by `tag`."""
        ...

    def codes_store(self, *, voice_id: str, tag: str, codes: StoredCodes) -> None:
        """Keep codes with the voice (replacing any); a voice deleted meanwhile keeps nothing."""
        ...

    def builtin_get(self, name: str) -> StoredReference | None:
        """The built-in voice `name`, if it is stored."""
        ...

    def builtin_store(
        self, *, name: str, samples: np.ndarray, text: str, speaker: int
    ) -> StoredReference:
        """Store generated reference audio (mono float32 at `SAMPLE_RATE`) as the built-in voice
        `name`, replacing any stored one only once the new one is in place."""
        ...
