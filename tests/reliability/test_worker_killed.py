"""A Celery worker killed (SIGKILL) in the middle of a cloning job: once a worker is back, the
job completes exactly once: one voice, its file, no file left over.

The broker is a private redis-server; the server and the workers are real processes on the
test database. The worker's job waits at a gate (gated_worker.py), so the kill lands where the
test says: before anything was written, or between the reference file and its row.
"""

import os
import signal
from pathlib import Path

import httpx
import pytest

from ingest.models import IngestJob
from tests.support.audio import TRANSCRIPT, sample_wav
from tests.support.processes import HANG_SECONDS, wait_until
from tests.support.storage import stored_files
from voices.models import Voice

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]

# Short heartbeats and a short visibility timeout, so that a dead worker's job is taken over in
# seconds rather than the production minutes. A killed pool process's job is redelivered within
# seconds: a delivery that finds the heartbeat still fresh leaves the job and looks again once it
# is stale (test_job_redelivery.py), one that finds it stale takes the job over.
FAST_RECOVERY = {
    "INGEST_HEARTBEAT_SECONDS": "0.2",
    "INGEST_STALE_SECONDS": "3",
    "CELERY_VISIBILITY_TIMEOUT": "3",
}


def pool_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


@pytest.mark.parametrize(
    ("victim", "gate_at"),
    [
        ("pool process", "clean"),
        ("whole worker", "clean"),
        ("whole worker", "save"),
    ],
)
def test_a_job_whose_worker_is_killed_completes_exactly_once(
    victim, gate_at, private_redis, start_server, start_worker, api_key, media_root, tmp_path
):
    # given a server and a worker on a broker, the worker's jobs held at a gate
    gate = tmp_path / "gate"
    gate.touch()
    env = {
        "REDIS_URL": private_redis.url,
        "INGEST_WAIT_SECONDS": "0",
        "RELIABILITY_GATE": str(gate),
        "RELIABILITY_GATE_AT": gate_at,
        **FAST_RECOVERY,
    }
    server = start_server(**env)
    worker = start_worker(gated=True, **env)

    # and alice's clone, accepted and queued
    with httpx.Client(base_url=server.url, timeout=HANG_SECONDS) as client:
        response = client.post(
            "/v1/voice-cloning/clone",
            headers={"Authorization": f"Bearer {api_key}"},
            data={"name": "narrator", "transcript": TRANSCRIPT, "consent": "true"},
            files={"audio_file": ("sample.wav", sample_wav(), "audio/wav")},
        )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    # and the worker in the middle of it
    stage = "cleaning" if gate_at == "clean" else "storing"
    wait_until(
        lambda: IngestJob.objects.filter(id=job_id, status="running", stage=stage).exists(),
        timeout=HANG_SECONDS,
        what=f"the worker to reach {stage}",
    )
    reference = f"voices/{job_id}/reference.wav"
    if gate_at == "save":
        # the reference file is written; its row is not
        wait_until(
            lambda: reference in stored_files(media_root),
            timeout=HANG_SECONDS,
            what="the reference file",
        )
        assert not Voice.objects.filter(id=job_id).exists()

    # (its first attempt, cut off in the middle when the worker is killed now)
    job = IngestJob.objects.get(id=job_id)
    assert (job.status, job.attempts, job.voice_id) == ("running", 1, None)

    # when the worker is killed
    if victim == "pool process":
        (child,) = pool_children(worker.pid)
        os.kill(child, signal.SIGKILL)
    else:
        worker.kill_group()
    gate.unlink()

    # and once a worker is back (a killed pool process is replaced by its worker)
    if victim == "whole worker":
        start_worker(gated=True, **env)
    job = wait_until(
        lambda: IngestJob.objects.filter(id=job_id, status__in=["succeeded", "failed"]).first(),
        timeout=HANG_SECONDS,
        what="the job to finish",
    )

    # then it completed once, as one voice whose file is the only file left
    assert (job.status, job.attempts, str(job.voice_id)) == ("succeeded", 2, job_id), job.error
    assert Voice.objects.count() == 1
    assert Voice.objects.get().reference_audio.name == reference
    assert stored_files(media_root) == [reference]
