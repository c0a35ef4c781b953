"""The staff-only view behind the voice admin's audio player.

Reference audio is a private recording of someone's voice, so it is never served from
MEDIA_URL; staff who may view the voice in the admin hear it through this view instead.
"""

import mimetypes
import uuid
from pathlib import PurePosixPath

from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest

from voices.models import Voice

# Python's table says audio/x-wav for .wav; audio/wav is the registered name.
_CONTENT_TYPES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
}


def audio_content_type(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    return _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def voice_reference_audio(
    request: HttpRequest, *, voice_id: uuid.UUID, model_admin: ModelAdmin
) -> FileResponse:
    # Permission first: staff without access to voices learn nothing, not even what exists.
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    voice = Voice.objects.filter(pk=voice_id).first()
    if voice is None or not voice.reference_audio:
        raise Http404("No reference audio")
    if not model_admin.has_view_permission(request, voice):
        raise PermissionDenied
    try:
        audio = voice.reference_audio.open("rb")
    except FileNotFoundError as exc:
        raise Http404("No reference audio") from exc
    return FileResponse(audio, content_type=audio_content_type(voice.reference_audio.name))
