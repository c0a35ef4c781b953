"""Starting a cloning job: the caller's request checked, the job's row written, the job sent.

Everything a caller can get wrong is checked before a job exists (name, consent, file type and
size, URL), so a refusal is immediate and nothing is fetched or stored. The rest (decode, clean,
transcribe, choose the reference, store) is `ingest.pipeline`'s, run by the task in a Celery
worker or, when tasks run eagerly, in-process.

A job's `request` holds the voice's details under domain names: name, description,
transcript, consent ({method, recording}) and, for a YouTube clip, url, start_time, duration.
"""

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ingest.audio import UPLOAD_PARAM, check_upload, reference_bytes_bound
from ingest.errors import IngestError, TooManyJobs
from ingest.models import IngestJob
from ingest.tasks import EMBEDDED_SINCE, ingest_job_task
from voices.models import Voice, VoiceConsent
from voices.selectors import file_size
from voices.services import voice_quota_check

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 1000
MAX_TRANSCRIPT_CHARS = 4000
# The field a YouTube clip's voice name is reported under (the upload's is "name").
YOUTUBE_NAME_PARAM = "voice_name"


def consent_resolve(*, owner: AbstractBaseUser, consent: Any) -> dict:
    """How the caller attests the right to clone: `true`, or the id of their voice consent."""
    if isinstance(consent, str) and consent.strip().lower() in {"true", "1", "yes", "on"}:
        consent = True
    if isinstance(consent, str) and consent.strip().lower() in {"false", "0", "no", "off"}:
        consent = None  # a form's unticked box: no consent, not a consent id
    if consent is True:
        return {"method": "attested", "recording": None}
    if isinstance(consent, str) and consent.strip():
        recording = VoiceConsent.objects.filter(owner=owner, id=consent.strip()).first()
        if recording is None:
            raise IngestError(
                f"No voice consent '{consent.strip()}'. Create one with POST "
                "/v1/audio/voice_consents, or send consent=true to attest the right to clone "
                "this voice yourself.",
                code="consent_not_found",
                param="consent",
            )
        return {"method": "consent_recording", "recording": recording.id}
    if not settings.VOICE_REQUIRE_CONSENT:
        return {"method": "not_required", "recording": None}
    raise IngestError(
        "Cloning a voice needs consent: send consent=true to attest that you have the right to "
        "clone this voice (or the id of a voice consent recording).",
        code="consent_required",
        param="consent",
    )


def _check_name(owner: AbstractBaseUser, name: str, param: str) -> str:
    name = name.strip()
    if not name:
        raise IngestError("A voice needs a name.", code="name_required", param=param)
    if len(name) > MAX_NAME_CHARS:
        raise IngestError(
            f"A voice name has at most {MAX_NAME_CHARS} characters.",
            code="name_too_long",
            param=param,
        )
    if Voice.objects.filter(owner=owner, name=name).exists():
        raise IngestError(
            f"You already have a voice named '{name}'.", code="name_taken", param=param
        )
    return name


def _check_quota(owner: AbstractBaseUser, *, upload_bytes: int = 0) -> None:
    """Refuse (voices.errors.QuotaExceeded) a job whose voice would not fit the owner's quota,
    counting the jobs still in flight as the voices, and uploads, they will store."""
    in_flight = list(
        IngestJob.objects.filter(
            owner=owner, status__in=[IngestJob.Status.QUEUED, IngestJob.Status.RUNNING]
        ).only("input_audio")
    )
    pending_bytes = sum(reference_bytes_bound() + file_size(job.input_audio) for job in in_flight)
    voice_quota_check(
        owner=owner,
        in_flight=len(in_flight),
        new_bytes=pending_bytes + reference_bytes_bound() + upload_bytes,
    )


def jobs_using_consent(consent: VoiceConsent) -> list[tuple[str, str]]:
    """(voice name, job id) of the jobs still queued or running that will link `consent` to
    the voice they make: until they finish, the consent is in use."""
    jobs = IngestJob.objects.filter(
        owner_id=consent.owner_id,
        status__in=[IngestJob.Status.QUEUED, IngestJob.Status.RUNNING],
        request__consent__recording=consent.id,
    ).order_by("created")
    return [(job.request.get("name", ""), str(job.id)) for job in jobs]


def _details(*, name: str, description: str, transcript: str, consent: dict) -> dict[str, Any]:
    return {
        "name": name,
        "description": description.strip()[:MAX_DESCRIPTION_CHARS],
        "transcript": transcript.strip()[:MAX_TRANSCRIPT_CHARS],
        "consent": consent,
    }


def job_start_upload(
    *,
    owner: AbstractBaseUser,
    name: str,
    upload: UploadedFile,
    transcript: str = "",
    description: str = "",
    consent: Any = None,
) -> IngestJob:
    """Check a cloning upload and queue its job; the upload waits in storage for the job.

    A problem with the upload is reported under UPLOAD_PARAM, here and when the job fails.
    """
    name = _check_name(owner, name, "name")
    consent_info = consent_resolve(owner=owner, consent=consent)
    head = upload.read(16)
    upload.seek(0)
    check_upload(head, upload.size or 0, param=UPLOAD_PARAM)
    # Before the upload is stored; checked again, race-free, as the job's row is written.
    _check_job_room(owner)
    _check_quota(owner, upload_bytes=upload.size or 0)
    job = IngestJob(
        owner=owner,
        kind=IngestJob.Kind.UPLOAD,
        request=_details(
            name=name, description=description, transcript=transcript, consent=consent_info
        ),
    )
    field = job.input_audio
    key = field.field.generate_filename(job, "")
    field.name = field.storage.save(key, upload)
    try:
        _queue(job)
    except BaseException:
        field.storage.delete(field.name)
        raise
    return job


def job_start_youtube(
    *,
    owner: AbstractBaseUser,
    url: str,
    name: str,
    start_time: float,
    duration: float,
    description: str = "",
    consent: Any = None,
    transcript: str = "",
) -> IngestJob:
    """Check a YouTube clip request (the URL before anything is fetched) and queue its job."""
    name = _check_name(owner, name, YOUTUBE_NAME_PARAM)
    consent_info = consent_resolve(owner=owner, consent=consent)
    if duration > settings.YOUTUBE_MAX_DURATION_SECONDS:
        raise IngestError(
            f"The duration is at most {settings.YOUTUBE_MAX_DURATION_SECONDS:g} seconds.",
            code="duration_too_long",
            param="duration",
        )
    _check_quota(owner)
    # Deferred: yt_dlp is heavy, and once loaded its lazy modules break inductor's graph pickling.
    from ingest.download import validate_source_url

    url = validate_source_url(url)
    _check_job_room(owner)
    request = _details(
        name=name, description=description, transcript=transcript, consent=consent_info
    )
    request.update(url=url, start_time=start_time, duration=duration)
    job = IngestJob(owner=owner, kind=IngestJob.Kind.YOUTUBE, request=request)
    _queue(job)
    return job


def _check_job_room(owner: AbstractBaseUser) -> None:
    """Refuse (TooManyJobs) a job beyond the owner's INGEST_JOBS_PER_USER queued or running
    ones. A running job whose heartbeat went stale has lost its worker and does not count, nor
    does a job queued without a broker by a process that has since stopped."""
    stale_before = timezone.now() - timedelta(seconds=settings.INGEST_STALE_SECONDS)
    queued = Q(status=IngestJob.Status.QUEUED)
    if settings.CELERY_TASK_ALWAYS_EAGER:
        queued &= Q(created__gte=EMBEDDED_SINCE)
    in_flight = (
        IngestJob.objects.filter(owner=owner)
        .filter(queued | Q(status=IngestJob.Status.RUNNING, updated__gte=stale_before))
        .count()
    )
    limit = settings.INGEST_JOBS_PER_USER
    if in_flight >= limit:
        raise TooManyJobs(
            f"You already have {limit} cloning job{'s' if limit != 1 else ''} queued or running, "
            "the most one account may have at once. Wait for one to finish "
            "(GET /v1/voice-cloning/jobs/{id}), then try again."
        )


def _queue(job: IngestJob) -> None:
    with transaction.atomic():
        # One owner's job starts take turns from here to the commit (the owner's row locked;
        # SQLite's transactions are serial anyway), so concurrent ones cannot all pass the check.
        list(
            get_user_model()
            .objects.select_for_update()
            .filter(pk=job.owner_id)
            .values_list("pk", flat=True)
        )
        _check_job_room(job.owner)
        # Again under the lock: the check before the upload was stored may have raced another.
        _check_quota(job.owner, upload_bytes=file_size(job.input_audio))
        job.save(force_insert=True)
        # Only once the row is committed can a worker see it.
        transaction.on_commit(lambda: _dispatch(job.id))


def _dispatch(job_id: uuid.UUID) -> None:
    try:
        ingest_job_task.delay(str(job_id))
    except Exception:
        if ingest_job_task.app.conf.task_always_eager:
            # Not handed to the in-process pool (the process is shutting down): the job stays
            # queued, as with a broker no worker reads.
            logger.exception("ingest job %s could not be started", job_id)
            return
        # The broker cannot be reached: no worker will ever see this job. It is taken back
        # (the caller's upload is removed by the caller), and the error answers 503.
        logger.warning("ingest job %s could not be queued", job_id, exc_info=True)
        IngestJob.objects.filter(id=job_id).delete()
        raise
