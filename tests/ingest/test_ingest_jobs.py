"""Cloning jobs: the 202 path, running a job (again), crashes in between, progress over the
WebSocket, and one real Celery worker process.

A job is held in the queue by standing in for the broker (`.delay` only records the job), and
then run by calling `job_run` as a worker would; the real worker test uses Redis and a
`celery worker` subprocess on the test database.
"""

import json
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from csmsite.celery import app as celery_app
from ingest import clean, download, pipeline
from ingest.models import IngestJob
from ingest.pipeline import job_run
from ingest.tasks import ingest_job_task
from tests.support.audio import TRANSCRIPT, encoded, silence
from tests.support.cloning import clone, error_of
from tests.support.processes import Process, database_url
from tests.support.storage import stored_files
from tests.support.websockets import messages_until_closed as read_until_closed
from voices.models import Voice

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]

JOB_KEYS = {
    "id",
    "object",
    "kind",
    "status",
    "stage",
    "progress",
    "error",
    "voice_id",
    "created_at",
}
# Generous bounds that only stop a test that would otherwise hang; nothing is timed.
WAIT = 120


@pytest.fixture
def queue(monkeypatch) -> list[str]:
    """The broker: sending a job only records its id; nothing runs until a test calls job_run."""
    sent: list[str] = []
    monkeypatch.setattr(ingest_job_task, "delay", lambda job_id: sent.append(job_id))
    return sent


@pytest.fixture
def no_wait(settings) -> None:
    """The cloning routes answer at once with whatever state the job is in."""
    settings.INGEST_WAIT_SECONDS = 0


def job_body(api, job_id) -> dict:
    response = api.get(f"/v1/voice-cloning/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


# --- The 202 path ---------------------------------------------------------------------------------


def test_a_clone_that_is_not_done_in_time_answers_202_and_finishes_later(
    api, media_root, queue, no_wait
):
    # when alice clones while no worker has picked up the job
    response = clone(api)

    # then she gets 202 and the queued job, whose upload waits in storage
    assert response.status_code == 202, response.text
    job = response.json()
    assert set(job) == JOB_KEYS
    assert job["object"] == "ingest.job"
    assert (job["kind"], job["status"], job["stage"], job["progress"]) == (
        "upload",
        "queued",
        "queued",
        0,
    )
    assert job["error"] is None
    assert job["voice_id"] is None
    assert queue == [job["id"]]
    assert stored_files(media_root) == [f"ingest/{job['id']}/input"]
    assert job_body(api, job["id"]) == job

    # when a worker runs the job
    job_run(job["id"])

    # then the job has succeeded with the voice, and the upload is gone
    done = job_body(api, job["id"])
    assert (done["status"], done["stage"], done["progress"]) == ("succeeded", "done", 100)
    assert done["voice_id"] == job["id"]  # a job's voice takes the job's id
    assert Voice.objects.get(id=done["voice_id"]).reference_text == TRANSCRIPT
    assert stored_files(media_root) == [f"voices/{done['voice_id']}/reference.wav"]
    listed = api.get("/v1/voice-cloning/voices").json()["voices"]
    assert [voice["id"] for voice in listed] == [done["voice_id"]]


def test_a_failed_job_reports_its_error_on_the_job(api, media_root, queue, no_wait):
    # given a queued job for a silent recording
    response = clone(api, audio=encoded(silence(5.0)))
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    # when it runs
    job_run(job_id)

    # then the job says why it failed, and nothing is left in storage
    failed = job_body(api, job_id)
    assert failed["status"] == "failed"
    assert failed["error"] == {"message": "The recording is silent.", "code": "silent"}
    assert failed["voice_id"] is None
    assert stored_files(media_root) == []


def test_a_youtube_clip_that_is_not_done_in_time_answers_202(
    api, media_root, queue, no_wait, monkeypatch
):
    # given the allowed host resolves to a public address (tests have no DNS)
    validate = download.validate_source_url

    def public_resolver(host, port, *args):
        return [(2, 1, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(
        download, "validate_source_url", lambda url: validate(url, resolver=public_resolver)
    )

    # when alice asks for a section of a video and no worker has picked up the job
    response = api.post(
        "/v1/audio/speech/voice-cloning/youtube",
        json={
            "youtube_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "voice_name": "clip",
            "start_time": 5,
            "duration": 30,
            "consent": True,
        },
    )

    # then the job is queued with the section asked for; nothing has been fetched
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["kind"], job["status"]) == ("youtube", "queued")
    assert queue == [job["id"]]
    stored = IngestJob.objects.get(id=job["id"])
    assert stored.request["url"] == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert (stored.request["start_time"], stored.request["duration"]) == (5.0, 30.0)
    assert stored_files(media_root) == []


def test_a_request_waits_for_a_job_that_a_worker_finishes(api, media_root, monkeypatch):
    """The route polls the job: a worker that finishes it while the caller waits → 200."""
    workers: list[threading.Thread] = []

    def worker(job_id: str) -> None:
        try:
            job_run(job_id)
        finally:
            connection.close()

    def send(job_id: str) -> None:
        thread = threading.Thread(target=worker, args=(job_id,))
        workers.append(thread)
        thread.start()

    monkeypatch.setattr(ingest_job_task, "delay", send)

    response = clone(api)
    for thread in workers:
        thread.join(timeout=WAIT)

    assert response.status_code == 200, response.text
    assert Voice.objects.filter(id=response.json()["id"]).exists()
    assert len(workers) == 1


# --- Running jobs: idempotency and crashes --------------------------------------------------------


@pytest.fixture
def queued_job(api, media_root, queue, no_wait) -> IngestJob:
    """A job for the usual sample, queued and not yet run."""
    response = clone(api)
    assert response.status_code == 202, response.text
    return IngestJob.objects.get(id=response.json()["id"])


def test_running_a_job_twice_makes_one_voice(queued_job, media_root):
    # when the job is delivered twice (acks_late: a redelivery after a lost acknowledgement)
    job_run(queued_job.id)
    first = IngestJob.objects.get(id=queued_job.id)
    job_run(queued_job.id)

    # then there is one voice and the second delivery changed nothing
    assert Voice.objects.filter(kind=Voice.Kind.CLONED).count() == 1
    again = IngestJob.objects.get(id=queued_job.id)
    assert (again.status, again.attempts, again.updated) == ("succeeded", 1, first.updated)
    assert stored_files(media_root) == [f"voices/{queued_job.id}/reference.wav"]


def test_a_job_that_crashed_after_storing_its_voice_is_completed_without_a_second_voice(
    queued_job, media_root, monkeypatch
):
    # given the worker dies right after the voice was stored, before the job was marked done
    finish = pipeline._finish_succeeded

    def crash(job, voice):
        raise SystemExit("worker killed")

    monkeypatch.setattr(pipeline, "_finish_succeeded", crash)
    with pytest.raises(SystemExit):
        job_run(queued_job.id)
    crashed = IngestJob.objects.get(id=queued_job.id)
    assert crashed.status == IngestJob.Status.RUNNING
    assert Voice.objects.filter(id=queued_job.id).exists()
    monkeypatch.setattr(pipeline, "_finish_succeeded", finish)
    # a duplicate delivery while the job looks alive leaves it to its worker
    job_run(queued_job.id)
    assert IngestJob.objects.get(id=queued_job.id).attempts == 1

    # when the job is delivered again once its worker is evidently gone
    IngestJob.objects.filter(id=queued_job.id).update(
        updated=timezone.now() - timedelta(seconds=django_settings.INGEST_STALE_SECONDS + 1)
    )
    job_run(queued_job.id)

    # then it is marked succeeded with the voice it had made, and nothing is duplicated
    done = IngestJob.objects.get(id=queued_job.id)
    assert (done.status, done.voice_id, done.attempts) == ("succeeded", queued_job.id, 2)
    assert Voice.objects.filter(kind=Voice.Kind.CLONED).count() == 1
    assert stored_files(media_root) == [f"voices/{queued_job.id}/reference.wav"]


def test_a_failure_while_storing_the_voice_leaves_no_file_and_a_retry_succeeds(
    queued_job, media_root, monkeypatch
):
    # given the database refuses the voice's row after its file was written
    save = Voice.save
    written: list[list[str]] = []

    def refuse(self, *args, **kwargs):
        written.append(stored_files(media_root))
        raise RuntimeError("the database went away")

    monkeypatch.setattr(Voice, "save", refuse)

    # when the job runs
    with pytest.raises(RuntimeError, match="went away"):
        job_run(queued_job.id)

    # then the file that had been written is gone again, with no row; the upload waits
    assert f"voices/{queued_job.id}/reference.wav" in written[0]
    assert not Voice.objects.exists()
    assert stored_files(media_root) == [f"ingest/{queued_job.id}/input"]
    # back in the queue for the task's retry
    assert IngestJob.objects.get(id=queued_job.id).status == IngestJob.Status.QUEUED

    # and a retry makes the voice
    monkeypatch.setattr(Voice, "save", save)
    job_run(queued_job.id)
    assert IngestJob.objects.get(id=queued_job.id).status == IngestJob.Status.SUCCEEDED
    assert stored_files(media_root) == [f"voices/{queued_job.id}/reference.wav"]


def test_an_unexpected_error_fails_the_job_after_its_retries_without_details(
    api, media_root, settings, monkeypatch
):
    # given no retries, and a pipeline stage that breaks
    settings.INGEST_MAX_RETRIES = 0

    def broken(*args, **kwargs):
        raise ValueError("internal detail /srv/secret/path")

    monkeypatch.setattr(clean, "clean_audio", broken)

    # when alice clones
    response = clone(api)

    # then she gets a server error without the detail, and nothing is stored
    assert response.status_code == 500, response.text
    error = error_of(response)
    assert error["code"] == "server_error"
    assert "/srv/secret" not in response.text
    job = IngestJob.objects.get()
    assert (job.status, job.error_code) == ("failed", "server_error")
    assert stored_files(media_root) == []


# --- Progress over the WebSocket ------------------------------------------------------------------


def ws_url(live_server_url: str, job_id: object) -> str:
    return f"{live_server_url.replace('http://', 'ws://')}/ws/jobs/{job_id}/"


@contextmanager
def job_socket(
    live_server_url: str, job_id: object, key: str | None, *, origin: str | None = "same-site"
) -> Iterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with connect(
        ws_url(live_server_url, job_id),
        additional_headers=headers,
        origin=live_server_url if origin == "same-site" else origin,
        open_timeout=WAIT,
        close_timeout=10,
    ) as ws:
        yield ws


def messages_until_closed(ws: ClientConnection) -> tuple[list[dict], int | None]:
    return read_until_closed(ws, timeout=WAIT)


def test_websocket_reports_progress_until_the_job_finishes(
    api, live_server_url, alice_key, media_root, monkeypatch
):
    # given the job stops at its cleaning stage until the test lets it go on
    clean_audio = clean.clean_audio
    cleaning, go_on = threading.Event(), threading.Event()

    def gated(*args, **kwargs):
        cleaning.set()
        go_on.wait(timeout=WAIT)
        return clean_audio(*args, **kwargs)

    monkeypatch.setattr(clean, "clean_audio", gated)
    result: dict = {}
    poster = threading.Thread(target=lambda: result.update(response=clone(api)))
    poster.start()
    try:
        assert cleaning.wait(timeout=WAIT)
        job = IngestJob.objects.get()

        # when alice follows the job over its WebSocket
        with job_socket(live_server_url, job.id, alice_key) as ws:
            first = json.loads(ws.recv(timeout=WAIT))
            go_on.set()
            updates, code = messages_until_closed(ws)
    finally:
        go_on.set()
        poster.join(timeout=WAIT)

    # then she hears the state it is in, each later step, and the end; then it closes
    assert set(first) == JOB_KEYS
    assert (first["id"], first["status"], first["stage"]) == (str(job.id), "running", "cleaning")
    steps = [(u["status"], u["stage"], u["progress"]) for u in updates]
    assert steps == [("running", "storing", 90), ("succeeded", "done", 100)]
    assert updates[-1]["voice_id"] == str(job.id)
    assert code == 1000
    assert result["response"].status_code == 200, result["response"].text
    assert result["response"].json()["id"] == updates[-1]["voice_id"]


def test_websocket_of_a_finished_job_sends_its_state_and_closes(
    api, live_server_url, alice_key, media_root
):
    response = clone(api)
    assert response.status_code == 200, response.text
    job = IngestJob.objects.get()

    with job_socket(live_server_url, job.id, alice_key) as ws:
        messages, code = messages_until_closed(ws)

    assert messages == [job_body(api, job.id)]
    assert messages[0]["status"] == "succeeded"
    assert code == 1000


def test_websocket_refuses_another_users_job_like_a_missing_one(
    api, live_server_url, bob_key, media_root, queue, no_wait
):
    response = clone(api)
    job_id = response.json()["id"]

    codes = []
    for target in (job_id, uuid.uuid4(), "not-a-job"):
        with job_socket(live_server_url, target, bob_key) as ws:
            messages, code = messages_until_closed(ws)
        assert messages == []
        codes.append(code)

    assert codes == [4404, 4404, 4404]


@pytest.mark.parametrize("key", [None, "sk-not-a-real-key"])
def test_websocket_refuses_a_connection_without_a_valid_key(
    api, live_server_url, media_root, queue, no_wait, key
):
    job_id = clone(api).json()["id"]

    with job_socket(live_server_url, job_id, key) as ws:
        messages, code = messages_until_closed(ws)

    assert messages == []
    assert code == 4401


def test_websocket_refuses_a_page_of_another_site(
    api, live_server_url, alice_key, media_root, queue, no_wait
):
    """A browser sends its session cookie along: a page of another site must not get in."""
    job_id = clone(api).json()["id"]

    with pytest.raises(InvalidStatus) as refused:
        with job_socket(live_server_url, job_id, alice_key, origin="https://evil.example"):
            pass

    assert refused.value.response.status_code == 403


def test_websocket_accepts_a_script_that_sends_no_origin(
    api, live_server_url, alice_key, media_root, queue, no_wait
):
    job_id = clone(api).json()["id"]

    with job_socket(live_server_url, job_id, alice_key, origin=None) as ws:
        first = json.loads(ws.recv(timeout=WAIT))

    assert first["id"] == job_id


# --- A real worker --------------------------------------------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"),
    reason="needs a broker: set REDIS_URL (CI does) to run a real Celery worker",
)
def test_a_real_celery_worker_makes_the_voice(api, media_root, settings, monkeypatch, tmp_path):
    # given the request sends its job to Redis, where a worker process on the test database
    # and the same storage picks it up
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    settings.INGEST_WAIT_SECONDS = 300
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "MEDIA_ROOT": str(media_root),
        "VAR_DIR": str(settings.VAR_DIR),
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "csmsite",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
        f"--hostname=cloning-test-{uuid.uuid4().hex[:8]}@%h",
    ]
    worker = Process("celery worker", command, env, log_path)
    try:
        # when alice clones
        response = clone(api)

        # then the answer is the voice, made by the worker (not in this process)
        assert response.status_code == 200, response.text
        voice_id = response.json()["id"]
        job = IngestJob.objects.get(id=voice_id)
        assert (job.status, job.attempts) == ("succeeded", 1)
        assert Voice.objects.get(id=voice_id).reference_text == TRANSCRIPT
        assert stored_files(media_root) == [f"voices/{voice_id}/reference.wav"]
        assert worker.alive(), "the worker exited"
        assert "ingest.run_job[" in worker.output()
    except BaseException:
        print(f"--- celery worker output ---\n{worker.output()}")
        raise
    finally:
        worker.stop()
