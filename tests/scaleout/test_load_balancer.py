"""The load balancer: Debian's HAProxy with deploy/haproxy/haproxy.cfg, the file that
docker-compose.yml's `lb` service reads, in front of real server processes on loopback.

HAProxy gets the replicas' addresses in its environment, as compose gives it the service names.
The replicas are `manage.py serve` (through gated_server.py, which lets the test hold their
engine with files), sharing a database, a Redis database and MEDIA_ROOT, with TRUSTED_PROXIES
naming HAProxy's address and the proxy in front of it (LB_UPSTREAM_PROXIES), as compose does; a
Celery worker (held likewise) runs the cloning job that a WebSocket follows. Which replica served
a request, for which client address, and the forwarded headers it got, is read from that
replica's own output, where the request's marker (`?lb=...`) appears.

Proven here: requests spread over both replicas, which see the client's address and never one a
client forged (the header a client sent never reaches them), while a proxy in front of the
balancer keeps its X-Forwarded-For and -Proto; /metrics, however its path is spelt, is not
answered through the balancer; a job's progress over a WebSocket and an SSE speech stream
arrive as they are made; a replica killed mid-run fails its own streams only, while new requests
and the survivor's streams complete; a replica whose /readyz says not ready gets no request
until it is.
No timing is asserted: waits are bounded only so that a hang fails. Skipped when Postgres or
Redis cannot be reached (conftest.py), or without the haproxy binary (make /usr/sbin/haproxy).
"""

import json
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.audio import TRANSCRIPT, sample_wav
from tests.support.processes import Process, free_port, run_python, server_env, wait_until
from tests.support.websockets import messages_until_closed

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
HAPROXY = Path("/usr/sbin/haproxy")
GATED_SERVER = Path(__file__).with_name("gated_server.py")
GATED_WORKER = ROOT / "tests" / "reliability" / "gated_worker.py"
# How long a process may take to come up, or a job or a health check to get somewhere.
PATIENCE_SECONDS = 180
# HAProxy reaches the replicas from 127.0.0.1; the client connects from another loopback
# address, so that a replica's log shows whose address it believed; a TLS proxy in front of the
# balancer (LB_UPSTREAM_PROXIES) from a third.
PROXY_ADDRESS = "127.0.0.1"
CLIENT_ADDRESS = "127.0.0.2"
UPSTREAM_ADDRESS = "127.0.0.3"
FORGED_ADDRESS = "203.0.113.7"
# The client that the upstream proxy names.
UPSTREAM_CLIENT = "198.51.100.9"
SSE_SPEECH = {
    "model": "tts-1",
    "voice": "alloy",
    "input": "Hello there.",
    "response_format": "pcm",
    "stream_format": "sse",
}

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]


# --- Replicas, the worker and HAProxy -----------------------------------------------------------


@dataclass
class Replica:
    name: str
    process: Process
    port: int
    speech_gate: Path
    load_gate: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def served(self, tag: str) -> dict[str, str]:
        """The requests marked `?lb=<tag>-N` that reached this replica (from its access log):
        marker → the client address the server believed."""
        line = re.compile(rf'^INFO:\s+(\S+):\d+ - "\w+ \S*\?lb=({re.escape(tag)}-\d+) HTTP', re.M)
        return {match[2]: match[1] for match in line.finditer(self.process.output())}

    def forwarded(self, tag: str) -> dict[str, dict]:
        """The requests marked `?lb=<tag>-N` that reached this replica (gated_server.py's lines):
        marker → the X-Forwarded-For and -Proto it received, and the client and scheme believed."""
        line = re.compile(rf"^FORWARDED ({re.escape(tag)}-\d+) (.+)$", re.M)
        return {match[1]: json.loads(match[2]) for match in line.finditer(self.process.output())}

    def hold_speech(self) -> None:
        self.speech_gate.touch()

    def release_speech(self) -> None:
        self.speech_gate.unlink(missing_ok=True)

    def ready(self) -> bool:
        if not self.process.alive():
            raise AssertionError(f"{self.name} exited:\n{self.process.output()[-4000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False


class Cluster:
    """The module's replicas (started when first asked for, again if one died), its worker's
    environment, and alice's API key."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        self.env = env
        self.replicas: dict[str, Replica] = {}
        self.processes: list[Process] = []
        self.key = ""

    def environment(self, name: str, **extra: str) -> dict[str, str]:
        return server_env(self.work / name, **self.env, **extra)

    def manage(self, *args: str) -> str:
        done = run_python("manage.py", *args, env=self.environment("manage"), timeout=120)
        assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def replica(self, name: str, *, loading: bool = False) -> Replica:
        """A running replica; with `loading`, its engine stays loading until `load_gate` goes."""
        running = self.replicas.get(name)
        if running is not None and running.process.alive():
            return running
        gates = self.work / "gates"
        gates.mkdir(exist_ok=True)
        speech_gate, load_gate = gates / f"{name}.speech", gates / f"{name}.load"
        if loading:
            load_gate.touch()
        port = free_port()
        env = self.environment(name, LB_SPEECH_GATE=str(speech_gate), LB_LOAD_GATE=str(load_gate))
        serve = [sys.executable, str(GATED_SERVER), "--host", "127.0.0.1", "--port", str(port)]
        process = Process(name, serve, env, self.work / f"{name}-{port}.log")
        self.processes.append(process)
        replica = Replica(name, process, port, speech_gate, load_gate)
        self.replicas[name] = replica
        if loading:
            wait_until(
                lambda: "Uvicorn running" in process.output(),
                timeout=PATIENCE_SECONDS,
                what=f"{name} to listen",
            )
        else:
            wait_until(replica.ready, timeout=PATIENCE_SECONDS, what=f"{name} to be ready")
        return replica

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


@dataclass
class Balancer:
    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, key: str, source: str = CLIENT_ADDRESS, **headers: str) -> httpx.Client:
        """An HTTP client of the balancer that connects from `source`."""
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key}", **headers},
            timeout=60,
            transport=httpx.HTTPTransport(local_address=source),
        )

    def marked(self, server: str, state: str) -> bool:
        """Whether HAProxy has logged `server` (web or web-gpu1) going UP or DOWN."""
        return f"servers/{server} is {state}" in self.process.output()


@pytest.fixture(scope="module")
def cluster(postgres_database, redis_database, tmp_path_factory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("balancer")
    cluster = Cluster(
        work,
        {
            "DATABASE_URL": postgres_database,
            "REDIS_URL": redis_database,
            "MEDIA_ROOT": str(work / "media"),
            "SECRET_KEY": secrets.token_urlsafe(40),
            # As in compose: X-Forwarded-For and -Proto are believed from HAProxy, and from the
            # proxy in front of it whose headers HAProxy keeps.
            "TRUSTED_PROXIES": f"{PROXY_ADDRESS},{UPSTREAM_ADDRESS}",
            # uvicorn's access log: which replica served which request, for which address.
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "plain",
            # The streams held open here are not what the per-key limits are about.
            "RATE_LIMIT_REQUESTS_PER_MINUTE": "0",
            "RATE_LIMIT_CONCURRENT": "0",
            # The cloning route answers 202 with its job at once: the job is followed elsewhere.
            "INGEST_WAIT_SECONDS": "0",
            # Clones here carry their transcript: Whisper is never needed, and never downloaded.
            "WHISPER_MODEL": str(work / "no-whisper.pt"),
            "SHUTDOWN_GRACE_SECONDS": "2",
            "OMP_NUM_THREADS": "1",
        },
    )
    try:
        cluster.manage("migrate", "--noinput", "-v0")
        cluster.key = cluster.manage("createapikey", "alice", "--name", "balancer").split()[-1]
        yield cluster
    finally:
        cluster.stop()


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def start_balancer(tmp_path) -> Iterator[Callable[[Replica, Replica], Balancer]]:
    """Start HAProxy with the project's configuration in front of two replicas (as `web` and
    `web-gpu1`), once `haproxy -c` has found that configuration valid without a warning."""
    if not HAPROXY.exists():
        pytest.skip(f"needs Debian's haproxy at {HAPROXY} (make {HAPROXY})")
    started: list[Process] = []

    def start(web: Replica, web_gpu1: Replica) -> Balancer:
        port = free_port()
        env = {
            "LB_BIND": f"127.0.0.1:{port}",
            "LB_WEB": web.address,
            "LB_WEB_GPU1": web_gpu1.address,
            "LB_CHECK_HOST": "localhost",
            "LB_UPSTREAM_PROXIES": f"{UPSTREAM_ADDRESS}/32",
        }
        check = subprocess.run(
            [str(HAPROXY), "-c", "-f", str(CONFIG)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        report = check.stdout + check.stderr
        assert check.returncode == 0, report
        assert "Configuration file is valid" in report
        assert "[WARNING]" not in report and "[ALERT]" not in report, report
        process = Process("haproxy", [str(HAPROXY), "-f", str(CONFIG)], env, tmp_path / "lb.log")
        started.append(process)
        wait_until(lambda: _accepts_connections(port), timeout=60, what="HAProxy to listen")
        return Balancer(process, port)

    yield start
    for process in started:
        process.stop()


class HeldWorker:
    """A Celery worker whose cloning jobs wait before their clean-up while `gate` exists."""

    def __init__(self, cluster: Cluster) -> None:
        self.gate = cluster.work / "gates" / "worker"
        self.gate.parent.mkdir(exist_ok=True)
        self.gate.touch()
        env = cluster.environment(
            "worker", RELIABILITY_GATE=str(self.gate), RELIABILITY_GATE_AT="clean"
        )
        command = [
            sys.executable,
            str(GATED_WORKER),
            "-A",
            "csmsite",
            "worker",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
            f"--hostname=balancer-{secrets.token_hex(3)}@%h",
        ]
        self.process = Process("worker", command, env, cluster.work / "worker.log")

    def release(self) -> None:
        self.gate.unlink(missing_ok=True)


@pytest.fixture
def held_worker(cluster) -> Iterator[HeldWorker]:
    worker = HeldWorker(cluster)
    yield worker
    worker.release()
    worker.process.stop()


# --- Reading answers ---------------------------------------------------------------------------


def probe(client: httpx.Client, tag: str, count: int) -> set[str]:
    """`count` requests marked `<tag>-N`, each of which must succeed; their markers."""
    markers = set()
    for n in range(count):
        marker = f"{tag}-{n}"
        response = client.get("/v1/models", params={"lb": marker})
        assert response.status_code == 200, (marker, response.text)
        markers.add(marker)
    return markers


def events(lines: Iterator[str]) -> list[dict]:
    """Every SSE event from `lines` until the stream ends."""
    return [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]


def next_event(lines: Iterator[str]) -> dict:
    for line in lines:
        if line.startswith("data: "):
            return json.loads(line.removeprefix("data: "))
    raise AssertionError("the stream ended before its first event")


def open_stream(stack: ExitStack, client: httpx.Client, marker: str) -> Iterator[str]:
    """An SSE speech stream marked `marker`, held open by `stack`, once its first audio event is
    here: the rest of its lines."""
    response = stack.enter_context(
        client.stream("POST", "/v1/audio/speech", params={"lb": marker}, json=SSE_SPEECH)
    )
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = response.iter_lines()
    assert next_event(lines)["type"] == "speech.audio.delta"
    return lines


def assert_complete(rest: list[dict]) -> None:
    assert rest, "nothing came after the first event"
    assert {event["type"] for event in rest[:-1]} <= {"speech.audio.delta"}
    assert rest[-1]["type"] == "speech.audio.done"


# --- Tests --------------------------------------------------------------------------------------


def test_requests_spread_over_both_replicas_which_see_the_clients_own_address(
    cluster, start_balancer
):
    # given two ready replicas behind the balancer
    a, b = cluster.replica("a"), cluster.replica("b")
    balancer = start_balancer(a, b)

    # when a client sends requests one after another, each with a forged X-Forwarded-For
    with balancer.client(cluster.key, **{"X-Forwarded-For": FORGED_ADDRESS}) as client:
        markers = probe(client, "spread", 10)
        metrics = [client.get(path) for path in ("/metrics", "/%6Detrics", "/%6d%65trics")]

    # then each request reached one replica, and both replicas got some
    on_a, on_b = a.served("spread"), b.served("spread")
    assert on_a.keys().isdisjoint(on_b.keys())
    assert on_a.keys() | on_b.keys() == markers
    assert on_a and on_b
    # and each replica believed the client's own address: neither the forged one nor HAProxy's
    assert set(on_a.values()) | set(on_b.values()) == {CLIENT_ADDRESS}
    # because the forged header never reached them: HAProxy dropped it and named the client
    received = a.forwarded("spread") | b.forwarded("spread")
    assert received.keys() == markers
    assert {seen["x-forwarded-for"] for seen in received.values()} == {CLIENT_ADDRESS}
    # and /metrics, which is per process, is not answered through the balancer, however its
    # path is spelt; a replica itself decodes it and answers
    assert [response.status_code for response in metrics] == [404, 404, 404]
    assert httpx.get(f"{a.url}/metrics", timeout=10).status_code == 200
    assert httpx.get(f"{a.url}/%6Detrics", timeout=10).status_code == 200


def test_a_proxy_in_front_of_the_balancer_keeps_its_client_and_scheme(cluster, start_balancer):
    # given the balancer behind a TLS proxy at UPSTREAM_ADDRESS (LB_UPSTREAM_PROXIES)
    a, b = cluster.replica("a"), cluster.replica("b")
    balancer = start_balancer(a, b)
    said = {"X-Forwarded-For": UPSTREAM_CLIENT, "X-Forwarded-Proto": "https"}

    # when that proxy forwards requests, saying who the client is and that TLS carried them
    with balancer.client(cluster.key, UPSTREAM_ADDRESS, **said) as client:
        kept = probe(client, "upstream", 4)
    # and another client sends the very same headers
    with balancer.client(cluster.key, **said) as client:
        replaced = probe(client, "other", 4)

    # then the replicas see the proxy's client, after it the proxy, and HTTPS
    upstream = a.forwarded("upstream") | b.forwarded("upstream")
    assert upstream.keys() == kept
    for seen in upstream.values():
        assert seen["x-forwarded-for"] == f"{UPSTREAM_CLIENT}, {UPSTREAM_ADDRESS}"
        assert seen["x-forwarded-proto"] == "https"
        assert (seen["client"], seen["scheme"]) == (UPSTREAM_CLIENT, "https")
    # and the other client's headers are replaced by what the balancer saw
    other = a.forwarded("other") | b.forwarded("other")
    assert other.keys() == replaced
    for seen in other.values():
        assert (seen["x-forwarded-for"], seen["x-forwarded-proto"]) == (CLIENT_ADDRESS, "http")
        assert (seen["client"], seen["scheme"]) == (CLIENT_ADDRESS, "http")


def test_an_sse_speech_stream_arrives_through_the_balancer_as_it_is_made(cluster, start_balancer):
    # given two replicas whose speech goes on until the test lets it end
    a, b = cluster.replica("a"), cluster.replica("b")
    for replica in (a, b):
        replica.hold_speech()
    balancer = start_balancer(a, b)

    with balancer.client(cluster.key) as client, ExitStack() as stack:
        # when a client asks for speech as server-sent events
        lines = open_stream(stack, client, "sse-0")

        # then its first audio event is here while the replica is still making the speech: the
        # end of the stream does not exist yet
        (server,) = [replica for replica in (a, b) if "sse-0" in replica.served("sse")]
        assert server.speech_gate.exists()
        assert server.process.alive()

        # and once the replica has finished, the rest arrives, ending with the usage
        server.release_speech()
        assert_complete(events(lines))


def test_a_jobs_progress_arrives_over_a_websocket_through_the_balancer(
    cluster, start_balancer, held_worker
):
    # given a cloning job that the worker holds before its clean-up stage
    a, b = cluster.replica("a"), cluster.replica("b")
    balancer = start_balancer(a, b)
    with balancer.client(cluster.key) as client:
        response = client.post(
            "/v1/voice-cloning/clone",
            data={"name": "narrator", "transcript": TRANSCRIPT, "consent": "true"},
            files={"audio_file": ("sample.wav", sample_wav(), "audio/wav")},
        )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    # when alice follows it over a WebSocket through the balancer, from a page of the balancer's
    # own origin; the X-Forwarded-Proto she forges is replaced, or the server would take the
    # connection for TLS and her plain-HTTP origin for another site's
    with connect(
        f"ws://127.0.0.1:{balancer.port}/ws/jobs/{job_id}/",
        additional_headers={
            "Authorization": f"Bearer {cluster.key}",
            "X-Forwarded-Proto": "https",
        },
        origin=balancer.url,
        open_timeout=60,
        close_timeout=10,
    ) as ws:
        # then the job's progress arrives while the job is still held in the middle
        seen = [json.loads(ws.recv(timeout=PATIENCE_SECONDS))]
        while seen[-1]["status"] != "running":
            assert seen[-1]["status"] == "queued", seen
            seen.append(json.loads(ws.recv(timeout=PATIENCE_SECONDS)))
        assert held_worker.gate.exists()
        assert held_worker.process.alive()

        # and when the worker goes on, the rest arrives until the job has finished
        held_worker.release()
        rest, code = messages_until_closed(ws, timeout=PATIENCE_SECONDS)
    assert rest, "nothing came after the job started"
    assert rest[-1]["status"] == "succeeded", rest[-1]
    assert rest[-1]["voice_id"]
    assert code == 1000


def test_a_replica_that_is_not_ready_gets_no_requests_until_it_is(cluster, start_balancer):
    # given a replica whose engine is still loading, so that its /readyz answers 503
    a = cluster.replica("a")
    loading = cluster.replica("loading", loading=True)
    assert httpx.get(f"{loading.url}/readyz", timeout=10).status_code == 503
    balancer = start_balancer(a, loading)
    # and HAProxy's health checks have found that out
    wait_until(
        lambda: balancer.marked("web-gpu1", "DOWN"),
        timeout=PATIENCE_SECONDS,
        what="HAProxy to mark the loading replica down",
    )

    # when requests come
    with balancer.client(cluster.key) as client:
        markers = probe(client, "loading", 8)

        # then every one is served by the ready replica, none by the loading one
        assert set(a.served("loading")) == markers
        assert loading.served("loading") == {}

        # when its engine has loaded
        loading.load_gate.unlink()
        wait_until(loading.ready, timeout=PATIENCE_SECONDS, what="the replica to be ready")
        wait_until(
            lambda: balancer.marked("web-gpu1", "UP"),
            timeout=PATIENCE_SECONDS,
            what="HAProxy to mark the replica up",
        )

        # then it gets its share of the requests
        markers = probe(client, "loaded", 8)
    on_a, on_loaded = a.served("loaded"), loading.served("loaded")
    assert on_a.keys() | on_loaded.keys() == markers
    assert on_loaded


def test_a_replica_killed_mid_run_fails_its_own_streams_and_nothing_else(cluster, start_balancer):
    # given two replicas whose speech goes on until the test lets it end
    survivor, doomed = cluster.replica("a"), cluster.replica("doomed")
    for replica in (survivor, doomed):
        replica.hold_speech()
    balancer = start_balancer(survivor, doomed)

    with balancer.client(cluster.key) as client, ExitStack() as stack:
        # and four speech streams in flight, spread over both
        streams = {f"stream-{n}": open_stream(stack, client, f"stream-{n}") for n in range(4)}
        on_survivor, on_doomed = set(survivor.served("stream")), set(doomed.served("stream"))
        assert on_survivor | on_doomed == streams.keys()
        assert on_survivor and on_doomed

        # when one replica dies
        doomed.process.kill_group()

        # then its streams fail: cut off, never passed off as complete
        for marker in on_doomed:
            with pytest.raises(httpx.RemoteProtocolError):
                events(streams[marker])

        # and every new request succeeds, on the survivor, before and after HAProxy's health
        # checks have marked the dead replica down
        markers = probe(client, "after-kill", 6)
        assert set(survivor.served("after-kill")) == markers
        wait_until(
            lambda: balancer.marked("web-gpu1", "DOWN"),
            timeout=PATIENCE_SECONDS,
            what="HAProxy to mark the dead replica down",
        )
        markers = probe(client, "after-down", 6)
        assert set(survivor.served("after-down")) == markers

        # and the survivor's streams, in flight all along, complete
        survivor.release_speech()
        for marker in on_survivor:
            assert_complete(events(streams[marker]))
