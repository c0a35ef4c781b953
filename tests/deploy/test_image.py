"""The image is built and run, not only read: the project's Dockerfile, built by Docker on a
Debian bookworm base that debootstrap makes from the package mirror (no image registry is
needed), started against this machine's Postgres and Redis, healthy by its own HEALTHCHECK, and
answering one speech request through the load balancer's configuration (HAProxy with
deploy/haproxy/haproxy.cfg). eSpeak NG speaks: no weights.

The build takes the Dockerfile's own steps with stand-ins passed as build arguments:
deploy/image/base-images.sh makes the CUDA_IMAGE and UV_IMAGE stand-ins, PYTHON_SOURCE=system
uses the base's python3.11, and TORCH_INDEX_URL is an index on loopback that serves the CPU
wheel of torch found on this disk (without one the test skips: PyPI's torch is a CUDA build of
several GB). Host
networking throughout (`docker build/run --network host`): the build reaches that index and
PyPI, the container this machine's Postgres and Redis, and its server listens on port 8000.

Not checked here: NVIDIA's CUDA base image and a GPU. `make image-check` runs this test alone.
"""

import fcntl
import functools
import hashlib
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from openai import OpenAI
from psycopg import sql

from tests.support.audio import RATE, decoded, spoken
from tests.support.processes import free_port
from tests.support.services import empty_redis_database

pytestmark = [pytest.mark.system, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "csm-speech:image-check"
BASE_IMAGE = "csm-base:bookworm-py311"
CONTAINER = "csm-image-check"
# The Dockerfile's CMD serves on 8000 and its HEALTHCHECK asks there: with host networking,
# on this machine's port 8000.
SERVER_PORT = 8000
DATABASE = "csm_image"
POSTGRES_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS_SERVER_URL = "redis://127.0.0.1:6379"
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
WHEEL_DIRS = [Path("/opt/wheels"), Path("/opt/pypi/files")]
# The torch index's port. Its URL is a build argument, part of the key of every cached layer
# after it: the same port each run keeps reruns cached (another, when this one is taken).
INDEX_PORT = 39517
TEXT = "The image was built and started, and it speaks."


def say(message: str) -> None:
    print(f"[image] {message}", flush=True)


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip()


def image_exists(name: str) -> bool:
    return docker("image", "inspect", name, check=False) != ""


@functools.cache
def uv_image() -> str:
    """The UV_IMAGE stand-in, named for the version of the Dockerfile's own UV_IMAGE."""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ARG UV_IMAGE="):
            return f"csm-uv:{line.rpartition(':')[2]}"
    raise AssertionError("the Dockerfile has no ARG UV_IMAGE")


def torch_version() -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith("torch=="):
            return line.removeprefix("torch==")
    raise AssertionError("requirements.txt pins no torch")


def local_torch_wheel() -> Path | None:
    """The CPU build of the pinned torch for CPython 3.11 (bookworm's Python), if on disk."""
    pattern = f"torch-{torch_version()}+cpu-cp311-cp311-manylinux_*_x86_64.whl"
    for directory in WHEEL_DIRS:
        found = sorted(directory.glob(pattern)) if directory.is_dir() else []
        if found:
            return found[0]
    return None


# --- what the test needs, or why it skips --------------------------------------------------------


@pytest.fixture
def docker_ready() -> Iterator[None]:
    """Docker answers, the base images exist or can be made, port 8000 is free (else a skip:
    another server there is this machine's business, not the image's); the container
    is removed afterwards (and first, if an interrupted run left it). One run at a time on a
    machine: two would share the image's tag, the container's name, port 8000 and the database,
    so a second run waits for the first."""
    docker_or_skip()
    with open("/tmp/csm-image-check.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        docker("rm", "--force", CONTAINER, check=False)
        port_8000_free_or_skip()
        try:
            yield
        finally:
            docker("rm", "--force", CONTAINER, check=False)


def docker_or_skip() -> None:
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed (deploy/image/ensure-docker.sh, run by `make test`)")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.skip(f"the Docker daemon does not answer: {info.stderr.strip()[-300:]}")
    if not all(image_exists(name) for name in (BASE_IMAGE, uv_image())):
        if os.geteuid() != 0:
            pytest.skip("not root: debootstrap cannot make the Debian base image")
        if shutil.which("debootstrap") is None:
            pytest.skip("debootstrap is not installed (`make test` installs it)")


def port_8000_free_or_skip() -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", SERVER_PORT))
        except OSError as exc:
            pytest.skip(
                f"port {SERVER_PORT} is taken ({exc}): the image's server and health check "
                "listen there, on this machine's network"
            )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The database of the container's own: created empty, dropped afterwards."""
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"Postgres is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
    with admin:
        admin.execute(drop)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        try:
            yield f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
        finally:
            admin.execute(drop)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """An empty Redis database of its own, flushed afterwards."""
    with empty_redis_database(f"{REDIS_SERVER_URL}/0", "csm-image-test") as url:
        yield url


@pytest.fixture
def torch_index(tmp_path) -> Iterator[str]:
    """A package index on loopback with the local torch wheel alone (uv finds the rest on
    PyPI), as TORCH_INDEX_URL; a skip when no such wheel is on this disk."""
    wheel = local_torch_wheel()
    if wheel is None:
        pytest.skip(
            f"no CPU wheel of torch {torch_version()} in {', '.join(map(str, WHEEL_DIRS))}: "
            "PyPI's torch is a CUDA build of several GB"
        )
    project = tmp_path / "index" / "torch"
    project.mkdir(parents=True)
    (project / wheel.name).symlink_to(wheel)
    with wheel.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    href = f"{urllib.parse.quote(wheel.name)}#sha256={digest}"
    (project / "index.html").write_text(f'<html><body><a href="{href}">{wheel.name}</a>\n')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path / "index"))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", INDEX_PORT), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# --- the steps --------------------------------------------------------------------------------


@dataclass
class Timings:
    steps: dict[str, float]

    def measure(self, name: str, started: float) -> None:
        self.steps[name] = time.monotonic() - started

    def report(self) -> str:
        return ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self.steps.items())


def make_base_images() -> None:
    """The CUDA_IMAGE and UV_IMAGE stand-ins, kept by docker between runs."""
    script = ROOT / "deploy" / "image" / "base-images.sh"
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        [str(script), BASE_IMAGE, uv_image()],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"
    for line in result.stdout.splitlines():
        say(line)


def build_image(index_url: str | None, log: Path) -> None:
    """`docker build` of the project's Dockerfile with the stand-ins; the image it replaces is
    removed (its layers shared with the new one stay as the next build's cache)."""
    previous = docker("image", "inspect", "--format", "{{.Id}}", IMAGE, check=False)
    args = [
        "build",
        "--network",
        "host",
        "--tag",
        IMAGE,
        "--build-arg",
        f"CUDA_IMAGE={BASE_IMAGE}",
        "--build-arg",
        f"UV_IMAGE={uv_image()}",
        "--build-arg",
        "PYTHON_SOURCE=system",
    ]
    if index_url:
        args += ["--build-arg", f"TORCH_INDEX_URL={index_url}"]
    # The classic builder: BuildKit would fetch the `# syntax=` frontend from Docker Hub.
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    started = time.monotonic()
    with log.open("w") as out:
        build = subprocess.Popen(
            ["docker", *args, str(ROOT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
        )
        # Each line with the seconds since the start: where a slow build spends its time.
        for line in build.stdout:
            out.write(f"[{time.monotonic() - started:6.0f} s] {line}")
        build.wait()
    assert build.returncode == 0, f"docker build failed:\n{log.read_text()[-6000:]}"
    current = docker("image", "inspect", "--format", "{{.Id}}", IMAGE)
    if previous and previous != current:
        docker("rmi", previous, check=False)


def container_state() -> dict:
    return json.loads(docker("inspect", "--format", "{{json .State}}", CONTAINER))


def start_container(*, database_url: str, redis_url: str) -> None:
    docker(
        "run",
        "--detach",
        "--name",
        CONTAINER,
        "--network",
        "host",
        # The image's own health check, asked every 2 s instead of every 30 s (only its pace
        # changes: Docker 20.10 has no --health-start-interval).
        "--health-interval",
        "2s",
        "--env",
        f"DATABASE_URL={database_url}",
        "--env",
        f"REDIS_URL={redis_url}",
        "--env",
        f"SECRET_KEY={secrets.token_urlsafe(50)}",
        "--env",
        "DEFAULT_ENGINE=espeak",
        "--env",
        "WATERMARK=false",
        "--env",
        "HF_HUB_OFFLINE=1",
        IMAGE,
    )


def wait_healthy(timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = container_state()
        health = state.get("Health", {}).get("Status")
        if health == "healthy":
            return
        if not state["Running"] or health == "unhealthy" or time.monotonic() > deadline:
            logs = docker("logs", "--tail", "60", CONTAINER, check=False)
            raise AssertionError(f"the container is {state['Status']}/{health}:\n{logs}")
        time.sleep(1)


def api_key_from_logs() -> str:
    """The first API key, which `ensure_admin` prints once when the container first starts."""
    logs = subprocess.run(
        ["docker", "logs", CONTAINER], capture_output=True, text=True, timeout=60, check=True
    )
    for line in (logs.stdout + logs.stderr).splitlines():
        if line.startswith("API key for ") and "(shown only now): " in line:
            return line.rpartition(": ")[2].strip()
    raise AssertionError(f"no API key in the container's log:\n{logs.stdout}\n{logs.stderr}")


@pytest.fixture
def load_balancer(tmp_path) -> Iterator[tuple[str, bool]]:
    """Where requests go: HAProxy with the project's configuration, both of its servers the
    container, when Debian's haproxy is installed; else the container itself. The flag says
    which."""
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if not haproxy or not HAPROXY_CONFIG.is_file():
        say("no HAProxy here: the request goes to the container directly")
        yield f"http://127.0.0.1:{SERVER_PORT}", False
        return
    port = free_port()
    backend = f"127.0.0.1:{SERVER_PORT}"
    env = {
        **os.environ,
        "LB_BIND": f"127.0.0.1:{port}",
        "LB_WEB": backend,
        "LB_WEB_GPU1": backend,
        "LB_CHECK_HOST": "localhost",
    }
    log = (tmp_path / "haproxy.log").open("w")
    process = subprocess.Popen(
        [haproxy, "-db", "-f", str(HAPROXY_CONFIG)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield f"http://127.0.0.1:{port}", True
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def wait_ready(base_url: str, timeout: float = 60) -> None:
    """/readyz answers 200 at `base_url` (through HAProxy: once it counts a server up)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=5)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise AssertionError(f"{base_url}/readyz never answered 200; last: {last}")


# --- the test ---------------------------------------------------------------------------------


def test_it_builds_starts_healthy_and_speaks_through_the_load_balancer(
    docker_ready, tmp_path, postgres_url, redis_url, torch_index, load_balancer
):
    # given: the base images, and the project's image built on them
    timings = Timings({})
    started = time.monotonic()
    make_base_images()
    timings.measure("base images", started)
    started = time.monotonic()
    build_image(torch_index, tmp_path / "build.log")
    timings.measure("build", started)

    # when: it starts against Postgres and Redis, and its health check passes
    started = time.monotonic()
    start_container(database_url=postgres_url, redis_url=redis_url)
    wait_healthy()
    timings.measure("start to healthy", started)
    base_url, through_haproxy = load_balancer
    wait_ready(base_url)

    # then: one speech request, through HAProxy, is eSpeak NG saying the text
    started = time.monotonic()
    client = OpenAI(base_url=f"{base_url}/v1", api_key=api_key_from_logs(), max_retries=0)
    audio = client.audio.speech.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="mp3"
    )
    timings.measure("speech request", started)
    samples = decoded(audio.content)
    expected = spoken(TEXT)
    assert abs(samples.size - expected.size) < 0.25 * expected.size + 0.3 * RATE
    assert float(abs(samples).max()) > 0.05
    # The server runs as the image's own user, on the torch the build was given.
    assert docker("exec", CONTAINER, "id", "-u") == "10001"
    installed = docker("exec", CONTAINER, "python", "-c", "import torch; print(torch.__version__)")
    assert installed == f"{torch_version()}+cpu"
    # and it has what torch.compile needs to build the captured CSM step (a C++ compiler and
    # Python's headers): inductor compiles and runs a small function in the container.
    compiled = docker(
        "exec",
        CONTAINER,
        "python",
        "-c",
        "import torch; f = torch.compile(lambda x: x.sin() + 1, fullgraph=True); "
        "print(f(torch.zeros(3)).tolist())",
        timeout=600,
    )
    assert compiled.splitlines()[-1] == "[1.0, 1.0, 1.0]"
    size = int(docker("image", "inspect", "--format", "{{.Size}}", IMAGE))
    say(
        f"{timings.report()}; image {size / 1e9:.2f} GB; request "
        + ("through HAProxy" if through_haproxy else "straight to the container")
    )
