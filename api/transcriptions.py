"""Speech to text: OpenAI's POST /v1/audio/transcriptions and /v1/audio/translations."""

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from typing import Any

from adrf.views import APIView as AsyncAPIView
from django.conf import settings
from django.db import connections
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from api.error_codes import ErrorCode
from api.errors import service_unavailable
from api.parsers import RequestTooLarge
from api.serializers.transcriptions import (
    GRANULARITIES_FIELD,
    TranscriptionRequestSerializer,
    TranscriptionSerializer,
    TranslationRequestSerializer,
)
from api.streaming import caller_slots_acquire
from api.throttling import RateLimitHeadersMixin, RequestsPerMinuteThrottle, request_api_key
from core.body_limit import FORM_OVERHEAD_BYTES
from ingest.transcription import (
    TRANSCRIBE,
    TRANSLATE,
    TranscriptionRequest,
    transcription_create,
    transcription_slots,
)
from ingest.transcription_formats import transcription_body

# OpenAI answers text, srt and vtt as plain text.
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"


class TranscriptionMultiPartParser(MultiPartParser):
    """Multipart bodies up to STT_MAX_BYTES (and the form); larger ones are refused before
    they are read."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        request = (parser_context or {}).get("request")
        length = request.META.get("CONTENT_LENGTH") if request is not None else None
        # The same bound as the guard in front of Django (core/body_limit.py): a file over
        # STT_MAX_BYTES within it is read, and refused as `file` by the upload check.
        limit = settings.STT_MAX_BYTES + FORM_OVERHEAD_BYTES
        if length and length.isdigit() and int(length) > limit:
            raise RequestTooLarge(f"The upload is larger than {settings.STT_MAX_BYTES} bytes.")
        return super().parse(stream, media_type, parser_context)


_POOL_THREADS = 64


@cache
def _executor() -> ThreadPoolExecutor:
    # Admission (transcription_slots, STT_MAX_INFLIGHT) bounds the work in flight, so a request
    # never queues here; the pool makes threads only as they are needed, up to the setting's
    # largest value, and so follows the setting wherever it is read.
    return ThreadPoolExecutor(max_workers=_POOL_THREADS, thread_name_prefix="stt")


_JSON_OR_TEXT = {
    (200, "application/json"): TranscriptionSerializer,
    (200, "text/plain"): OpenApiResponse(
        response=OpenApiTypes.STR, description="With response_format text, srt or vtt."
    ),
}


# Parse, decode and transcribe off the event loop, bounded per caller and per process. (No
# docstring: the schema would show it as each operation's description.)
class SpeechToTextView(RateLimitHeadersMixin, AsyncAPIView):
    throttle_classes = [RequestsPerMinuteThrottle]
    parser_classes = [TranscriptionMultiPartParser]
    task: str
    request_serializer: type[TranslationRequestSerializer]

    async def answer(self, request: Request) -> HttpResponse:
        # The slots first: a request the server has no room for must cost nothing.
        release = _admit(request)
        # Set when the caller leaves: the work then stops before it decodes.
        cancelled = threading.Event()
        try:
            future = _executor().submit(
                contextvars.copy_context().run, self._work, request, release, cancelled
            )
        except BaseException:
            # No work will give the slots back (the pool is shut down, say): give them here.
            release()
            raise
        future.add_done_callback(_release_if_cancelled(release))
        try:
            body = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # The client is gone. wrap_future cancels work that has not started; work already
            # on a thread (most likely waiting for the model) learns of it here.
            cancelled.set()
            raise
        if isinstance(body, str):
            return HttpResponse(body, content_type=TEXT_CONTENT_TYPE)
        return Response(body)

    def _work(
        self, request: Request, release: Callable[[], None], cancelled: threading.Event
    ) -> dict[str, Any] | str:
        """On a pool thread; the slots go back when the work really ends, however the request
        did."""
        try:
            serializer = self.request_serializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            options = TranscriptionRequest(
                task=self.task,
                model=data["model"],
                response_format=data["response_format"],
                language=data.get("language") or None,
                prompt=data.get("prompt") or None,
                temperature=data["temperature"],
                granularities=frozenset(data.get(GRANULARITIES_FIELD, ())),
            )
            result = transcription_create(
                user=request.user,
                api_key=request_api_key(request),
                upload=data["file"],
                request=options,
                cancelled=cancelled,
            )
            return transcription_body(result, options)
        finally:
            release()
            # This pool thread may not use the database again for a long while.
            connections.close_all()


def _release_if_cancelled(release: Callable[[], None]) -> Callable[[Future], None]:
    # Cancelled before it started (the caller left while it waited for a thread): the work
    # never runs, so its slots go back here.
    def done(future: Future) -> None:
        if future.cancelled():
            release()

    return done


def _admit(request: Request) -> Callable[[], None]:
    """Take one of the caller's concurrent slots (per key and per user, shared with speech)
    and one of the process's transcription slots, or refuse: 429 for the caller's limit, 503
    when the process is full. Returns what gives them back (once, however often called)."""
    slots = caller_slots_acquire(
        user=request.user, api_key=request_api_key(request), work="requests"
    )
    if not transcription_slots.try_acquire():
        slots.release()
        raise service_unavailable(
            "The server is busy transcribing other requests; retry shortly.",
            code=ErrorCode.SERVER_BUSY,
            retry_after=settings.SPEECH_RETRY_AFTER_SECONDS,
        )
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            transcription_slots.release()
            slots.release()

    return release


class TranscriptionView(SpeechToTextView):
    task = TRANSCRIBE
    request_serializer = TranscriptionRequestSerializer

    @extend_schema(
        operation_id="createTranscription",
        request={"multipart/form-data": TranscriptionRequestSerializer},
        responses=_JSON_OR_TEXT,
        summary="Transcribe audio into the input language",
    )
    async def post(self, request: Request) -> HttpResponse:
        return await self.answer(request)


class TranslationView(SpeechToTextView):
    task = TRANSLATE
    request_serializer = TranslationRequestSerializer

    @extend_schema(
        operation_id="createTranslation",
        request={"multipart/form-data": TranslationRequestSerializer},
        responses=_JSON_OR_TEXT,
        summary="Translate audio into English",
    )
    async def post(self, request: Request) -> HttpResponse:
        return await self.answer(request)
