"""Helpers of the reliability tests: server and worker processes, a private redis-server, a
TCP link that can be cut, and requests."""

import os
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from django.conf import settings as django_settings
from django.db import connection

BASE_DIR = Path(django_settings.BASE_DIR)
RATE = 24000
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A gentle breeze moved slowly through the tall grass by the river.",
)
TRANSCRIPT = " ".join(SENTENCES)
# How long anything here may take before a test calls it a hang.
HANG_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], *, timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:g} s")
        time.sleep(0.05)


def database_url() -> str:
    """A DATABASE_URL for the database this test runs on (the test database)."""
    database = connection.settings_dict
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{database['NAME']}"
    user = urllib.parse.quote(database.get("USER") or "")
    password = urllib.parse.quote(database.get("PASSWORD") or "")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = database.get("HOST") or "127.0.0.1"
    port = f":{database['PORT']}" if database.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{database['NAME']}"


def stored_files(root: Path) -> list[str]:
    """Every file under MEDIA_ROOT, relative to it."""
    if not root.exists():
        return []
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def sample_wav() -> bytes:
    """eSpeak NG saying SENTENCES with pauses around them: a recording a clone accepts."""
    from scipy.signal import resample_poly

    from speech.audio.encoder import encode_wav
    from speech.engines.base import SynthesisParams, VoiceSpec
    from speech.engines.registry import engine_get

    pieces = [np.zeros(RATE, dtype=np.float32)]
    for sentence in SENTENCES:
        chunks = engine_get("espeak").synthesize(
            [sentence], VoiceSpec(name="alloy", standard="alloy"), SynthesisParams()
        )
        speech = resample_poly(np.concatenate(list(chunks)), 160, 147).astype(np.float32)
        pieces += [speech, np.zeros(RATE // 2, dtype=np.float32)]
    pieces.append(np.zeros(RATE, dtype=np.float32))
    audio = np.concatenate(pieces)
    audio += (0.003 * np.random.default_rng(0).standard_normal(audio.size)).astype(np.float32)
    return encode_wav(audio, RATE)


# --- Processes ---------------------------------------------------------------------------------


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


class RedisServer:
    """A private redis-server on a port of its own, which a test may kill and start again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.ping, timeout=20, what="redis-server")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.exceptions.RedisError:
            return False

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5)

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel and never answered (a hung Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=20)


class TcpProxy:
    """A TCP link to a server that a test can cut and restore: cut, every open connection is
    reset and new ones are refused (what clients see when the server dies); restored, it
    accepts again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock, reset=False)

    def _close(self, sock: socket.socket, *, reset: bool) -> None:
        with self._lock:
            self._sockets.discard(sock)
        try:
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            except OSError:
                pass
            listener.close()
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            self._close(sock, reset=True)

    def restore(self) -> None:
        self.start()


class Server:
    """`python manage.py serve` on a free loopback port."""

    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"


def speak(client: httpx.Client, key: str, **fields: object) -> httpx.Response:
    body = {"model": "tts-1", "voice": "alloy", "input": "Hello there.", **fields}
    return client.post("/v1/audio/speech", json=body, headers={"Authorization": f"Bearer {key}"})


def assert_openai_503(response: httpx.Response, code: str) -> dict:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    assert body["error"]["type"] == "server_error"
    return body["error"]
