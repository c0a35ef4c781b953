"""Scale-out: web replicas and workers share Postgres, Redis and storage, and nothing is sticky.

Two real server processes (`manage.py serve`) on different ports and a real Celery worker
(`celery -A csmsite worker`), all separate from the test process, share a database made for
this module, a Redis database of its own and one MEDIA_ROOT. A voice cloned through one server
is made by the worker, followed and used through the other, and listed by the first; a key's
per-minute request limit holds across both servers together.

The servers speak with eSpeak NG by default and with the tiny random CSM checkpoint for
`csm-1b` (the engine a cloned voice needs); clones carry their transcript, so no Whisper model
is needed. Skipped only when Postgres or Redis cannot be reached (the databases come from
conftest.py).
"""

import os
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from speech.audio.decode import decode_audio
from tests.support.audio import RATE, TRANSCRIPT, sample_wav
from tests.support.processes import Process, free_port, run_python

ROOT = Path(__file__).resolve().parents[2]
REQUESTS_PER_MINUTE = 5
# How long to wait for a process to come up or a job to finish before calling it stuck.
PATIENCE_SECONDS = 180

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]


@dataclass
class Cluster:
    server_a: str
    server_b: str
    key: str  # alice's key for cloning and speaking
    limited_key: str  # alice's second key, whose request budget the rate-limit test spends


# --- Processes --------------------------------------------------------------------------------


class Processes:
    """manage.py commands run to their end, and the cluster's long-running processes."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.running: dict[str, Process] = {}

    def run(self, *args: str) -> str:
        """Run a manage.py command to the end; its output."""
        done = run_python("manage.py", *args, env=self.env, timeout=PATIENCE_SECONDS)
        assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def start(self, name: str, *args: str) -> None:
        self.running[name] = Process(name, list(args), self.env, self.log_dir / f"{name}.log")

    def log(self, name: str) -> str:
        return self.running[name].output()[-4000:]

    def check_alive(self, name: str) -> None:
        process = self.running[name]
        assert process.alive(), f"{name} exited with {process.popen.poll()}:\n{self.log(name)}"

    def stop_all(self) -> None:
        for process in self.running.values():
            process.stop()


def _wait_until_ready(processes: Processes, name: str, base_url: str) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        processes.check_alive(name)
        try:
            if httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{name} never became ready:\n{processes.log(name)}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster(postgres_database, redis_database, tiny_csm_dir, tmp_path_factory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("scaleout")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "csmsite.settings",
        "DATABASE_URL": postgres_database,
        "REDIS_URL": redis_database,
        "MEDIA_ROOT": str(work / "media"),
        "VAR_DIR": str(work / "var"),
        "SECRET_KEY": secrets.token_urlsafe(40),
        "DEFAULT_ENGINE": "espeak",
        "CSM_MODEL": str(tiny_csm_dir),
        "CSM_DEVICE": "cpu",
        "CSM_DTYPE": "float32",
        "CSM_PREPARE_VOICES": "false",
        "HF_HUB_OFFLINE": "1",
        "WATERMARK": "off",
        # Clones here carry their transcript: Whisper is never needed, and never downloaded.
        "WHISPER_MODEL": str(work / "no-whisper.pt"),
        "RATE_LIMIT_REQUESTS_PER_MINUTE": str(REQUESTS_PER_MINUTE),
        # The cloning route answers 202 with its job at once: the job is followed elsewhere.
        "INGEST_WAIT_SECONDS": "0",
        "SHUTDOWN_GRACE_SECONDS": "2",
        "OMP_NUM_THREADS": "1",
        "LOG_LEVEL": "INFO",
    }
    processes = Processes(env, work)
    try:
        processes.run("migrate", "--noinput", "-v0")
        key = processes.run("createapikey", "alice", "--name", "cloning").split()[-1]
        limited_key = processes.run("createapikey", "alice", "--name", "limited").split()[-1]
        worker = ("-m", "celery", "-A", "csmsite", "worker", "--concurrency=1", "--loglevel=INFO")
        processes.start("worker", sys.executable, *worker)
        urls = {}
        for name in ("server_a", "server_b"):
            port = free_port()
            urls[name] = f"http://127.0.0.1:{port}"
            serve = ("manage.py", "serve", "--host", "127.0.0.1", "--port", str(port))
            processes.start(name, sys.executable, *serve)
        for name, url in urls.items():
            _wait_until_ready(processes, name, url)
        yield Cluster(urls["server_a"], urls["server_b"], key, limited_key)
        for name in processes.running:
            processes.check_alive(name)
    finally:
        processes.stop_all()


# --- Helpers ----------------------------------------------------------------------------------


def _client(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _speak(client: httpx.Client, body: dict) -> httpx.Response:
    """POST /v1/audio/speech as a patient client: a 503 (engine still loading) is retried after
    its Retry-After."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        response = client.post("/v1/audio/speech", json=body)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(float(response.headers.get("retry-after", "1")))


def _seconds_left_in_this_minute() -> float:
    return 60 - time.time() % 60


# --- Tests ------------------------------------------------------------------------------------


def test_a_voice_cloned_through_one_server_is_used_through_the_other(cluster):
    with (
        _client(cluster.server_a, cluster.key) as a,
        _client(cluster.server_b, cluster.key) as b,
    ):
        # given alice uploads a recording to server A
        response = a.post(
            "/v1/voice-cloning/clone",
            data={"name": "narrator", "transcript": TRANSCRIPT, "consent": "true"},
            files={"audio_file": ("sample.wav", sample_wav(), "audio/wav")},
        )
        # then A answers at once with the queued job (a worker does the work)
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["object"] == "ingest.job"

        # when she follows the job through server B, until the worker has finished it
        deadline = time.monotonic() + PATIENCE_SECONDS
        while job["status"] not in {"succeeded", "failed"} and time.monotonic() < deadline:
            time.sleep(0.5)
            polled = b.get(f"/v1/voice-cloning/jobs/{job['id']}")
            assert polled.status_code == 200, polled.text
            job = polled.json()
        assert job["status"] == "succeeded", job
        voice_id = job["voice_id"]

        # then B speaks with the voice (its reference is read from the shared storage)
        speech = _speak(
            b,
            {
                "model": "csm-1b",
                "voice": voice_id,
                "input": "Good evening.",
                "response_format": "wav",
                "max_audio_length_ms": 400,
                "seed": 1,
            },
        )
        assert speech.status_code == 200, speech.text
        assert speech.headers["content-type"] == "audio/wav"
        assert decode_audio(speech.content, sample_rate=RATE, max_seconds=10).size > 0

        # and A lists it, in both voice lists
        listed = a.get("/v1/audio/voices")
        assert listed.status_code == 200, listed.text
        assert voice_id in {voice["id"] for voice in listed.json()["voices"]}
        cloned = a.get("/v1/voice-cloning/voices")
        assert cloned.status_code == 200, cloned.text
        assert [voice["name"] for voice in cloned.json()["voices"]] == ["narrator"]


def test_the_request_limit_of_a_key_holds_across_both_servers(cluster):
    # given a fresh minute, so that the whole burst falls in one rate-limit window
    if _seconds_left_in_this_minute() < 20:
        time.sleep(_seconds_left_in_this_minute() + 0.5)
    body = {"model": "espeak", "voice": "alloy", "input": "Hi.", "response_format": "wav"}

    with (
        _client(cluster.server_a, cluster.limited_key) as a,
        _client(cluster.server_b, cluster.limited_key) as b,
    ):
        # when the key's requests alternate between the servers, up to the limit
        for sent in range(1, REQUESTS_PER_MINUTE + 1):
            response = (a if sent % 2 else b).post("/v1/audio/speech", json=body)
            assert response.status_code == 200, (sent, response.text)
            assert response.headers["x-ratelimit-limit-requests"] == str(REQUESTS_PER_MINUTE)
            assert response.headers["x-ratelimit-remaining-requests"] == str(
                REQUESTS_PER_MINUTE - sent
            )

        # then the next request is refused by either server, whichever it reaches
        for server in (a, b):
            refused = server.post("/v1/audio/speech", json=body)
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["code"] == "rate_limit_exceeded"
            assert refused.headers["x-ratelimit-remaining-requests"] == "0"
