"""The cloning API: the original server's /voice-cloning routes and OpenAI's custom voices.

Creating a voice starts a job and waits for it (up to INGEST_WAIT_SECONDS): the caller gets the
voice, a 400 that says what was wrong with the recording, or, for a slow clip, 202 and the job to
follow at GET /v1/voice-cloning/jobs/{id} or over the WebSocket /ws/jobs/{id}/.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS, AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import SERVER_ERROR, ApiError
from api.idempotency import idempotent
from api.parsers import BoundedJSONParser
from api.serializers import cloning as s
from api.serializers.speech import SPEECH_RESPONSES
from api.serializers.voices import VoiceDeletedSerializer, VoiceListSerializer
from api.streaming import speech_response
from api.throttling import RateLimitHeadersMixin, RequestsPerMinuteThrottle
from api.voices import voice_list_body
from ingest.errors import IngestError
from ingest.models import IngestJob
from ingest.progress import job_event
from ingest.services import consent_create, job_start_upload, job_start_youtube
from speech.audio.formats import SAMPLE_RATE as _SAMPLE_RATE
from speech.services import speech_plan
from speech.synthesis import SpeechStream
from voices.models import Voice, VoiceConsent
from voices.selectors import text_is_storable, voice_resolve
from voices.services import voice_delete

_POLL_SECONDS = 0.2
_UPLOAD_PARSERS = [MultiPartParser, FormParser]


def _started(start: Callable[..., IngestJob]) -> Callable[..., Awaitable[IngestJob]]:
    """`start` in a worker thread (it runs the whole job when jobs run in-process), closing
    that thread's database connection afterwards: Django closes connections at the end of a
    request only in the thread that finishes the request."""

    def run(**kwargs: Any) -> IngestJob:
        try:
            return start(**kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


def _api_error(exc: IngestError) -> ApiError:
    return ApiError(400, exc.message, param=exc.param, code=exc.code)


def _job_error(job: IngestJob) -> ApiError:
    if job.error_code == "server_error":
        return ApiError(500, job.error, type=SERVER_ERROR, code="server_error")
    return ApiError(400, job.error, param=job.error_param or None, code=job.error_code or None)


async def _finished_job(job: IngestJob) -> IngestJob:
    """The job once finished, or as it is when INGEST_WAIT_SECONDS have passed."""
    deadline = time.monotonic() + settings.INGEST_WAIT_SECONDS
    while True:
        job = await IngestJob.objects.select_related("voice").aget(id=job.id)
        if job.is_finished or time.monotonic() >= deadline:
            return job
        await asyncio.sleep(_POLL_SECONDS)


async def _voice_or_job(job: IngestJob, body: Any) -> Response:
    """The made voice (shaped by `body`), a 202 with the unfinished job, or the job's error."""
    job = await _finished_job(job)
    if job.status == IngestJob.Status.SUCCEEDED and job.voice is not None:
        return Response(body(job.voice), status=200)
    if job.status == IngestJob.Status.FAILED:
        raise _job_error(job)
    return Response(job_event(job), status=202)


def _validated(serializer_class: type, request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


async def _create_voice(
    request: Request, start: Callable[..., IngestJob], body: Any, **arguments: Any
) -> Response:
    """Start the caller's cloning job with `start`, then answer as `_voice_or_job` does."""
    try:
        job = await _started(start)(owner=request.user, **arguments)
    except IngestError as exc:
        raise _api_error(exc) from exc
    return await _voice_or_job(job, body)


def cloned_voice_body(voice: Voice) -> dict[str, Any]:
    return {
        "id": str(voice.id),
        "name": voice.name,
        "description": voice.description,
        "created_at": voice.created.isoformat(),
        "audio_duration": round(voice.duration_seconds, 3),
        "sample_count": round(voice.duration_seconds * _SAMPLE_RATE),
        "speaker_id": voice.speaker_id,
    }


def youtube_voice_body(voice: Voice) -> dict[str, Any]:
    body = cloned_voice_body(voice)
    body["voice_id"] = body.pop("id")
    body.pop("speaker_id")
    return body


def openai_voice_body(voice: Voice) -> dict[str, Any]:
    return {
        "id": str(voice.id),
        "object": "audio.voice",
        "name": voice.name,
        "type": "audio_sample",
        "created_at": int(voice.created.timestamp()),
    }


def consent_body(consent: VoiceConsent) -> dict[str, Any]:
    return {
        "id": consent.id,
        "object": "audio.voice_consent",
        "name": consent.name,
        "language": consent.language,
        "created_at": int(consent.created.timestamp()),
    }


class _Creating(RateLimitHeadersMixin, AsyncAPIView):
    """Voice creation costs a job: the per-key request limit applies."""

    throttle_classes = [RequestsPerMinuteThrottle]


# --- The original server's routes --------------------------------------------------------------


class CloneView(_Creating):
    parser_classes = _UPLOAD_PARSERS

    @extend_schema(
        operation_id="cloneVoice",
        request={"multipart/form-data": s.CloneUploadSerializer},
        responses={200: s.ClonedVoiceSerializer, 202: s.JobSerializer},
        summary="Clone a voice from an uploaded recording",
    )
    @idempotent
    async def post(self, request: Request) -> Response:
        data = _validated(s.CloneUploadSerializer, request)
        return await _create_voice(
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


class CloneYoutubeView(_Creating):
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
        data = _validated(s.CloneYoutubeSerializer, request)
        return await _create_voice(
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


def _own_voice(request: Request, voice_id: str) -> Voice:
    voice = voice_resolve(user=request.user, name_or_id=voice_id)
    if voice is None or voice.kind != Voice.Kind.CLONED:
        raise ApiError(404, f"No voice '{voice_id}'.", param="voice_id", code="voice_not_found")
    return voice


class ClonedVoiceListView(APIView):
    @extend_schema(responses=s.ClonedVoiceListSerializer, operation_id="listClonedVoices")
    def get(self, request: Request) -> Response:
        """Your cloned voices and the public ones."""
        voices = Voice.objects.filter(kind=Voice.Kind.CLONED).filter(
            owner=request.user
        ) | Voice.objects.filter(kind=Voice.Kind.CLONED, is_public=True)
        return Response({"voices": [cloned_voice_body(v) for v in voices.order_by("name")]})


class ClonedVoiceDetailView(APIView):
    @extend_schema(responses={200: VoiceDeletedSerializer}, operation_id="deleteClonedVoice")
    def delete(self, request: Request, voice_id: str) -> Response:
        voice = _own_voice(request, voice_id)
        if voice.owner_id != request.user.pk:
            raise ApiError(
                403, "Only the owner can delete this voice.", param="voice_id", code="not_owner"
            )
        body = cloned_voice_body(voice)
        voice_delete(voice=voice)
        return Response({"id": body["id"], "object": "audio.voice.deleted", "deleted": True})


class _Speaking(RateLimitHeadersMixin, AsyncAPIView):
    throttle_classes = [RequestsPerMinuteThrottle]

    async def speak(self, request: Request, data: dict[str, Any]) -> Response:
        plan = await speech_plan(user=request.user, data=data)
        return await speech_response(SpeechStream(plan), sse=False, request=request)


class VoicePreviewView(_Speaking):
    @extend_schema(
        operation_id="previewClonedVoice",
        request=s.PreviewSerializer,
        responses=SPEECH_RESPONSES,
        summary="Hear a cloned voice say a short text",
    )
    async def post(self, request: Request, voice_id: str) -> Response:
        serializer = s.PreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        voice = await sync_to_async(_own_voice)(request, voice_id)
        data = serializer.validated_data
        return await self.speak(
            request,
            {
                "model": "csm-1b",
                "voice": str(voice.id),
                "input": data["text"],
                "response_format": data["response_format"],
                "speed": 1.0,
            },
        )


class GenerateView(_Speaking):
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
            raise ApiError(404, f"No job '{job_id}'.", param="job_id", code="job_not_found")
        return Response(job_event(job))


def _uuid_or_none(value: str) -> str | None:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


# --- OpenAI's custom voices ---------------------------------------------------------------------


class VoiceConsentListView(RateLimitHeadersMixin, APIView):
    parser_classes = _UPLOAD_PARSERS

    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description="1 to 100 (default 20)"),
            OpenApiParameter("after", str, description="the last id of the previous page"),
        ],
        responses=s.VoiceConsentListSerializer,
        operation_id="listVoiceConsents",
    )
    def get(self, request: Request) -> Response:
        consents = list(VoiceConsent.objects.filter(owner=request.user).order_by("-created"))
        after = request.query_params.get("after")
        if after:
            ids = [c.id for c in consents]
            consents = consents[ids.index(after) + 1 :] if after in ids else []
        limit = _limit(request.query_params.get("limit"))
        page, has_more = consents[:limit], len(consents) > limit
        return Response(
            {
                "object": "list",
                "data": [consent_body(c) for c in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": has_more,
            }
        )

    @extend_schema(
        request={"multipart/form-data": s.VoiceConsentCreateSerializer},
        responses=s.VoiceConsentSerializer,
        operation_id="createVoiceConsent",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = s.VoiceConsentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            consent = consent_create(
                owner=request.user,
                name=data["name"],
                language=data["language"],
                recording=data["recording"],
            )
        except IngestError as exc:
            raise _api_error(exc) from exc
        return Response(consent_body(consent))


def _limit(raw: str | None) -> int:
    try:
        return min(max(int(raw), 1), 100) if raw else 20
    except ValueError as exc:
        raise ApiError(400, "limit must be an integer.", param="limit") from exc


class VoiceConsentDetailView(APIView):
    parser_classes = [BoundedJSONParser, *_UPLOAD_PARSERS]

    def _consent(self, request: Request, consent_id: str) -> VoiceConsent:
        consent = None
        if text_is_storable(consent_id):
            consent = VoiceConsent.objects.filter(owner=request.user, id=consent_id).first()
        if consent is None:
            raise ApiError(
                404, f"No voice consent '{consent_id}'.", param="consent_id", code="not_found"
            )
        return consent

    @extend_schema(responses=s.VoiceConsentSerializer, operation_id="retrieveVoiceConsent")
    def get(self, request: Request, consent_id: str) -> Response:
        return Response(consent_body(self._consent(request, consent_id)))

    @extend_schema(
        request=s.VoiceConsentUpdateSerializer,
        responses=s.VoiceConsentSerializer,
        operation_id="updateVoiceConsent",
    )
    def post(self, request: Request, consent_id: str) -> Response:
        consent = self._consent(request, consent_id)
        serializer = s.VoiceConsentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        consent.name = serializer.validated_data["name"].strip()
        consent.save(update_fields=["name"])
        return Response(consent_body(consent))

    @extend_schema(
        responses={200: s.VoiceConsentDeletedSerializer}, operation_id="deleteVoiceConsent"
    )
    def delete(self, request: Request, consent_id: str) -> Response:
        consent = self._consent(request, consent_id)
        consent.delete()
        return Response({"id": consent_id, "object": "audio.voice_consent", "deleted": True})


class VoicesView(_Creating):
    """GET lists voices (the voices app's list, open to anonymous callers); POST is OpenAI's
    voice creation. One path, so one view."""

    parser_classes = _UPLOAD_PARSERS

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
        request={"multipart/form-data": s.OpenAIVoiceCreateSerializer},
        responses={200: s.OpenAIVoiceSerializer, 202: s.JobSerializer},
        operation_id="createVoice",
        summary="Create a voice from an audio sample and a consent recording (OpenAI's API)",
    )
    @idempotent
    async def post(self, request: Request) -> Response:
        data = _validated(s.OpenAIVoiceCreateSerializer, request)
        return await _create_voice(
            request,
            job_start_upload,
            openai_voice_body,
            name=data["name"],
            upload=data["audio_sample"],
            consent=data["consent"],
            file_param="audio_sample",
        )
