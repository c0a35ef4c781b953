"""Cloning a voice: requests become jobs, jobs run the pipeline and end in a voice or an error.

Everything a caller can get wrong is checked before a job exists (name, consent, file type and
size, URL), so a refusal is an immediate 400 and nothing is fetched or stored. The rest (decode,
clean, transcribe, choose the reference, store) runs in a job, in a Celery worker or in-process.
"""

import contextlib
import logging
import tempfile
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from ingest.audio import check_upload, decode_recording
from ingest.errors import IngestError
from ingest.models import IngestJob
from ingest.progress import job_announce, job_progress
from speech.audio.encoder import encode_wav
from speech.audio.formats import SAMPLE_RATE
from voices.models import Voice, VoiceConsent
from voices.services import voice_store

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 1000
MAX_TRANSCRIPT_CHARS = 4000
FAILED_UNEXPECTEDLY = "The voice could not be made because of a server error; try again later."


# --- Starting jobs ------------------------------------------------------------------------------


def consent_resolve(*, owner: AbstractBaseUser, consent: Any, param: str = "consent") -> dict:
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
                param=param,
            )
        return {"method": "consent_recording", "recording": recording.id}
    if not settings.VOICE_REQUIRE_CONSENT:
        return {"method": "not_required", "recording": None}
    raise IngestError(
        "Cloning a voice needs consent: send consent=true to attest that you have the right to "
        "clone this voice (or the id of a voice consent recording).",
        code="consent_required",
        param=param,
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


def job_start_upload(
    *,
    owner: AbstractBaseUser,
    name: str,
    upload: UploadedFile,
    transcript: str = "",
    description: str = "",
    consent: Any = None,
    name_param: str = "name",
    file_param: str = "audio_file",
    consent_param: str = "consent",
) -> IngestJob:
    """Check a cloning upload and queue its job; the upload waits in storage for the job."""
    name = _check_name(owner, name, name_param)
    consent_info = consent_resolve(owner=owner, consent=consent, param=consent_param)
    head = upload.read(16)
    upload.seek(0)
    check_upload(head, upload.size or 0, param=file_param)
    job = IngestJob(
        owner=owner,
        kind=IngestJob.Kind.UPLOAD,
        request={
            "name": name,
            "description": description.strip()[:MAX_DESCRIPTION_CHARS],
            "transcript": transcript.strip()[:MAX_TRANSCRIPT_CHARS],
            "consent": consent_info,
            "file_param": file_param,
        },
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
    from ingest.download import validate_source_url

    name = _check_name(owner, name, "voice_name")
    consent_info = consent_resolve(owner=owner, consent=consent)
    if duration > settings.YOUTUBE_MAX_DURATION_SECONDS:
        raise IngestError(
            f"The duration is at most {settings.YOUTUBE_MAX_DURATION_SECONDS:g} seconds.",
            code="duration_too_long",
            param="duration",
        )
    url = validate_source_url(url)
    job = IngestJob(
        owner=owner,
        kind=IngestJob.Kind.YOUTUBE,
        request={
            "name": name,
            "description": description.strip()[:MAX_DESCRIPTION_CHARS],
            "transcript": transcript.strip()[:MAX_TRANSCRIPT_CHARS],
            "consent": consent_info,
            "url": url,
            "start_time": start_time,
            "duration": duration,
        },
    )
    _queue(job)
    return job


def _queue(job: IngestJob) -> None:
    with transaction.atomic():
        job.save(force_insert=True)
        # Only once the row is committed can a worker see it.
        transaction.on_commit(lambda: _dispatch(job.id))


def _dispatch(job_id: uuid.UUID) -> None:
    from ingest.tasks import ingest_job_task

    try:
        ingest_job_task.delay(str(job_id))
    except Exception:
        if ingest_job_task.app.conf.task_always_eager:
            # Run in-process, the task has already marked the job failed.
            logger.exception("ingest job %s did not complete", job_id)
            return
        # The broker cannot be reached: no worker will ever see this job. It is taken back
        # (the caller's upload is removed by the caller), and the error answers 503.
        logger.warning("ingest job %s could not be queued", job_id, exc_info=True)
        IngestJob.objects.filter(id=job_id).delete()
        raise


# --- Running jobs -------------------------------------------------------------------------------


def job_run(job_id: uuid.UUID | str) -> None:
    """Run a job to its end. Idempotent: a finished job is left alone, and a job retried after
    a crash writes its voice under the same id and storage keys, so nothing is duplicated.

    IngestError ends the job as failed with its message; other errors propagate (the task
    retries them a bounded number of times, then calls `job_fail_unexpectedly`).
    """
    job = _claim(job_id)
    if job is None:
        return
    made = Voice.objects.filter(id=job.id).first()
    if made is not None:
        # An earlier attempt stored the voice and stopped before marking the job done.
        _finish_succeeded(job, made)
        return
    try:
        with _heartbeat(job.id):
            samples = _fetch(job)
            voice = _make_voice(job, samples)
    except IngestError as exc:
        _finish_failed(job, exc.message, exc.code, exc.param)
        return
    except Exception as exc:
        from ingest.transcribe import TranscriptionUnavailable

        if isinstance(exc, TranscriptionUnavailable):
            _finish_failed(job, str(exc), "transcription_unavailable")
            return
        # Back in the queue, so that the task's retry may claim it again.
        IngestJob.objects.filter(id=job.id, status=IngestJob.Status.RUNNING).update(
            status=IngestJob.Status.QUEUED
        )
        raise
    _finish_succeeded(job, voice)


def job_fail_unexpectedly(job_id: uuid.UUID | str) -> None:
    job = IngestJob.objects.filter(id=job_id).first()
    if job is not None and not job.is_finished:
        _finish_failed(job, FAILED_UNEXPECTEDLY, "server_error")


def job_is_running(job_id: uuid.UUID | str) -> bool:
    """Whether the job is marked running (by a worker that still beats, or that died since)."""
    return IngestJob.objects.filter(id=job_id, status=IngestJob.Status.RUNNING).exists()


@contextlib.contextmanager
def _heartbeat(job_id: uuid.UUID) -> Iterator[None]:
    """Touch the running job's row every INGEST_HEARTBEAT_SECONDS while the body runs, so that
    a delivery of the same job elsewhere can tell a live worker from a dead one."""
    if transaction.get_connection().in_atomic_block:
        # Run inside a transaction (tests): no other connection could see the beat anyway.
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.INGEST_HEARTBEAT_SECONDS):
                try:
                    IngestJob.objects.filter(id=job_id, status=IngestJob.Status.RUNNING).update(
                        updated=timezone.now()
                    )
                except Exception:
                    logger.warning("heartbeat of job %s failed", job_id, exc_info=True)
        finally:
            connections.close_all()

    thread = threading.Thread(target=beat, name=f"ingest-heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _claim(job_id: uuid.UUID | str) -> IngestJob | None:
    """The job, marked running by this worker; None when it is finished or another worker is
    running it (a duplicate delivery). A running job whose heartbeat stopped for
    INGEST_STALE_SECONDS is taken over: its worker died."""
    stale_before = timezone.now() - timedelta(seconds=settings.INGEST_STALE_SECONDS)
    with transaction.atomic():
        job = IngestJob.objects.select_for_update().filter(id=job_id).first()
        if job is None or job.is_finished:
            return None
        if job.status == IngestJob.Status.RUNNING and job.updated > stale_before:
            return None
        job.status = IngestJob.Status.RUNNING
        job.attempts += 1
        job.save(update_fields=["status", "attempts", "updated"])
    job_announce(job)
    return job


def _fetch(job: IngestJob):
    if job.kind == IngestJob.Kind.YOUTUBE:
        from ingest.download import download_audio, load_section

        job_progress(job, stage="downloading", progress=10)
        request = job.request
        with tempfile.TemporaryDirectory(prefix="ingest-") as directory:
            path = download_audio(
                request["url"],
                start=request["start_time"],
                duration=request["duration"],
                dest_dir=Path(directory),
            )
            job_progress(job, stage="decoding", progress=25)
            return load_section(
                path,
                start=request["start_time"],
                duration=request["duration"],
                sample_rate=SAMPLE_RATE,
            )
    job_progress(job, stage="decoding", progress=10)
    with job.input_audio.open("rb") as handle:
        data = handle.read()
    return decode_recording(data, param=job.request.get("file_param", "audio_file"))


def _make_voice(job: IngestJob, samples) -> Voice:
    from ingest.clean import clean_audio
    from ingest.reference import choose_reference, reference_from_transcript

    request = job.request
    job_progress(job, stage="cleaning", progress=30)
    cleaned = clean_audio(samples, SAMPLE_RATE)
    max_seconds = settings.VOICE_REFERENCE_SECONDS
    if request.get("transcript"):
        reference = reference_from_transcript(
            cleaned.samples, request["transcript"], max_seconds=max_seconds, sample_rate=SAMPLE_RATE
        )
    else:
        from ingest.transcribe import transcribe

        job_progress(job, stage="transcribing", progress=50)
        transcript = transcribe(cleaned.samples, SAMPLE_RATE)
        job_progress(job, stage="choosing_reference", progress=75)
        reference = choose_reference(
            cleaned.samples, transcript.segments, max_seconds=max_seconds, sample_rate=SAMPLE_RATE
        )
    job_progress(job, stage="storing", progress=90)
    consent = request.get("consent") or {}
    voice = Voice(
        # The job's id: a retry of the same job makes the same voice, never a second one.
        id=job.id,
        owner=job.owner,
        name=request["name"],
        kind=Voice.Kind.CLONED,
        source=Voice.Source.YOUTUBE if job.kind == IngestJob.Kind.YOUTUBE else Voice.Source.UPLOAD,
        source_url=request.get("url", ""),
        description=request.get("description", ""),
        reference_text=reference.text,
        duration_seconds=reference.samples.size / SAMPLE_RATE,
        consent_by=job.owner,
        consent_at=job.created,
        consent_method=consent.get("method", ""),
        consent_recording_id=consent.get("recording"),
    )
    original = None
    if settings.VOICE_KEEP_ORIGINALS and job.input_audio:
        with job.input_audio.open("rb") as handle:
            original = handle.read()
    Voice.objects.filter(id=job.id).delete()  # a half-finished earlier attempt, if any
    try:
        return voice_store(
            voice=voice, reference_wav=encode_wav(reference.samples, SAMPLE_RATE), original=original
        )
    except IntegrityError as exc:
        raise IngestError(
            f"You already have a voice named '{voice.name}'.", code="name_taken", param="name"
        ) from exc


def _finish_succeeded(job: IngestJob, voice: Voice) -> None:
    input_name = job.input_audio.name
    storage = job.input_audio.storage
    job.voice = voice
    job.status = IngestJob.Status.SUCCEEDED
    job.stage = "done"
    job.progress = 100
    job.input_audio = ""
    job.save(update_fields=["voice", "status", "stage", "progress", "input_audio", "updated"])
    if input_name:
        storage.delete(input_name)
    job_announce(job)


def _finish_failed(job: IngestJob, message: str, code: str, param: str | None = None) -> None:
    input_name = job.input_audio.name
    storage = job.input_audio.storage
    job.status = IngestJob.Status.FAILED
    job.error = message
    job.error_code = code
    job.error_param = param or ""
    job.input_audio = ""
    job.save(
        update_fields=["status", "error", "error_code", "error_param", "input_audio", "updated"]
    )
    if input_name:
        storage.delete(input_name)
    job_announce(job)


# --- Consents (OpenAI's voice consent recordings) -----------------------------------------------


def consent_create(
    *, owner: AbstractBaseUser, name: str, language: str, recording: UploadedFile
) -> VoiceConsent:
    """Store a consent recording (checked to be real audio) and its row, together."""
    data = recording.read()
    check_upload(data[:16], len(data), param="recording")
    decode_recording(data, param="recording")
    consent = VoiceConsent(
        id=f"cons_{uuid.uuid4().hex}", owner=owner, name=name.strip(), language=language.strip()
    )
    field = consent.recording
    field.name = field.storage.save(field.field.generate_filename(consent, ""), ContentFile(data))
    try:
        consent.save(force_insert=True)
    except BaseException:
        field.storage.delete(field.name)
        raise
    return consent
