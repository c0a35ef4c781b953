"""Running a cloning job: fetch the recording, clean it, transcribe it, choose the reference,
store the voice; the job's row says how far it got and how it ended.

Only the task (ingest/tasks.py) runs this: it brings in the audio libraries (torch among them)
that a process which only starts jobs never needs.
"""

import contextlib
import logging
import tempfile
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from ingest import clean, download, transcribe
from ingest.audio import UPLOAD_PARAM, decode_recording
from ingest.errors import IngestError
from ingest.models import IngestJob
from ingest.progress import job_announce, job_progress
from ingest.reference import Reference, choose_reference, reference_from_transcript
from speech.audio.encoder import encode_wav
from speech.audio.formats import SAMPLE_RATE
from voices.models import Voice
from voices.services import voice_store

logger = logging.getLogger(__name__)

FAILED_UNEXPECTEDLY = "The voice could not be made because of a server error; try again later."


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
    except transcribe.TranscriptionUnavailable as exc:
        _finish_failed(job, str(exc), "transcription_unavailable")
        return
    except Exception:
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


# --- The stages ---------------------------------------------------------------------------------


def _fetch(job: IngestJob) -> np.ndarray:
    """The job's recording, decoded: the upload waiting in storage, or the YouTube section."""
    if job.kind == IngestJob.Kind.YOUTUBE:
        job_progress(job, stage="downloading", progress=10)
        request = job.request
        with tempfile.TemporaryDirectory(prefix="ingest-") as directory:
            path = download.download_audio(
                request["url"],
                start=request["start_time"],
                duration=request["duration"],
                dest_dir=Path(directory),
            )
            job_progress(job, stage="decoding", progress=25)
            return download.load_section(
                path,
                start=request["start_time"],
                duration=request["duration"],
                sample_rate=SAMPLE_RATE,
            )
    job_progress(job, stage="decoding", progress=10)
    with job.input_audio.open("rb") as handle:
        data = handle.read()
    return decode_recording(data, param=UPLOAD_PARAM)


def _reference(job: IngestJob, samples: np.ndarray) -> Reference:
    """The cleaned recording's reference window(s), by the caller's transcript or Whisper's."""
    max_seconds = settings.VOICE_REFERENCE_SECONDS
    if job.request.get("transcript"):
        return reference_from_transcript(
            samples, job.request["transcript"], max_seconds=max_seconds, sample_rate=SAMPLE_RATE
        )
    job_progress(job, stage="transcribing", progress=50)
    transcript = transcribe.transcribe(samples, SAMPLE_RATE)
    job_progress(job, stage="choosing_reference", progress=75)
    return choose_reference(
        samples, transcript.segments, max_seconds=max_seconds, sample_rate=SAMPLE_RATE
    )


def _make_voice(job: IngestJob, samples: np.ndarray) -> Voice:
    request = job.request
    job_progress(job, stage="cleaning", progress=30)
    cleaned = clean.clean_audio(samples, SAMPLE_RATE)
    reference = _reference(job, cleaned.samples)
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


# --- How a job ends -----------------------------------------------------------------------------


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
