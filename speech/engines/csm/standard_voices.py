"""The standard voices (alloy, echo, ...) as stored reference segments for CSM.

CSM has no named voices: without context each generation invents a speaker. So each standard
voice is generated once, deterministically (a fixed seed, speaker id and sentence per voice),
stored as a built-in `Voice` (audio file + transcript + speaker id), and from then on every
request for it is conditioned on that same reference: the voice stays the same across
requests, restarts and users. Requests never rewrite it; `manage.py csm_voices --rebuild` does.
"""

import logging
import threading
import zlib
from collections.abc import Callable, Iterable

import numpy as np
from django.db import close_old_connections, transaction

from speech.audio.encoder import encode_wav
from speech.audio.formats import SAMPLE_RATE
from voices.models import Voice
from voices.services import voice_store
from voices.standard import STANDARD_VOICES

logger = logging.getLogger(__name__)

# One sentence per voice: varied enough in sound that the references differ beyond the seed.
_SENTENCES: dict[str, str] = {
    "alloy": "Hello! It's good to hear from you, let's get started.",
    "ash": "Honestly, I think we should take the long way home tonight.",
    "ballad": "Once upon a time, in a quiet town by the sea, there lived a baker.",
    "coral": "Great news, everyone: the results are in, and they look wonderful!",
    "echo": "Okay, here's the plan. First we check the map, then we move.",
    "fable": "The old clock in the hall struck midnight, and the house fell silent.",
    "onyx": "Good evening. Tonight's top story comes to us from the capital.",
    "nova": "Hi there! I'd love to help you with that, just tell me what you need.",
    "sage": "Take a deep breath, and let's think about this one step at a time.",
    "shimmer": "Oh, that's lovely! I didn't expect the garden to bloom so early.",
    "verse": "The river runs, the willows bend, and morning light comes in again.",
    "marin": "Thanks for calling. Your appointment is confirmed for Tuesday morning.",
    "cedar": "Well now, that's a fine question, and it deserves a careful answer.",
}

# (speaker id, sentence, seed) -> mono float32 audio at 24 kHz; supplied by the engine.
ReferenceGenerator = Callable[[int, str, int], np.ndarray]

_prepare_locks: dict[str, threading.Lock] = {name: threading.Lock() for name in STANDARD_VOICES}


def standard_voice_recipe(name: str) -> tuple[int, str, int]:
    """(speaker id, sentence, seed) of a standard voice: fixed, so generation is repeatable."""
    speaker = STANDARD_VOICES.index(name)
    return speaker, _SENTENCES[name], zlib.crc32(name.encode())


def builtin_voice(name: str) -> Voice | None:
    return (
        Voice.objects.filter(owner__isnull=True, kind=Voice.Kind.BUILTIN, name=name)
        .exclude(reference_audio="")
        .first()
    )


def standard_voices_prepare(
    generate: ReferenceGenerator, *, names: Iterable[str] = STANDARD_VOICES, rebuild: bool = False
) -> list[Voice]:
    """Make sure the standard voices in `names` exist (all regenerated when `rebuild`)."""
    prepared = []
    try:
        for name in names:
            # Per voice: a request waiting for one voice never waits for the whole set.
            with _prepare_locks[name]:
                voice = None if rebuild else builtin_voice(name)
                prepared.append(voice or _create(name, generate))
    finally:
        # Called from worker threads, which Django's request cycle never cleans up after.
        close_old_connections()
    return prepared


def _create(name: str, generate: ReferenceGenerator) -> Voice:
    speaker, sentence, seed = standard_voice_recipe(name)
    samples = generate(speaker, sentence, seed)
    if samples.size == 0:
        raise RuntimeError(f"the reference for voice '{name}' came out empty")
    voice = Voice(
        owner=None,
        name=name,
        kind=Voice.Kind.BUILTIN,
        source=Voice.Source.GENERATED,
        reference_text=sentence,
        speaker_id=speaker,
        duration_seconds=samples.size / SAMPLE_RATE,
        is_public=True,
    )
    # voice_store writes the file, then the row, and removes the file if the row fails; the
    # old reference's row goes in the same transaction (its file once that commits).
    with transaction.atomic():
        Voice.objects.filter(owner__isnull=True, name=name).delete()
        voice_store(voice=voice, reference_wav=encode_wav(samples, SAMPLE_RATE))
    logger.info(
        "standard voice %s prepared (%.1f s of reference audio)", name, voice.duration_seconds
    )
    return voice
