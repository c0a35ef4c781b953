"""Voice admin: staff curate voices, publish them, listen to them and delete them.

Deleting a voice, single or bulk, removes its audio files too (voices/signals.py).
"""

import uuid

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from voices.admin_views import voice_reference_audio
from voices.models import Voice
from voices.services import voice_set_public


@admin.register(Voice)
class VoiceAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "kind", "source", "is_public", "duration", "created")
    list_filter = ("kind", "source", "is_public")
    search_fields = ("name", "owner__username", "reference_text")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    # The audio file itself is not editable here: the ingest pipeline writes it, normalised.
    # Its storage URL is not shown either (media is not served); the player stands in for it.
    fieldsets = (
        (None, {"fields": ("name", "owner", "kind", "source", "source_url", "is_public")}),
        (
            "Reference audio",
            {"fields": ("audio_player", "reference_text", "duration_seconds", "speaker_id")},
        ),
        ("Record", {"fields": ("id", "created", "updated")}),
    )
    readonly_fields = ("id", "audio_player", "created", "updated")
    # Django 6 assumes https for scheme-less URLs; opt in now, as a source URL is a web page.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    actions = ("publish", "unpublish")

    @admin.display(description="duration", ordering="duration_seconds")
    def duration(self, voice: Voice) -> str:
        return f"{voice.duration_seconds:.1f} s"

    @admin.display(description="player")
    def audio_player(self, voice: Voice) -> str:
        if voice._state.adding or not voice.reference_audio:
            return "—"
        url = reverse("admin:voices_voice_audio", args=[voice.pk], current_app=self.admin_site.name)
        return format_html('<audio controls preload="metadata" src="{}"></audio>', url)

    def get_urls(self) -> list[URLPattern]:
        # Ahead of the admin's own patterns, whose "<path:object_id>/" would swallow it.
        audio = path(
            "<uuid:voice_id>/audio/",
            self.admin_site.admin_view(self.reference_audio_view),
            name="voices_voice_audio",
        )
        return [audio, *super().get_urls()]

    def reference_audio_view(self, request: HttpRequest, voice_id: uuid.UUID) -> FileResponse:
        return voice_reference_audio(request, voice_id=voice_id, model_admin=self)

    @admin.action(description="Publish selected voices", permissions=["change"])
    def publish(self, request: HttpRequest, queryset: QuerySet[Voice]) -> None:
        self._set_public(request, queryset, public=True)

    @admin.action(description="Unpublish selected voices", permissions=["change"])
    def unpublish(self, request: HttpRequest, queryset: QuerySet[Voice]) -> None:
        self._set_public(request, queryset, public=False)

    def _set_public(self, request: HttpRequest, queryset: QuerySet[Voice], *, public: bool) -> None:
        voices = list(queryset)
        for voice in voices:
            voice_set_public(voice=voice, public=public)
        verb = "Published" if public else "Unpublished"
        noun = "voice" if len(voices) == 1 else "voices"
        self.message_user(request, f"{verb} {len(voices)} {noun}.", messages.SUCCESS)
