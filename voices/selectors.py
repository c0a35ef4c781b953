"""Reads on voices. Another user's private voice is invisible: it resolves like no voice at all."""

import uuid
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.db.models.fields.files import FieldFile

from voices.errors import VoiceNotFound
from voices.models import Voice, VoiceCodes, VoiceConsent


def text_is_storable(text: str) -> bool:
    """Whether the database can hold (and so be asked about) `text`: no NUL, no lone
    surrogate. Anything else names nothing that exists."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def voices_visible_to(user: AbstractBaseUser | None) -> QuerySet[Voice]:
    visible = Q(is_public=True) | Q(kind=Voice.Kind.BUILTIN)
    if user is not None and user.is_authenticated:
        visible |= Q(owner=user)
    return Voice.objects.filter(visible)


def voice_resolve(*, user: AbstractBaseUser | None, name_or_id: str) -> Voice | None:
    """The voice a caller means by `name_or_id`: by id, else by name, own voices first."""
    if not text_is_storable(name_or_id):
        return None
    visible = voices_visible_to(user)
    try:
        voice_id = uuid.UUID(name_or_id)
    except ValueError:
        pass
    else:
        return visible.filter(id=voice_id).first()
    matches = list(visible.filter(name=name_or_id).order_by("created")[:20])
    if not matches:
        return None
    # The caller's own voice wins over a public one of the same name.
    own = [voice for voice in matches if user is not None and voice.owner_id == user.pk]
    return (own or matches)[0]


def voice_get(
    *, user: AbstractBaseUser | None, name_or_id: str, kind: Voice.Kind | None = None
) -> Voice:
    """The voice `voice_resolve` finds, of `kind` when given; VoiceNotFound otherwise."""
    voice = voice_resolve(user=user, name_or_id=name_or_id)
    if voice is None or (kind is not None and voice.kind != kind):
        raise VoiceNotFound(name_or_id)
    return voice


def voice_codes_get(*, voice_id: str, tag: str) -> tuple[bytes, int] | None:
    """A voice's stored codec codes and their codebook count, if made by `tag`."""
    row = VoiceCodes.objects.filter(voice_id=voice_id, tag=tag).values_list("codes", "codebooks")
    found = row.first()
    return None if found is None else (bytes(found[0]), found[1])


@dataclass(frozen=True)
class StorageUse:
    """What one user keeps: voices, consent recordings, and the bytes of their files."""

    voices: int
    consents: int
    bytes: int


def file_size(file: FieldFile) -> int:
    """A stored file's size; 0 for none, or for one already gone from storage."""
    if not file or not file.name:
        return 0
    try:
        return file.storage.size(file.name)
    except (OSError, ValueError):
        return 0


def storage_used(owner: AbstractBaseUser) -> StorageUse:
    """The owner's voices and consents, and their files' bytes as the storage reports them (no
    count kept in the database can drift from what is really stored)."""
    voices = list(Voice.objects.filter(owner=owner).only("reference_audio", "original_audio"))
    consents = list(VoiceConsent.objects.filter(owner=owner).only("recording"))
    files = [voice.reference_audio for voice in voices]
    files += [voice.original_audio for voice in voices]
    files += [consent.recording for consent in consents]
    return StorageUse(len(voices), len(consents), sum(file_size(file) for file in files))


def consent_voices(consent: VoiceConsent) -> list[tuple[str, str]]:
    """(name, id) of the voices made with `consent`, oldest first."""
    voices = consent.voices.order_by("created").values_list("name", "id")
    return [(name, str(voice_id)) for name, voice_id in voices]
