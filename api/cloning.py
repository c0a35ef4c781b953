"""The original server's /voice-cloning routes: clone (from an upload or YouTube), list, delete,
preview and speak with cloned voices, and follow a cloning job."""

import uuid
from typing import Any

from asgiref.sync import sync_to_async
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.error_codes import ErrorCode
from api.errors import ApiError
from api.idempotency import idempotent
from api.parsers import BoundedJSONParser
from api.serializers import cloning as s
from api.serializers.speech import SPEECH_RESPONSES
from api.serializers.voices import VoiceDeletedSerializer
from api.speech import SpeakingView
from api.voice_jobs import CreatingView, voice_create
from api.voices import VOICE_PATH_PARAMS
from api.write_limits import WritesThrottled
from ingest.jobs import job_start_upload, job_start_youtube
from ingest.models import IngestJob
from ingest.progress import job_event
from speech.audio.formats import SAMPLE_RATE
from voices.models import Voice
from voices.selectors import voice_get
from voices.services import voice_delete_owned
from voices.standard import standard_voice_name


def standard_preview_text(name: str) -> str:
    """What a standard voice says in its preview, when no text is given."""
    return f"Hello! This is {name}, one of the standard voices."


def cloned_voice_body(voice: Voice) -> dict[str, Any]:
    return {
        "id": str(voice.id),
        "name": voice.name,
        "description": voice.description,
        "created_at": voice.created.isoformat(),
        "audio_duration": round(voice.duration_seconds, 3),
        "sample_count": round(voice.duration_seconds * SAMPLE_RATE),
        "speaker_id": voice.speaker_id,
    }


def youtube_voice_body(voice: Voice) -> dict[str, Any]:
    body = cloned_voice_body(voice)
    body["voice_id"] = body.pop("id")
    body.pop("speaker_id")
    return body


class CloneView(CreatingView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="cloneVoice",
        request={"multipart/form-data": s.CloneUploadSerializer},
        responses={200: s.ClonedVoiceSerializer, 202: s.JobSerializer},
        summary="Clone a voice from an uploaded recording",
    )
    @idempotent
    async def post(self, request: Request) -> Response:
        serializer = s.CloneUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return await voice_create(
            request,
            job_start_upload,
            cloned_voice_body,
            name=data["name"],
            upload=data["audio_file"],
            transcript=data["transcript"],
            description=data["description"],
            consent=data["consent"] or None,
        )


class _CanonicalPathSchema(AutoSchema):
    """Documents the route once: the original server's alias path is the same operation."""

    def is_excluded(self) -> bool:
        return self.path.endswith("/audio/speech/voice-cloning/youtube") or super().is_excluded()


class CloneYoutubeView(CreatingView):
    parser_classes = [BoundedJSONParser]
    schema = _CanonicalPathSchema()

    @extend_schema(
        operation_id="cloneVoiceFromYoutube",
        request=s.CloneYoutubeSerializer,
        responses={200: s.YoutubeVoiceSerializer, 202: s.JobSerializer},
        summary="Clone a voice from a section of a YouTube video",
    )
    @idempotent
    async def post(self, request: Request) -> Response:
        serializer = s.CloneYoutubeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return await voice_create(
            request,
            job_start_youtube,
            youtube_voice_body,
            url=data["youtube_url"],
            name=data["voice_name"],
            start_time=data["start_time"],
            duration=data["duration"],
            description=data["description"],
            transcript=data["transcript"],
            consent=data["consent"],
        )


class ClonedVoiceListView(APIView):
    @extend_schema(responses=s.ClonedVoiceListSerializer, operation_id="listClonedVoices")
    def get(self, request: Request) -> Response:
        """Your cloned voices and the public ones."""
        voices = Voice.objects.filter(kind=Voice.Kind.CLONED).filter(
            owner=request.user
        ) | Voice.objects.filter(kind=Voice.Kind.CLONED, is_public=True)
        return Response({"voices": [cloned_voice_body(v) for v in voices.order_by("name")]})


class ClonedVoiceDetailView(WritesThrottled, APIView):
    error_params = VOICE_PATH_PARAMS

    @extend_schema(responses={200: VoiceDeletedSerializer}, operation_id="deleteClonedVoice")
    def delete(self, request: Request, voice_id: str) -> Response:
        deleted_id = voice_delete_owned(
            user=request.user, name_or_id=voice_id, kind=Voice.Kind.CLONED
        )
        return Response({"id": deleted_id, "object": "audio.voice.deleted", "deleted": True})


class VoicePreviewView(SpeakingView):
    error_params = VOICE_PATH_PARAMS

    @extend_schema(
        operation_id="previewClonedVoice",
        request=s.PreviewSerializer,
        responses=SPEECH_RESPONSES,
        summary="Hear a cloned or standard voice say a short text",
    )
    async def post(self, request: Request, voice_id: str) -> Response:
        serializer = s.PreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # A standard voice speaks through the default engine; a cloned one only through CSM.
        standard = standard_voice_name(voice_id)
        if standard is not None:
            text = data["text"] if "text" in request.data else standard_preview_text(standard)
            model, voice_ref = "tts-1", standard
        else:
            voice = await sync_to_async(voice_get)(
                user=request.user, name_or_id=voice_id, kind=Voice.Kind.CLONED
            )
            text, model, voice_ref = data["text"], "csm-1b", str(voice.id)
        return await self.speak(
            request,
            {
                "model": model,
                "voice": voice_ref,
                "input": text,
                "response_format": data["response_format"],
                "speed": 1.0,
            },
        )


class GenerateView(SpeakingView):
    @extend_schema(
        operation_id="generateWithClonedVoice",
        request=s.GenerateSerializer,
        responses=SPEECH_RESPONSES,
        summary="Speak a text in a cloned voice",
    )
    async def post(self, request: Request) -> Response:
        serializer = s.GenerateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data["voice"] = data.pop("voice_id")
        data["input"] = data.pop("text")
        return await self.speak(request, data)


class JobView(APIView):
    @extend_schema(responses=s.JobSerializer, operation_id="retrieveIngestJob")
    def get(self, request: Request, job_id: str) -> Response:
        job = IngestJob.objects.filter(owner=request.user, id=_uuid_or_none(job_id)).first()
        if job is None:
            raise ApiError(404, f"No job '{job_id}'.", param="job_id", code=ErrorCode.JOB_NOT_FOUND)
        return Response(job_event(job))


def _uuid_or_none(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
