"""Child processes of the tests (servers, workers, manage.py commands) and waiting on them."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import httpx
from django.conf import settings as django_settings
from django.db import connection

BASE_DIR = Path(django_settings.BASE_DIR)
# How long anything here may take before a test calls it a hang.
HANG_SECONDS = 60.0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (at the moment of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a server or worker process a test starts: its own `var_dir`, eSpeak NG
    as the default engine, no model downloads, no watermark, and none of this process's database,
    Redis or settings module (a test adds what it needs in `overrides`)."""
    no_checkpoint = var_dir / "no-csm-checkpoint"
    no_checkpoint.mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        VAR_DIR=str(var_dir),
        DEFAULT_ENGINE="espeak",
        CSM_MODEL=str(no_checkpoint),
        HF_HUB_OFFLINE="1",
        WATERMARK="false",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def wait_until(condition: Callable[[], object], *, timeout: float, what: str) -> object:
    """Poll `condition` until it returns something true (which is returned)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:g} s")
        time.sleep(0.05)


def run_python(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python *args` (a script, `-c` code, or manage.py and a command) run to its end in a fresh
    process, in the project root, with exactly the environment `env`; its output as text."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Process:
    """A child process with its output in a log file, shown when a test fails."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                command,
                cwd=BASE_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own process group: a whole worker (pool included) can be killed at once.
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, signum: int) -> None:
        if self.alive():
            self.popen.send_signal(signum)

    def kill_group(self) -> None:
        """SIGKILL to the process and everything it started (a worker and its pool)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=HANG_SECONDS)

    def stop(self) -> None:
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill_group()
        else:
            self.kill_group()  # whatever it left behind


def database_url() -> str:
    """A DATABASE_URL for the database this test runs on (the test database, not the real
    one), for the processes a test starts."""
    database = connection.settings_dict
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{database['NAME']}"
    user = urllib.parse.quote(database.get("USER") or "")
    password = urllib.parse.quote(database.get("PASSWORD") or "")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = database.get("HOST") or "127.0.0.1"
    port = f":{database['PORT']}" if database.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{database['NAME']}"


class Server:
    """`python manage.py serve` on a free loopback port."""

    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"


def start_server(env: dict[str, str], log_dir: Path) -> Server:
    """`manage.py serve` with exactly `env`, once it answers /healthz; stopped if it never does."""
    port = free_port()
    process = Process(
        f"server:{port}",
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env,
        log_dir / f"server-{port}.log",
    )
    server = Server(process, port)

    def healthy() -> bool:
        if not process.alive():
            raise AssertionError(f"the server exited:\n{process.output()[-4000:]}")
        try:
            return httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, timeout=HANG_SECONDS, what="the server to answer /healthz")
    except BaseException:
        process.stop()
        raise
    return server
