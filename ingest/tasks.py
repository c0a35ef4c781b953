"""The Celery task that runs an ingest job: acknowledged late, retried a bounded number of times."""

from celery import shared_task
from django.conf import settings


@shared_task(
    bind=True,
    name="ingest.run_job",
    # Acknowledged only when done: a worker killed mid-job leaves the message to another one.
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
)
def ingest_job_task(self, job_id: str) -> None:
    # Deferred: the pipeline loads torch, which a process that only queues jobs never needs.
    from ingest import pipeline

    try:
        pipeline.job_run(job_id)
    except Exception as exc:
        if self.request.retries >= settings.INGEST_MAX_RETRIES:
            pipeline.job_fail_unexpectedly(job_id)
            raise
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc
    if not self.request.is_eager and pipeline.job_is_running(job_id):
        # Another worker holds the job: a duplicate delivery, or the redelivery of a job whose
        # worker was killed a moment ago and whose heartbeat has not gone stale yet. Look again
        # once it would have: the job is then finished, still beating, or taken over here.
        self.apply_async(
            (job_id,),
            countdown=settings.INGEST_STALE_SECONDS + settings.INGEST_HEARTBEAT_SECONDS,
        )
