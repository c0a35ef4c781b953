import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


def reference_audio_key(voice: "Voice", filename: str) -> str:
    """Storage key chosen by the server: never derived from a client's file name."""
    return f"voices/{voice.id}/reference.wav"


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
