"""Writes on voices. A voice's row and its files come and go together (see voices/signals.py)."""

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from voices.models import Voice, VoiceCodes


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


def voice_store(*, voice: Voice, reference_wav: bytes, original: bytes | None = None) -> Voice:
    """Save an unsaved voice with its files: files first, then the row; if the row cannot be
    written the files are removed, so neither is ever left without the other.

    The storage keys come from the voice's id: a retried job with the same id overwrites its
    own earlier attempt instead of leaving a second file.
    """
    fields = [(voice.reference_audio, reference_wav)]
    if original is not None:
        fields.append((voice.original_audio, original))
    written = []
    try:
        for field, data in fields:
            key = field.field.generate_filename(voice, "")
            field.storage.delete(key)
            field.name = field.storage.save(key, ContentFile(data))
            written.append(field)
        with transaction.atomic():
            voice.save(force_insert=True)
    except BaseException:
        for field in written:
            field.storage.delete(field.name)
        raise
    return voice


def voice_codes_store(*, voice_id: str, tag: str, codes: bytes, codebooks: int) -> None:
    """Keep a voice's codec codes (made by `tag`); a voice deleted meanwhile keeps nothing."""
    try:
        with transaction.atomic():
            if Voice.objects.filter(pk=voice_id).exists():
                VoiceCodes.objects.update_or_create(
                    voice_id=voice_id,
                    defaults={"tag": tag, "codes": codes, "codebooks": codebooks},
                )
    except IntegrityError:
        pass  # deleted while the codes were being made: there is nothing to keep them for
