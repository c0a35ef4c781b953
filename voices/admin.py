from django.contrib import admin

from voices.models import Voice


@admin.register(Voice)
class VoiceAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "kind", "source", "is_public", "duration_seconds", "created")
    list_filter = ("kind", "source", "is_public")
    search_fields = ("name", "owner__username", "reference_text")
    readonly_fields = ("id", "created", "updated")
