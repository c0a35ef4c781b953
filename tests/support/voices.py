"""Voices made directly in the database, as a finished cloning job would leave them."""

from typing import Any

import numpy as np

from tests.support.audio import RATE, TRANSCRIPT, encoded, recording
from voices.models import Voice
from voices.services import voice_store


def cloned_voice(
    owner: Any,
    name: str,
    samples: np.ndarray | None = None,
    text: str = TRANSCRIPT,
    speaker: int = 0,
    *,
    public: bool = False,
    description: str = "",
) -> Voice:
    """A cloned voice stored as the cloning pipeline stores it (file, then row); by default its
    reference is the shared spoken recording and its transcript."""
    samples = recording() if samples is None else samples
    voice = Voice(
        owner=owner,
        name=name,
        kind=Voice.Kind.CLONED,
        source=Voice.Source.UPLOAD,
        description=description,
        reference_text=text,
        speaker_id=speaker,
        duration_seconds=samples.size / RATE,
        is_public=public,
    )
    return voice_store(voice=voice, reference_wav=encoded(samples))
