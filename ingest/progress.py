"""Job progress: saved on the job's row and announced to the job's WebSocket group."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from ingest.models import IngestJob

logger = logging.getLogger(__name__)


def job_group(job_id: object) -> str:
    return f"ingest-job-{job_id}"


def job_event(job: IngestJob) -> dict:
    """What a client is told about a job, over HTTP and over its WebSocket alike."""
    return {
        "id": str(job.id),
        "object": "ingest.job",
        "kind": job.kind,
        "status": job.status,
        "stage": job.stage,
        "progress": job.progress,
        "error": (
            {"message": job.error, "code": job.error_code or None}
            if job.status == IngestJob.Status.FAILED
            else None
        ),
        "voice_id": str(job.voice_id) if job.voice_id else None,
        "created_at": int(job.created.timestamp()),
    }


def job_announce(job: IngestJob) -> None:
    """Tell the job's listeners; a channel layer that is down never fails the job itself."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            job_group(job.id), {"type": "job.update", "job": job_event(job)}
        )
    except Exception:
        logger.warning("could not announce progress of job %s", job.id, exc_info=True)


def job_progress(job: IngestJob, *, stage: str, progress: int) -> None:
    job.stage = stage
    job.progress = progress
    job.save(update_fields=["stage", "progress", "updated"])
    job_announce(job)
