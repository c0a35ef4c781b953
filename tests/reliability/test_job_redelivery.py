"""The delivery of a job that another worker holds: left alone while that worker's heartbeat is
fresh, looked at again once it would have gone stale, and then taken over if the worker is gone.
(test_worker_killed.py does this with real workers; here each step is checked on its own.)
"""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from ingest.jobs import job_start_upload
from ingest.models import IngestJob
from ingest.tasks import ingest_job_task
from tests.support.audio import TRANSCRIPT, sample_wav
from tests.support.storage import stored_files
from voices.models import Voice

pytestmark = [pytest.mark.system, pytest.mark.django_db]


def test_a_job_held_by_a_beating_worker_is_looked_at_again_and_taken_over_once_stale(
    alice, media_root, settings, monkeypatch
):
    # given a job that a worker took, and whose heartbeat is fresh
    settings.INGEST_HEARTBEAT_SECONDS = 10
    settings.INGEST_STALE_SECONDS = 60
    job = job_start_upload(
        owner=alice,
        name="narrator",
        upload=SimpleUploadedFile("sample.wav", sample_wav(), "audio/wav"),
        transcript=TRANSCRIPT,
        consent=True,
    )
    IngestJob.objects.filter(id=job.id).update(status="running", attempts=1)
    sent: list[tuple] = []
    monkeypatch.setattr(
        ingest_job_task, "apply_async", lambda args, countdown: sent.append((args, countdown))
    )

    # when its message is delivered again (a redelivery after the worker was killed)
    ingest_job_task.run(str(job.id))

    # then the job is left to that worker, and looked at again once its heartbeat would be stale
    assert IngestJob.objects.get(id=job.id).attempts == 1
    assert not Voice.objects.exists()
    assert sent == [((str(job.id),), 70)]

    # when it is looked at again and the heartbeat did stop
    IngestJob.objects.filter(id=job.id).update(updated=timezone.now() - timedelta(seconds=61))
    ingest_job_task.run(str(job.id))

    # then this delivery takes it over and completes it, once
    done = IngestJob.objects.get(id=job.id)
    assert (done.status, done.attempts, done.voice_id) == ("succeeded", 2, job.id)
    assert len(sent) == 1
    assert stored_files(media_root) == [f"voices/{job.id}/reference.wav"]
