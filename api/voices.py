"""The voice API: list, look at and delete voices. Another user's private voice is a 404."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiError
from api.serializers.voices import VoiceDeletedSerializer, VoiceDetailSerializer
from voices.models import Voice
from voices.selectors import voice_resolve, voices_visible_to
from voices.services import voice_delete
from voices.standard import STANDARD_VOICES, standard_voice_name


def _owned(voice: Voice, user: AbstractBaseUser | None) -> bool:
    return user is not None and user.is_authenticated and voice.owner_id == user.pk


def _voice_summary(voice: Voice, user: AbstractBaseUser | None) -> dict[str, Any]:
    return {
        "id": str(voice.id),
        "name": voice.name,
        "kind": voice.kind,
        "public": voice.is_public,
        "owned": _owned(voice, user),
    }


def _standard_summary(name: str) -> dict[str, Any]:
    return {"id": name, "name": name, "kind": "standard", "public": True, "owned": False}


def _not_found(name_or_id: str) -> ApiError:
    return ApiError(404, f"No voice '{name_or_id}'.", param="voice_id", code="voice_not_found")


def voice_list_body(user: AbstractBaseUser | None) -> dict[str, Any]:
    stored = voices_visible_to(user).exclude(
        Q(kind=Voice.Kind.BUILTIN) & Q(name__in=STANDARD_VOICES)
    )
    voices = [_standard_summary(name) for name in STANDARD_VOICES]
    voices += [_voice_summary(voice, user) for voice in stored.order_by("name", "created")]
    return {"voices": voices}


class VoiceDetailView(APIView):
    def get_permissions(self):
        if self.request.method in SAFE_METHODS:
            return [AllowAny()]
        return [IsAuthenticated()]

    @extend_schema(responses=VoiceDetailSerializer, operation_id="retrieveVoice")
    def get(self, request: Request, voice_id: str) -> Response:
        standard = standard_voice_name(voice_id)
        if standard is not None:
            detail = _standard_summary(standard)
            return Response(
                detail | {"duration_seconds": 0.0, "reference_text": "", "created": None}
            )
        voice = voice_resolve(user=request.user, name_or_id=voice_id)
        if voice is None:
            raise _not_found(voice_id)
        detail = _voice_summary(voice, request.user) | {
            "duration_seconds": voice.duration_seconds,
            "reference_text": voice.reference_text,
            "created": voice.created.isoformat(),
        }
        return Response(detail)

    @extend_schema(responses={200: VoiceDeletedSerializer}, operation_id="deleteVoice")
    def delete(self, request: Request, voice_id: str) -> Response:
        if standard_voice_name(voice_id) is not None:
            raise ApiError(
                400, "Standard voices cannot be deleted.", param="voice_id", code="voice_protected"
            )
        voice = voice_resolve(user=request.user, name_or_id=voice_id)
        if voice is None:
            raise _not_found(voice_id)
        if not _owned(voice, request.user):
            # Visible (public or built-in) but someone else's.
            raise ApiError(
                403, "Only the owner can delete this voice.", param="voice_id", code="not_owner"
            )
        deleted_id = str(voice.id)
        voice_delete(voice=voice)
        return Response({"id": deleted_id, "object": "audio.voice.deleted", "deleted": True})
