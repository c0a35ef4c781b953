"""Voices made directly in the database, as a finished cloning job would leave them."""

from typing import Any

import numpy as np
from django.core.files.base import ContentFile

from tests.support.audio import RATE, encoded
from voices.models import Voice


def cloned_voice(owner: Any, name: str, samples: np.ndarray, text: str, speaker: int = 0) -> Voice:
    """A cloned voice whose reference audio is stored through the model's FileField."""
    voice = Voice(
        owner=owner,
        name=name,
        kind=Voice.Kind.CLONED,
        source=Voice.Source.UPLOAD,
        reference_text=text,
        speaker_id=speaker,
        duration_seconds=samples.size / RATE,
    )
    voice.reference_audio.save("upload.wav", ContentFile(encoded(samples)), save=False)
    voice.save()
    return voice
