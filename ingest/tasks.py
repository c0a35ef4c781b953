"""The Celery task that runs an ingest job: acknowledged late, retried a bounded number of times."""

from celery import shared_task
from django.conf import settings

from ingest.services import job_fail_unexpectedly, job_run


@shared_task(
    bind=True,
    name="ingest.run_job",
    # Acknowledged only when done: a worker killed mid-job leaves the message to another one.
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
)
def ingest_job_task(self, job_id: str) -> None:
    try:
        job_run(job_id)
    except Exception as exc:
        if self.request.retries >= settings.INGEST_MAX_RETRIES:
            job_fail_unexpectedly(job_id)
            raise
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc
