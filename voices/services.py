"""Writes on voices. A voice's row and its files come and go together (see voices/signals.py)."""

from django.db import transaction

from voices.models import Voice


@transaction.atomic
def voice_delete(*, voice: Voice) -> None:
    """Delete the voice; its reference audio is removed once the deletion is committed."""
    voice.delete()


def voice_set_public(*, voice: Voice, public: bool) -> Voice:
    """Publish (visible to every user) or unpublish a voice; staff decide."""
    if voice.is_public != public:
        voice.is_public = public
        voice.save(update_fields=["is_public", "updated"])
    return voice
