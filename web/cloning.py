"""The voice cloning page's session endpoints for cloning: start a job, and follow it.

They take the session and need the CSRF token on every write, and run under the API's rules:
consent, the per-user request limit, the same checks of the recording or URL.
"""

import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from api.error_codes import ErrorCode
from api.errors import ApiError, unavailable_service_error
from ingest.errors import IngestError
from ingest.jobs import job_start_upload, job_start_youtube
from ingest.models import IngestJob
from ingest.progress import job_event
from ingest.tasks import embedded_job_wait
from voices.errors import VoiceError
from web.errors import domain_error, form_error, request_budget_check
from web.forms import CloneUploadForm, CloneYoutubeForm

CONSENT_NEEDED = (
    "Tick the consent box: cloning a voice needs your confirmation that you have the right to "
    "clone it."
)


@login_required
@require_POST
async def clone_start(request: HttpRequest) -> HttpResponse:
    """Check the form and start the job; the page follows it over the job's WebSocket."""
    user = await request.auser()
    try:
        request_budget_check(user)
        if request.POST.get("source") == "youtube":
            job = await _start_youtube(user, CloneYoutubeForm(request.POST))
        else:
            job = await _start_upload(user, CloneUploadForm(request.POST, request.FILES))
    except ApiError as exc:
        return exc.as_json_response()
    # A job run in-process (eager Celery) is waited for, as the API's routes wait; with a
    # broker the page follows the job at once.
    await embedded_job_wait(job.id, timeout=settings.INGEST_WAIT_SECONDS)
    job = await IngestJob.objects.aget(id=job.id)
    return JsonResponse(job_event(job), status=202)


async def _start_upload(user: AbstractBaseUser, form: CloneUploadForm) -> IngestJob:
    if not form.is_valid():
        raise form_error(form)
    data = form.cleaned_data
    return await _start(
        job_start_upload,
        owner=user,
        name=data["name"],
        upload=data["audio_file"],
        transcript=data["transcript"],
        description=data["description"],
        consent=True if data["consent"] else None,
    )


async def _start_youtube(user: AbstractBaseUser, form: CloneYoutubeForm) -> IngestJob:
    if not form.is_valid():
        raise form_error(form)
    data = form.cleaned_data
    return await _start(
        job_start_youtube,
        owner=user,
        url=data["youtube_url"],
        name=data["name"],
        start_time=data["start_time"],
        duration=data["duration"],
        description=data["description"],
        transcript=data["transcript"],
        consent=True if data["consent"] else None,
    )


async def _start(start: Callable[..., IngestJob], **kwargs: Any) -> IngestJob:
    def run() -> IngestJob:
        try:
            return start(**kwargs)
        finally:
            # Django closes a request's connection only on the thread that finishes it.
            close_old_connections()

    try:
        # Not thread-sensitive: checking and storing an upload must not hold up the one thread
        # that every other sync view shares. (The job itself runs elsewhere, even in-process.)
        return await sync_to_async(run, thread_sensitive=False)()
    except IngestError as exc:
        error = domain_error(exc)
        if exc.code == ErrorCode.CONSENT_REQUIRED:
            # The page has a box to tick, not a parameter to send.
            error.message = CONSENT_NEEDED
        raise error from exc
    except VoiceError as exc:
        # A full storage quota (voices.errors.QuotaExceeded), as the API answers it.
        raise domain_error(exc) from exc
    except Exception as exc:
        # The job queue or the database cannot be reached: 503, as the API answers.
        unavailable = unavailable_service_error(exc)
        if unavailable is None:
            raise
        raise unavailable from exc


@login_required
@require_GET
def job_status(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """The job as its WebSocket reports it; the page polls here when WebSockets do not get
    through (a proxy that does not pass them on)."""
    job = IngestJob.objects.filter(id=job_id, owner=request.user).first()
    if job is None:
        return ApiError(404, "No such job.", code=ErrorCode.JOB_NOT_FOUND).as_json_response()
    return JsonResponse(job_event(job))
