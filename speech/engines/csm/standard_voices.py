"""The standard voices (alloy, echo, ...) as stored reference segments for CSM.

CSM has no named voices: without context each generation invents a speaker. So each standard
voice is generated once, deterministically (a fixed seed, speaker id and sentence per voice),
stored as a built-in voice (audio + transcript + speaker id) through the engine's reference
provider, and from then on every request for it is conditioned on that same reference: the voice
stays the same across requests, restarts and users. Requests never rewrite it;
`manage.py csm_voices --rebuild` does.
"""

import logging
import threading
import zlib
from collections.abc import Callable, Iterable

import numpy as np

from speech.audio.formats import SAMPLE_RATE
from speech.engines.references import ReferenceProvider, StoredReference

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

# The names in OpenAI's order (voices.standard.STANDARD_VOICES): a voice's speaker id is its
# place here, so stored references keep the speaker ids they were generated with.
STANDARD_VOICE_NAMES: tuple[str, ...] = tuple(_SENTENCES)

# (speaker id, sentence, seed) -> mono float32 audio at SAMPLE_RATE; supplied by the engine.
ReferenceGenerator = Callable[[int, str, int], np.ndarray]

_prepare_locks: dict[str, threading.Lock] = {
    name: threading.Lock() for name in STANDARD_VOICE_NAMES
}


def standard_voice_recipe(name: str) -> tuple[int, str, int]:
    """(speaker id, sentence, seed) of a standard voice: fixed, so generation is repeatable."""
    speaker = STANDARD_VOICE_NAMES.index(name)
    return speaker, _SENTENCES[name], zlib.crc32(name.encode())


def standard_voices_prepare(
    generate: ReferenceGenerator,
    references: ReferenceProvider,
    *,
    names: Iterable[str] = STANDARD_VOICE_NAMES,
    rebuild: bool = False,
) -> list[StoredReference]:
    """Make sure the standard voices in `names` are stored (all regenerated when `rebuild`)."""
    prepared = []
    for name in names:
        # Per voice: a request waiting for one voice never waits for the whole set.
        with _prepare_locks[name]:
            stored = None if rebuild else references.builtin_get(name)
            prepared.append(stored or _create(name, generate, references))
    return prepared


def _create(
    name: str, generate: ReferenceGenerator, references: ReferenceProvider
) -> StoredReference:
    speaker, sentence, seed = standard_voice_recipe(name)
    samples = generate(speaker, sentence, seed)
    if samples.size == 0:
        raise RuntimeError(f"the reference for voice '{name}' came out empty")
    stored = references.builtin_store(name=name, samples=samples, text=sentence, speaker=speaker)
    logger.info(
        "standard voice %s prepared (%.1f s of reference audio)", name, samples.size / SAMPLE_RATE
    )
    return stored
