"""Creating a voice through a cloning job, as the API's creating routes answer it.

Creating a voice starts a job and waits for it (up to INGEST_WAIT_SECONDS): the caller gets the
voice, a 400 that says what was wrong with the recording, or, for a slow clip, 202 and the job to
follow at GET /v1/voice-cloning/jobs/{id} or over the WebSocket /ws/jobs/{id}/.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from rest_framework.request import Request
from rest_framework.response import Response

from api.error_codes import ErrorCode, ErrorType
from api.errors import ApiError
from api.throttling import RateLimitHeadersMixin, RequestsPerMinuteThrottle
from ingest.models import IngestJob
from ingest.progress import job_event
from ingest.tasks import embedded_job_wait
from voices.models import Voice

_POLL_SECONDS = 0.2

VoiceBody = Callable[[Voice], dict[str, Any]]


class CreatingView(RateLimitHeadersMixin, AsyncAPIView):
    """Voice creation costs a job: the per-key request limit applies."""

    throttle_classes = [RequestsPerMinuteThrottle]


async def voice_create(
    request: Request, start: Callable[..., IngestJob], body: VoiceBody, **arguments: Any
) -> Response:
    """Start the caller's cloning job with `start` and answer with the voice (shaped by
    `body`), a 202 with the unfinished job, or the job's error. A refusal before the job
    starts (IngestError) reaches the caller through the error table."""
    job = await _started(start)(owner=request.user, **arguments)
    job = await _finished_job(job)
    if job.status == IngestJob.Status.SUCCEEDED and job.voice is not None:
        return Response(body(job.voice), status=200)
    if job.status == IngestJob.Status.FAILED:
        raise _job_error(job)
    return Response(job_event(job), status=202)


def _started(start: Callable[..., IngestJob]) -> Callable[..., Any]:
    """`start` in a worker thread (it checks the request, stores the upload and sends the job;
    a job run in-process goes to its own pool, not this thread's), closing that thread's
    database connection afterwards: Django closes connections at the end of a request only in
    the thread that finishes the request."""

    def run(**kwargs: Any) -> IngestJob:
        try:
            return start(**kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


async def _finished_job(job: IngestJob) -> IngestJob:
    """The job once finished, or as it is when INGEST_WAIT_SECONDS have passed."""
    deadline = time.monotonic() + settings.INGEST_WAIT_SECONDS
    # A job run in-process says when it ends; one run by a worker is polled for.
    await embedded_job_wait(job.id, timeout=settings.INGEST_WAIT_SECONDS)
    while True:
        job = await IngestJob.objects.select_related("voice").aget(id=job.id)
        if job.is_finished or time.monotonic() >= deadline:
            return job
        await asyncio.sleep(_POLL_SECONDS)


def _job_error(job: IngestJob) -> ApiError:
    """A failed job's stored error: the recording's fault (400) or the server's (500)."""
    if job.error_code == ErrorCode.SERVER_ERROR:
        return ApiError(500, job.error, type=ErrorType.SERVER_ERROR, code=ErrorCode.SERVER_ERROR)
    return ApiError(400, job.error, param=job.error_param or None, code=job.error_code or None)
