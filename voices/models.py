import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


def reference_audio_key(voice: "Voice", filename: str) -> str:
    """Storage key chosen by the server: never derived from a client's file name."""
    return f"voices/{voice.id}/reference.wav"


def original_audio_key(voice: "Voice", filename: str) -> str:
    return f"voices/{voice.id}/original"


def consent_recording_key(consent: "VoiceConsent", filename: str) -> str:
    return f"consents/{consent.id}/recording"


class VoiceConsent(models.Model):
    """OpenAI's voice consent: a recording of the speaker agreeing to have their voice cloned."""

    id = models.CharField(primary_key=True, max_length=64, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="voice_consents"
    )
    name = models.CharField(max_length=64)
    language = models.CharField(max_length=16)
    recording = models.FileField(upload_to=consent_recording_key)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.name


class Voice(models.Model):
    class Kind(models.TextChoices):
        BUILTIN = "builtin", "Built-in"
        CLONED = "cloned", "Cloned"

    class Source(models.TextChoices):
        GENERATED = "generated", "Generated"
        UPLOAD = "upload", "Upload"
        YOUTUBE = "youtube", "YouTube"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Built-in voices have no owner; a cloned voice belongs to the user who made it.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="voices",
    )
    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    source_url = models.URLField(max_length=2048, blank=True)
    reference_audio = models.FileField(upload_to=reference_audio_key, blank=True)
    reference_text = models.TextField(blank=True)
    speaker_id = models.PositiveSmallIntegerField(default=0)
    duration_seconds = models.FloatField(default=0.0)
    description = models.TextField(blank=True)
    # The upload or download as received, kept only when VOICE_KEEP_ORIGINALS asks for it.
    original_audio = models.FileField(upload_to=original_audio_key, blank=True)
    # Who attested the right to clone this voice, when, and how: "attested" (a consent flag
    # in the request) or "consent_recording" (an OpenAI voice consent, linked).
    consent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_method = models.CharField(max_length=32, blank=True)
    # The consent's recording is the evidence for this voice: it cannot be deleted while the
    # voice exists (RESTRICT, not PROTECT, so that deleting the owner still takes both).
    consent_recording = models.ForeignKey(
        VoiceConsent, null=True, blank=True, on_delete=models.RESTRICT, related_name="voices"
    )
    # Private to the owner unless staff publish it.
    is_public = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name"],
                name="voice_name_unique_per_owner",
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=Q(owner__isnull=True),
                name="builtin_voice_name_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class VoiceCodes(models.Model):
    """A voice's reference audio as the speech model's codec codes, computed once and reused
    by every request in that voice (re-encoding the audio per request would cost a codec pass).

    `tag` says which codec made them from which reference file: codes with another tag are
    stale (another model, or the reference was replaced) and are made again.
    """

    voice = models.OneToOneField(Voice, on_delete=models.CASCADE, related_name="codes")
    tag = models.CharField(max_length=64)
    # Little-endian int16, frames by codebooks.
    codes = models.BinaryField()
    codebooks = models.PositiveSmallIntegerField()
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"codes of {self.voice_id}"
