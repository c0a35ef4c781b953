"""The Celery task that runs an ingest job: acknowledged late, retried a bounded number of times.

Without a broker (CELERY_TASK_ALWAYS_EAGER, the embedded default) a job still runs in the
background: sending it hands it to this process's own pool of INGEST_EMBEDDED_WORKERS threads.
Never to the event loop's default executor, which decodes requests' audio (conversation
context, watermark uploads) and starts jobs: however many jobs wait, requests do not wait
behind them.
"""

import asyncio
import contextvars
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import connections
from django.utils import timezone

logger = logging.getLogger(__name__)

EMBEDDED_THREAD_PREFIX = "ingest-job"
# Without a broker a queued job lives only in this process's pool: one queued before this
# process started was lost with the process that queued it and will never run.
EMBEDDED_SINCE = timezone.now()

# Jobs handed to the embedded pool and not yet finished, by job id.
_embedded: dict[str, Future] = {}
_embedded_lock = threading.Lock()


@cache
def _embedded_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=settings.INGEST_EMBEDDED_WORKERS,
        thread_name_prefix=EMBEDDED_THREAD_PREFIX,
        initializer=_lower_priority,
        initargs=(settings.INGEST_EMBEDDED_NICE,),
    )


def _lower_priority(increment: int) -> None:
    """Make this pool thread `increment` nicer than the server, so that it yields the CPU to the
    request path (speech, decoding).

    A job's numeric work (resampling, cleaning, transcribing) would otherwise take the cores
    that another user's request needs. On Linux a thread has a nice value of its own, and the
    threads it starts (torch's OpenMP team for this thread) inherit it; elsewhere the call would
    lower the whole process, so it is skipped.
    """
    if increment <= 0 or sys.platform != "linux":
        return
    thread = threading.get_native_id()
    try:
        nice = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, nice + increment))
    except OSError:
        logger.warning("could not lower the priority of embedded ingest jobs", exc_info=True)


def _run_embedded(run: Callable[[], Any], job_id: str) -> None:
    try:
        run()
    except Exception:
        # The task has marked the job failed; nobody waits on this thread to be told.
        logger.exception("ingest job %s did not complete", job_id)
    finally:
        # A pool thread may not touch the database again for a long while.
        connections.close_all()


class IngestJobTask(Task):
    """Sent to the broker, or, when tasks run eagerly, to the embedded pool."""

    def apply_async(self, args=None, kwargs=None, task_id=None, producer=None, **options):
        send = super().apply_async
        if not self.app.conf.task_always_eager:
            return send(args, kwargs, task_id, producer, **options)
        job_id = str((args or (None,))[0])

        def run() -> Any:
            return send(args, kwargs, task_id, producer, **options)

        # The job's log lines carry the request's id (a contextvar) too.
        future = _embedded_executor().submit(
            contextvars.copy_context().run, _run_embedded, run, job_id
        )
        with _embedded_lock:
            _embedded[job_id] = future
        future.add_done_callback(lambda _: _forget(job_id, future))
        return future


def _forget(job_id: str, future: Future) -> None:
    with _embedded_lock:
        if _embedded.get(job_id) is future:
            del _embedded[job_id]


def embedded_jobs_preload() -> None:
    """Without a broker, load the cleaning stack (torch, noisereduce, the VAD model) now, on the
    job pool, rather than inside the first job.

    Importing it holds the interpreter lock for seconds: done by the first job, that stalls
    every request the server is answering meanwhile. Done as the server starts, nobody waits.
    The downloader (yt-dlp) stays unloaded until a YouTube job needs it.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        _embedded_executor().submit(_preload_cleaning)


def _preload_cleaning() -> None:
    try:
        # Deferred: only a process that runs jobs itself loads torch for them.
        from ingest.clean import clean_preload

        clean_preload()
    except Exception:
        # The first job will load it again and fail with a job error if it still cannot.
        logger.warning("could not preload the cleaning stack for clone jobs", exc_info=True)


async def embedded_job_wait(job_id: uuid.UUID | str, *, timeout: float) -> None:
    """Wait (at most `timeout` seconds) for a job this process runs itself to finish; at once
    when it runs elsewhere or has finished."""
    with _embedded_lock:
        future = _embedded.get(str(job_id))
    if future is None:
        return
    try:
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
    except TimeoutError:
        pass


@shared_task(
    bind=True,
    base=IngestJobTask,
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
