"""Writes on voices. A voice's row and its files come and go together."""

from django.db import transaction

from voices.models import Voice


def voice_delete(*, voice: Voice) -> None:
    """Delete the row, then its reference audio once the deletion is committed.

    Removing the file only after the commit means a failed delete leaves both in place.
    """
    storage_name = voice.reference_audio.name
    storage = voice.reference_audio.storage
    with transaction.atomic():
        voice.delete()
        if storage_name:
            transaction.on_commit(lambda: storage.delete(storage_name))


def voice_set_public(*, voice: Voice, public: bool) -> Voice:
    """Publish (visible to every user) or unpublish a voice; staff decide."""
    if voice.is_public != public:
        voice.is_public = public
        voice.save(update_fields=["is_public", "updated"])
    return voice
