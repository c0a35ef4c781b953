"""Cloning jobs cannot starve the request path, and one user runs a bounded number at once.

Embedded (no broker), jobs run on a pool of their own (INGEST_EMBEDDED_WORKERS), never on the
event loop's default executor that decodes requests' audio and starts jobs: with more jobs
blocked than that executor has threads, other users' requests still complete. A user with
INGEST_JOBS_PER_USER jobs queued or running is refused the next (429 too_many_jobs), with a
broker too. Jobs are held by a gate in a stand-in pipeline; nothing is timed (the waits below
only stop a test that would otherwise hang).
"""

import base64
import os
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from ingest import clean, download, pipeline, tasks
from ingest.models import IngestJob
from ingest.tasks import ingest_job_task
from tests.support.audio import TRANSCRIPT, encoded, sample_wav, tone
from tests.support.cloning import clone, error_of
from tests.support.processes import wait_until
from tests.support.storage import stored_files

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]

# Bounds that only stop a test that would otherwise hang; nothing is timed.
WAIT = 60
# The threads of the event loop's default executor (Python's default pool size), and more
# jobs than that.
DEFAULT_POOL_THREADS = min(32, (os.cpu_count() or 1) + 4)
BLOCKED_JOBS = DEFAULT_POOL_THREADS + 2


class Gate:
    """The pipeline's stand-in: each job waits here until the gate opens, and says on which
    thread it ran."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.threads: list[str] = []
        # The nice value each job ran at (Linux: a thread's own).
        self.nice: list[int] = []
        self._lock = threading.Lock()

    def job_run(self, job_id: str) -> None:
        with self._lock:
            self.threads.append(threading.current_thread().name)
            self.nice.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        self.opened.wait(WAIT)

    @property
    def entered(self) -> int:
        with self._lock:
            return len(self.threads)


@pytest.fixture
def gate(monkeypatch, settings) -> Iterator[Gate]:
    gate = Gate()
    monkeypatch.setattr(pipeline, "job_run", gate.job_run)
    settings.INGEST_WAIT_SECONDS = 0
    yield gate
    gate.opened.set()
    # Every job handed to the pool has finished before the next test's database exists.
    wait_until(lambda: not tasks._embedded, timeout=WAIT, what="the jobs to finish")


@pytest.fixture
def queue(monkeypatch, settings) -> list[str]:
    """A broker no worker reads: jobs sent stay queued."""
    sent: list[str] = []
    monkeypatch.setattr(ingest_job_task, "delay", lambda job_id: sent.append(job_id))
    settings.INGEST_WAIT_SECONDS = 0
    return sent


def client_of(live_server_url: str, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=live_server_url, headers={"Authorization": f"Bearer {key}"}, timeout=WAIT
    )


def clones_sent(
    live_server_url: str, key: str, count: int
) -> tuple[list[threading.Thread], list[httpx.Response]]:
    """`count` clone requests sent at once, each on its own connection: the threads sending
    them, and the answers as they come."""
    responses: list[httpx.Response] = []

    def start(index: int) -> None:
        with client_of(live_server_url, key) as client:
            responses.append(clone(client, name=f"voice {index}"))

    threads = [threading.Thread(target=start, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads, responses


def answered(threads: list[threading.Thread], responses: list[httpx.Response]):
    for thread in threads:
        thread.join(WAIT)
    assert len(responses) == len(threads), "the clone requests did not all answer"
    return responses


def clones_in_parallel(live_server_url: str, key: str, count: int) -> list[httpx.Response]:
    """`count` clone requests at once, each on its own connection, once all have answered."""
    return answered(*clones_sent(live_server_url, key, count))


# --- jobs do not starve requests --------------------------------------------------------------


def conversation_with_context(api: httpx.Client) -> httpx.Response:
    audio = base64.b64encode(encoded(tone(1.0))).decode()
    return api.post(
        "/v1/audio/conversation",
        json={
            "text": "And now?",
            "context": [{"speaker": 0, "text": "Hello there.", "audio": audio}],
            "response_format": "wav",
            "max_audio_length_ms": 500,
        },
    )


@pytest.mark.parametrize("other_request", ["conversation", "clone", "clone under /api/v1"])
def test_jobs_blocked_in_the_pipeline_do_not_hold_up_another_users_request(
    request, live_server_url, bob_key, api, media_root, gate, settings, other_request
):
    # given bob has more jobs blocked in the pipeline than the event loop's default pool has
    # threads (the bound per user raised for him)
    settings.INGEST_JOBS_PER_USER = 100
    if other_request == "conversation":
        request.getfixturevalue("csm_engine")
    sending = clones_sent(live_server_url, bob_key, BLOCKED_JOBS)
    wait_until(
        lambda: (
            IngestJob.objects.filter(owner__username="bob").count() >= DEFAULT_POOL_THREADS
            and gate.entered >= settings.INGEST_EMBEDDED_WORKERS
        ),
        timeout=WAIT,
        what="bob's jobs to be started and the first ones blocked",
    )

    # when alice makes a request that needs a worker thread (a conversation's context is
    # decoded on one, a clone is checked and stored on one)
    if other_request == "conversation":
        response = conversation_with_context(api)
        expected = 200
    else:
        prefix = "/api/v1" if "/api/v1" in other_request else "/v1"
        response = clone(api, name="alice's voice", prefix=prefix)
        expected = 202
    # then it is answered while bob's jobs are still blocked
    assert response.status_code == expected, response.text
    assert not gate.opened.is_set()
    # and so were bob's requests: his jobs wait their turn
    assert [r.status_code for r in answered(*sending)] == [202] * BLOCKED_JOBS
    # and no job ran anywhere but the jobs' own pool, which never grew past its size
    assert gate.entered == settings.INGEST_EMBEDDED_WORKERS
    assert all(name.startswith(tasks.EMBEDDED_THREAD_PREFIX) for name in gate.threads)


def test_queued_embedded_jobs_all_run_once_the_pool_frees(live_server_url, bob_key, gate, settings):
    settings.INGEST_JOBS_PER_USER = 100
    clones_in_parallel(live_server_url, bob_key, 5)
    wait_until(lambda: gate.entered == settings.INGEST_EMBEDDED_WORKERS, timeout=WAIT, what="")
    gate.opened.set()
    wait_until(lambda: gate.entered == 5, timeout=WAIT, what="every job to run")
    assert all(name.startswith(tasks.EMBEDDED_THREAD_PREFIX) for name in gate.threads)


@pytest.mark.skipif(sys.platform != "linux", reason="a thread has a nice value of its own on Linux")
def test_embedded_jobs_run_nicer_than_the_request_path(live_server_url, bob_key, gate, settings):
    # given the server's own priority
    server_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    settings.INGEST_JOBS_PER_USER = 100
    # when jobs run on the embedded pool
    clones_in_parallel(live_server_url, bob_key, 3)
    gate.opened.set()
    wait_until(lambda: gate.entered == 3, timeout=WAIT, what="every job to run")
    # then each ran INGEST_EMBEDDED_NICE nicer (its threads were made with the default)
    assert settings.INGEST_EMBEDDED_NICE > 0
    assert gate.nice == [min(19, server_nice + settings.INGEST_EMBEDDED_NICE)] * 3


def test_without_a_broker_the_cleaning_stack_loads_on_the_job_pool_at_start(monkeypatch, settings):
    # given a process that has not loaded the voice-activity model yet
    monkeypatch.setattr(clean, "_vad_model", None)
    loaded_on: list[str] = []
    real_vad = clean._vad

    def vad():
        loaded_on.append(threading.current_thread().name)
        return real_vad()

    monkeypatch.setattr(clean, "_vad", vad)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # when the server starts (csmsite/asgi.py calls this)
    tasks.embedded_jobs_preload()
    # then the model is loaded, on the jobs' pool and not on the caller's thread
    wait_until(lambda: clean._vad_model is not None, timeout=WAIT, what="the VAD model to load")
    assert [name.startswith(tasks.EMBEDDED_THREAD_PREFIX) for name in loaded_on] == [True]


def test_with_a_broker_the_server_loads_nothing_for_jobs(monkeypatch, settings):
    submitted: list[object] = []
    monkeypatch.setattr(tasks, "_embedded_executor", lambda: submitted)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    tasks.embedded_jobs_preload()
    assert submitted == []


def test_the_web_page_waits_for_its_in_process_job_without_holding_a_thread(
    client: Client, bob, media_root, monkeypatch, settings
):
    # given a job that finishes as soon as it runs (in the jobs' pool)
    ran: list[str] = []
    monkeypatch.setattr(
        pipeline, "job_run", lambda job_id: ran.append(threading.current_thread().name)
    )
    client.force_login(bob)
    response = client.post(
        reverse("ui-clone"),
        {
            "source": "upload",
            "name": "narrator",
            "transcript": TRANSCRIPT,
            "consent": "on",
            "audio_file": _upload(),
        },
    )
    assert response.status_code == 202, response.content
    assert len(ran) == 1 and ran[0].startswith(tasks.EMBEDDED_THREAD_PREFIX)


# --- one user's jobs are bounded --------------------------------------------------------------


@pytest.fixture
def public_youtube(monkeypatch) -> None:
    """The allowed host resolves to a public address (tests have no DNS)."""
    validate = download.validate_source_url

    def public_resolver(host, port, *args):
        return [(2, 1, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(
        download, "validate_source_url", lambda url: validate(url, resolver=public_resolver)
    )


def youtube(client: httpx.Client, name: str) -> httpx.Response:
    return client.post(
        "/v1/audio/speech/voice-cloning/youtube",
        json={
            "youtube_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "voice_name": name,
            "start_time": 5,
            "duration": 30,
            "consent": True,
        },
    )


@pytest.mark.parametrize("route", ["upload", "upload under /api/v1", "youtube"])
def test_a_user_past_the_job_bound_is_refused_and_others_are_not(
    live_server_url, bob_key, api, media_root, queue, public_youtube, settings, route
):
    settings.INGEST_JOBS_PER_USER = 2

    def start(client: httpx.Client, name: str) -> httpx.Response:
        if route == "youtube":
            return youtube(client, name)
        return clone(client, name=name, prefix="/api/v1" if "/api/v1" in route else "/v1")

    with client_of(live_server_url, bob_key) as bob:
        # given bob has two jobs queued
        assert [start(bob, f"voice {i}").status_code for i in range(2)] == [202, 202]
        files = stored_files(media_root)

        # when he starts a third
        refused = start(bob, "one too many")

        # then it is refused as a wait, before anything is stored or queued
        assert refused.status_code == 429, refused.text
        error = error_of(refused)
        assert error["code"] == "too_many_jobs"
        assert error["type"] == "requests"
        assert IngestJob.objects.filter(owner__username="bob").count() == 2
        assert len(queue) == 2
        assert stored_files(media_root) == files

        # and alice, another user, is not refused
        assert start(api, "alice's voice").status_code == 202

        # and once one of bob's jobs has finished, he may start another
        finished = IngestJob.objects.filter(owner__username="bob").first()
        finished.status = IngestJob.Status.FAILED
        finished.save()
        assert start(bob, "next").status_code == 202


def test_a_running_job_counts_and_a_stale_one_does_not(
    live_server_url, bob_key, media_root, queue, settings
):
    settings.INGEST_JOBS_PER_USER = 1
    with client_of(live_server_url, bob_key) as bob:
        assert clone(bob, name="first").status_code == 202
        job = IngestJob.objects.get(owner__username="bob")
        IngestJob.objects.filter(id=job.id).update(status=IngestJob.Status.RUNNING)
        assert clone(bob, name="second").status_code == 429
        # a running job whose heartbeat stopped lost its worker: it holds no place
        IngestJob.objects.filter(id=job.id).update(
            updated=job.updated.replace(year=job.updated.year - 1)
        )
        assert clone(bob, name="second").status_code == 202


@pytest.mark.parametrize("embedded", [True, False])
def test_a_job_queued_without_a_broker_by_an_earlier_process_holds_no_place(
    live_server_url, bob_key, media_root, queue, settings, embedded
):
    # given a job queued before this process started
    settings.INGEST_JOBS_PER_USER = 1
    settings.CELERY_TASK_ALWAYS_EAGER = embedded
    with client_of(live_server_url, bob_key) as bob:
        assert clone(bob, name="first").status_code == 202
        job = IngestJob.objects.get(owner__username="bob")
        IngestJob.objects.filter(id=job.id).update(
            created=job.created.replace(year=job.created.year - 1)
        )
        # when bob clones again
        response = clone(bob, name="second")
    # then without a broker the lost job counts for nothing; with one it may still be delivered
    assert response.status_code == (202 if embedded else 429)


def test_parallel_starts_cannot_pass_the_bound_together(
    live_server_url, bob_key, media_root, queue, settings
):
    settings.INGEST_JOBS_PER_USER = 2
    responses = clones_in_parallel(live_server_url, bob_key, 6)
    assert sorted(r.status_code for r in responses) == [202, 202, 429, 429, 429, 429]
    assert IngestJob.objects.filter(owner__username="bob").count() == 2
    assert len(stored_files(media_root)) == 2


def test_the_web_page_is_refused_past_the_bound(client: Client, bob, media_root, queue, settings):
    settings.INGEST_JOBS_PER_USER = 1
    client.force_login(bob)
    form = {"source": "upload", "name": "narrator", "transcript": TRANSCRIPT, "consent": "on"}
    assert client.post(reverse("ui-clone"), {**form, "audio_file": _upload()}).status_code == 202
    response = client.post(reverse("ui-clone"), {**form, "audio_file": _upload()})
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "too_many_jobs"


def _upload() -> SimpleUploadedFile:
    return SimpleUploadedFile("sample.wav", sample_wav(), content_type="audio/wav")
