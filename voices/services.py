"""Writes on voices. A voice's row and its files come and go together (see voices/signals.py)."""

import uuid
from collections.abc import Sequence

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import RestrictedError

from voices.errors import ConsentInUse, NotVoiceOwner, QuotaExceeded, VoiceProtected
from voices.models import Voice, VoiceCodes, VoiceConsent
from voices.selectors import consent_voices, storage_used, voice_get
from voices.standard import standard_voice_name


@transaction.atomic
def voice_delete(*, voice: Voice) -> None:
    """Delete the voice; its reference audio is removed once the deletion is committed."""
    voice.delete()


def voice_delete_owned(
    *, user: AbstractBaseUser, name_or_id: str, kind: Voice.Kind | None = None
) -> str:
    """Delete the caller's voice named by `name_or_id` (of `kind`, when given); its id.

    A standard voice is VoiceProtected; a voice the caller cannot see (or of another kind) is
    VoiceNotFound; one they can see but do not own is NotVoiceOwner.
    """
    if kind is None and standard_voice_name(name_or_id) is not None:
        raise VoiceProtected()
    voice = voice_get(user=user, name_or_id=name_or_id, kind=kind)
    if not user.is_authenticated or voice.owner_id != user.pk:
        raise NotVoiceOwner()
    voice_id = str(voice.id)
    voice_delete(voice=voice)
    return voice_id


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


def consent_create(
    *, owner: AbstractBaseUser, name: str, language: str, recording: bytes
) -> VoiceConsent:
    """Store a consent recording and its row, together, within the owner's quota (QuotaExceeded
    otherwise, with nothing stored). The caller has checked that the recording is real audio
    (ingest.audio.recording_checked)."""
    _consent_quota_check(owner=owner, new_bytes=len(recording))
    consent = VoiceConsent(
        id=f"cons_{uuid.uuid4().hex}", owner=owner, name=name.strip(), language=language.strip()
    )
    field = consent.recording
    field.name = field.storage.save(
        field.field.generate_filename(consent, ""), ContentFile(recording)
    )
    try:
        consent.save(force_insert=True)
    except BaseException:
        field.storage.delete(field.name)
        raise
    return consent


@transaction.atomic
def consent_delete(*, consent: VoiceConsent, jobs: Sequence[tuple[str, str]] = ()) -> None:
    """Delete a consent and (once committed) its recording; ConsentInUse while voices made
    with it exist, or `jobs` (name, job id) are still making one: it is their evidence of
    consent (the foreign key RESTRICTs it too)."""
    voices = consent_voices(consent)
    if voices or jobs:
        raise ConsentInUse(consent.id, voices, jobs=list(jobs))
    try:
        consent.delete()
    except RestrictedError as exc:
        # A voice was made with it between the check and the delete.
        raise ConsentInUse(consent.id, consent_voices(consent)) from exc


def voice_quota_check(*, owner: AbstractBaseUser, in_flight: int = 0, new_bytes: int = 0) -> None:
    """Refuse (QuotaExceeded) one more voice for `owner`: their voices plus `in_flight` still
    being made reach VOICE_QUOTA_VOICES, or their stored bytes plus `new_bytes` (what the new
    voice and those in flight will store) pass VOICE_QUOTA_BYTES."""
    used = storage_used(owner)
    limit = settings.VOICE_QUOTA_VOICES
    if limit and used.voices + in_flight >= limit:
        pending = f" (counting {in_flight} still being made)" if in_flight else ""
        raise QuotaExceeded(
            f"You have {used.voices + in_flight} voices{pending}, the most one user may keep "
            f"({limit}): delete one to make room."
        )
    _bytes_check(used.bytes, new_bytes)


def _consent_quota_check(*, owner: AbstractBaseUser, new_bytes: int) -> None:
    used = storage_used(owner)
    limit = settings.VOICE_QUOTA_CONSENTS
    if limit and used.consents >= limit:
        raise QuotaExceeded(
            f"You have {used.consents} voice consents, the most one user may keep ({limit}): "
            "delete one to make room."
        )
    _bytes_check(used.bytes, new_bytes)


def _bytes_check(used_bytes: int, new_bytes: int) -> None:
    limit = settings.VOICE_QUOTA_BYTES
    if limit and used_bytes + new_bytes > limit:
        raise QuotaExceeded(
            f"Your voices and consents use {used_bytes / 1e6:.1f} MB of the {limit / 1e6:g} MB "
            f"one user may store, and this needs {new_bytes / 1e6:.1f} MB more: delete a voice "
            "or a consent to make room."
        )
