"""OpenAI's voices: list and create voices, look at and delete one. Another user's private
voice is a 404."""

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.idempotency import idempotent
from api.serializers.cloning import (
    JobSerializer,
    OpenAIVoiceCreateSerializer,
    OpenAIVoiceSerializer,
)
from api.serializers.voices import (
    VoiceDeletedSerializer,
    VoiceDetailSerializer,
    VoiceListSerializer,
)
from api.voice_jobs import CreatingView, voice_create
from api.write_limits import WritesThrottled
from ingest.audio import UPLOAD_PARAM
from ingest.jobs import job_start_upload
from voices.models import Voice
from voices.selectors import voice_get, voices_visible_to
from voices.services import voice_delete_owned
from voices.standard import STANDARD_VOICES, standard_voice_name

# A route that names the voice in its path reports the voices' errors about that parameter.
VOICE_PATH_PARAMS = {"name_or_id": "voice_id"}


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


def voice_list_body(user: AbstractBaseUser | None) -> dict[str, Any]:
    stored = voices_visible_to(user).exclude(
        Q(kind=Voice.Kind.BUILTIN) & Q(name__in=STANDARD_VOICES)
    )
    voices = [_standard_summary(name) for name in STANDARD_VOICES]
    voices += [_voice_summary(voice, user) for voice in stored.order_by("name", "created")]
    return {"voices": voices}


def openai_voice_body(voice: Voice) -> dict[str, Any]:
    return {
        "id": str(voice.id),
        "object": "audio.voice",
        "name": voice.name,
        "type": "audio_sample",
        "created_at": int(voice.created.timestamp()),
    }


class VoicesView(CreatingView):
    """GET lists voices (the voices app's list, open to anonymous callers); POST is OpenAI's
    voice creation. One path, so one view."""

    parser_classes = [MultiPartParser, FormParser]
    # The cloning services report the upload under their own name; here it is audio_sample.
    error_params = {UPLOAD_PARAM: "audio_sample"}

    def get_permissions(self) -> list[Any]:
        if self.request.method in SAFE_METHODS:
            return [AllowAny()]
        return super().get_permissions()

    def get_throttles(self) -> list[Any]:
        if self.request.method in SAFE_METHODS:
            return []
        return super().get_throttles()

    @extend_schema(responses=VoiceListSerializer, operation_id="listVoices")
    async def get(self, request: Request) -> Response:
        return Response(await sync_to_async(voice_list_body)(request.user))

    @extend_schema(
        request={"multipart/form-data": OpenAIVoiceCreateSerializer},
        responses={200: OpenAIVoiceSerializer, 202: JobSerializer},
        operation_id="createVoice",
        summary="Create a voice from an audio sample and a consent recording (OpenAI's API)",
    )
    @idempotent
    async def post(self, request: Request) -> Response:
        serializer = OpenAIVoiceCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return await voice_create(
            request,
            job_start_upload,
            openai_voice_body,
            name=data["name"],
            upload=data["audio_sample"],
            consent=data["consent"],
        )


class VoiceDetailView(WritesThrottled, APIView):
    error_params = VOICE_PATH_PARAMS

    def get_permissions(self) -> list[Any]:
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
        voice = voice_get(user=request.user, name_or_id=voice_id)
        detail = _voice_summary(voice, request.user) | {
            "duration_seconds": voice.duration_seconds,
            "reference_text": voice.reference_text,
            "created": voice.created.isoformat(),
        }
        return Response(detail)

    @extend_schema(responses={200: VoiceDeletedSerializer}, operation_id="deleteVoice")
    def delete(self, request: Request, voice_id: str) -> Response:
        deleted_id = voice_delete_owned(user=request.user, name_or_id=voice_id)
        return Response({"id": deleted_id, "object": "audio.voice.deleted", "deleted": True})
