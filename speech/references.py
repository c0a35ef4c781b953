"""Stored voices as the engines see them: the reference provider the speech app hands the
engine registry, backed by voices' rows and file storage.

Engines call it from their own threads (loading, preparing voices, the model's scheduler),
which Django's request cycle never cleans up after: every database call here closes what it
leaves behind, and a database that cannot be reached is reported as retryable.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from django.core.files.storage import default_storage
from django.db import DatabaseError, close_old_connections, transaction

from speech.audio.encoder import encode_wav
from speech.audio.formats import SAMPLE_RATE
from speech.engines.references import ReferencesUnavailable, StoredCodes, StoredReference
from speech.engines.registry import engines_reference_created
from voices.models import Voice
from voices.selectors import voice_codes_get
from voices.services import voice_codes_store, voice_store


class VoiceReferences:
    """The `ReferenceProvider` of this server: voices in the database, their audio in storage."""

    def reference_audio(self, audio: str) -> bytes:
        with default_storage.open(audio, "rb") as handle:
            return handle.read()

    def codes_get(self, *, voice_id: str, tag: str) -> StoredCodes | None:
        with _database():
            found = voice_codes_get(voice_id=voice_id, tag=tag)
        return None if found is None else StoredCodes(data=found[0], codebooks=found[1])

    def codes_store(self, *, voice_id: str, tag: str, codes: StoredCodes) -> None:
        with _database():
            voice_codes_store(
                voice_id=voice_id, tag=tag, codes=codes.data, codebooks=codes.codebooks
            )

    def builtin_get(self, name: str) -> StoredReference | None:
        with _database():
            voice = builtin_voice(name)
        return None if voice is None else voice_reference(voice)

    def builtin_store(
        self, *, name: str, samples: np.ndarray, text: str, speaker: int
    ) -> StoredReference:
        voice = Voice(
            owner=None,
            name=name,
            kind=Voice.Kind.BUILTIN,
            source=Voice.Source.GENERATED,
            reference_text=text,
            speaker_id=speaker,
            duration_seconds=samples.size / SAMPLE_RATE,
            is_public=True,
        )
        # voice_store writes the file, then the row, and removes the file if the row fails; the
        # old reference's row goes in the same transaction (its file once that commits).
        with _database(), transaction.atomic():
            Voice.objects.filter(owner__isnull=True, name=name).delete()
            voice_store(voice=voice, reference_wav=encode_wav(samples, SAMPLE_RATE))
        return voice_reference(voice)


def builtin_voice(name: str) -> Voice | None:
    """The stored built-in voice `name` with its reference, if it has been made."""
    return (
        Voice.objects.filter(owner__isnull=True, kind=Voice.Kind.BUILTIN, name=name)
        .exclude(reference_audio="")
        .first()
    )


def voice_reference(voice: Voice) -> StoredReference:
    return StoredReference(
        audio=voice.reference_audio.name,
        text=voice.reference_text,
        speaker=voice.speaker_id,
        voice_id=str(voice.pk),
    )


def voice_saved(sender: type[Voice], instance: Voice, created: bool, **kwargs: object) -> None:
    """A new voice's reference goes to the engines once the voice is committed (CSM makes its
    codes then), so its first request does not pay for it."""
    if created and instance.reference_audio:
        reference = voice_reference(instance)
        transaction.on_commit(lambda: engines_reference_created(reference))


@contextmanager
def _database() -> Iterator[None]:
    try:
        yield
    except DatabaseError as exc:
        raise ReferencesUnavailable("the database is unavailable; retry shortly.") from exc
    finally:
        close_old_connections()
