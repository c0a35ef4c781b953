"""Benchmark the speech API: HTTP load, encoder cost per format, and server overhead.

Run from the repository root: `.venv/bin/python benchmarks/bench_api.py` (`make bench`).
A private server is started on a free loopback port with its own SQLite database in a temp
dir, so the benchmark never touches `var/` or a configured Postgres/Redis. Only the result
table (and a one-line machine header) goes to stdout; progress goes to stderr.
"""

import argparse
import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, "manage.py"]
HOST = "127.0.0.1"
# About 100 characters, one sentence: one engine chunk, like a typical short API call.
SENTENCE = (
    "The quick brown fox jumps over the lazy dog, "
    "then naps in the warm afternoon sun beside the old red barn."
)
PAYLOAD = {"model": "tts-1", "voice": "alloy", "input": SENTENCE, "response_format": "mp3"}
# (concurrency, measured requests): bounded in count; LEVEL_DEADLINE_S bounds them in time.
LEVELS = ((1, 40), (4, 80), (16, 160))
# CSM through the batching scheduler: two seconds of audio per request (25 frames).
CSM_PAYLOAD = PAYLOAD | {"model": "csm-1b", "max_audio_length_ms": 2000, "seed": 1}
CSM_LEVELS = ((1, 8), (4, 16), (16, 32))
LEVEL_DEADLINE_S = 120.0
REQUEST_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
# Filled by prepare_database: the Authorization header of the benchmark's API key.
HEADERS: dict[str, str] = {}
FORMAT_NAMES = ("mp3", "opus", "aac", "flac", "wav", "pcm")
ENCODE_REPEATS = 5
INPROCESS_RUNS = 40
# Unmeasured runs first: connections, worker threads, codecs and caches warm up.
WARMUP_RUNS = 3
OVERHEAD_GOAL_MS = 5.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# --- Server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def bench_env(var_dir: Path) -> dict[str, str]:
    """The server's environment: own VAR_DIR (SQLite, secret key), no external services."""
    env = dict(os.environ)
    env.update(
        # Empty, not absent: an absent variable would be filled in from a .env file.
        DATABASE_URL="",
        REDIS_URL="",
        VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="csmsite.settings",
        # Above the highest concurrency, so no request is refused with 503 server_busy.
        SPEECH_MAX_INFLIGHT="64",
        # One key sends every request: per-key limits would measure the limiter, not the server.
        RATE_LIMIT_REQUESTS_PER_MINUTE="0",
        RATE_LIMIT_CONCURRENT="0",
        LOG_LEVEL="WARNING",
        # These rows measure eSpeak NG (the csm rows name CSM); nothing is fetched from the Hub.
        DEFAULT_ENGINE="espeak",
        HF_HUB_OFFLINE="1",
    )
    return env


def prepare_database(env: dict[str, str]) -> None:
    """Migrate the private database and make the API key every request is sent with."""
    subprocess.run(
        [*MANAGE, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )
    created = subprocess.run(
        [*MANAGE, "createapikey", "bench"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    # Requests authenticate as a real key does in production: the key is the last line.
    HEADERS["Authorization"] = f"Bearer {created.stdout.strip().splitlines()[-1]}"


@contextmanager
def running_server(env: dict[str, str]) -> Iterator[str]:
    """Start `manage.py serve`, wait for /readyz; always stop it afterwards."""
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    # Server output goes to our stderr: stdout is reserved for the table.
    command = [*MANAGE, "serve", "--host", HOST, "--port", str(port)]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sys.stderr, stderr=sys.stderr)
    try:
        wait_ready(base_url, server)
        yield base_url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log("server ignored SIGTERM; killing it")
            server.kill()
            server.wait()


def wait_ready(base_url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with status {server.returncode} before ready")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {READY_TIMEOUT_S:.0f} s")


# --- HTTP load --------------------------------------------------------------------------------


@dataclass
class Sample:
    total: float
    ttfb: float
    ok: bool


@dataclass
class LevelResult:
    concurrency: int
    samples: list[Sample]
    wall: float
    model: str = "tts-1"

    @property
    def good(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    @property
    def errors(self) -> int:
        return len(self.samples) - len(self.good)

    @property
    def rps(self) -> float:
        return len(self.good) / self.wall if self.wall > 0 else 0.0


async def one_request(client: httpx.AsyncClient, payload: dict = PAYLOAD) -> Sample:
    """POST once, streaming, so the first-byte time is when audio actually arrives."""
    started = time.perf_counter()
    ttfb = float("nan")
    size = 0
    try:
        async with client.stream("POST", "/v1/audio/speech", json=payload) as response:
            async for chunk in response.aiter_raw():
                if size == 0 and chunk:
                    ttfb = time.perf_counter() - started
                size += len(chunk)
            ok = response.status_code == 200 and size > 0
            if not ok:
                log(f"  error: HTTP {response.status_code}, {size} bytes")
    except httpx.HTTPError as exc:
        log(f"  error: {type(exc).__name__}: {exc}")
        ok = False
    return Sample(time.perf_counter() - started, ttfb, ok)


@asynccontextmanager
async def http_client(base_url: str, connections: int) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=timeout, headers=HEADERS
    ) as client:
        yield client


async def run_level(
    base_url: str, concurrency: int, count: int, payload: dict = PAYLOAD
) -> LevelResult:
    """`concurrency` workers share `count` requests; stop early at the level's deadline."""
    async with http_client(base_url, concurrency) as client:
        # Warm-up: open every connection once, so no measured request pays a TCP handshake.
        warmups = max(concurrency, WARMUP_RUNS)
        await asyncio.gather(*(one_request(client, payload) for _ in range(warmups)))
        samples: list[Sample] = []
        remaining = count
        deadline = time.monotonic() + LEVEL_DEADLINE_S

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                samples.append(await one_request(client, payload))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    if remaining > 0:
        log(f"  c={concurrency}: deadline hit, {remaining} requests not sent")
    return LevelResult(concurrency, samples, wall, payload["model"])


# --- In-process measurements ------------------------------------------------------------------


def setup_django(env: dict[str, str]) -> None:
    """Same settings as the server (its VAR_DIR and SQLite DB) for the in-process pipeline."""
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


@dataclass
class EncodeResult:
    name: str
    setup_ms: float
    encode_ms: float  # encode + finish, for the whole audio
    audio_seconds: float

    @property
    def ms_per_audio_second(self) -> float:
        return self.encode_ms / self.audio_seconds


def measure_encoders() -> list[EncodeResult]:
    from speech.audio.encoder import StreamingEncoder
    from speech.audio.formats import FORMATS
    from speech.engines.base import SynthesisParams, VoiceSpec
    from speech.engines.espeak import EspeakEngine
    from speech.text import chunk_text

    engine = EspeakEngine()
    engine.load()
    rate = engine.capabilities.sample_rate
    text = " ".join([SENTENCE] * 12)
    voice = VoiceSpec(name="alloy", standard="alloy")
    chunks = chunk_text(text, engine.capabilities.max_chunk_chars)
    # Keep the engine's own chunking: the encoder sees the same pieces as in a request.
    pieces = list(engine.synthesize(chunks, voice, SynthesisParams()))
    audio_seconds = sum(piece.size for piece in pieces) / rate
    log(f"encode: {audio_seconds:.1f} s of audio in {len(pieces)} pieces at {rate} Hz")
    results = []
    for name in FORMAT_NAMES:
        setups, encodes = [], []
        for _ in range(ENCODE_REPEATS):
            started = time.perf_counter()
            encoder = StreamingEncoder(FORMATS[name], rate)
            opened = time.perf_counter()
            for piece in pieces:
                encoder.encode(piece)
            encoder.finish()
            setups.append(opened - started)
            encodes.append(time.perf_counter() - opened)
        setup_ms, encode_ms = pct(setups, 50) * 1e3, pct(encodes, 50) * 1e3
        results.append(EncodeResult(name, setup_ms, encode_ms, audio_seconds))
    return results


@dataclass
class Overhead:
    """Per-run seconds: HTTP total, and the in-process pipeline's engine, encode and wall."""

    response_format: str
    http: list[float] = field(default_factory=list)
    engine: list[float] = field(default_factory=list)
    encode: list[float] = field(default_factory=list)
    inproc: list[float] = field(default_factory=list)


def pipeline_once(payload: dict) -> tuple[float, float, float]:
    """The view's work minus HTTP: validate, plan, iterate a SpeechStream to the end."""
    from asgiref.sync import async_to_sync

    from api.serializers.speech import SpeechRequestSerializer
    from speech.services import speech_plan
    from speech.synthesis import SpeechStream

    started = time.perf_counter()
    serializer = SpeechRequestSerializer(data=payload)
    serializer.is_valid(raise_exception=True)
    plan = async_to_sync(speech_plan)(user=None, data=serializer.validated_data)
    stream = SpeechStream(plan)
    if sum(len(chunk) for chunk in stream) == 0:
        raise RuntimeError("the in-process pipeline produced no audio")
    wall = time.perf_counter() - started
    return wall, stream.timings.engine_seconds, stream.timings.encode_seconds


async def measure_overhead(base_url: str, response_format: str) -> Overhead:
    """Alternate one in-process run and one HTTP request at c=1.

    Interleaving matters on a shared machine: measured minutes apart, CPU contention and clock
    drift alone moved the pipeline's p50 by tens of ms, more than the overhead being measured.
    The pipeline runs on a worker thread, as it does in the server.
    """
    result = Overhead(response_format)
    payload = PAYLOAD | {"response_format": response_format}
    async with http_client(base_url, 1) as client:
        for run in range(INPROCESS_RUNS + WARMUP_RUNS):
            wall, engine, encode = await asyncio.to_thread(pipeline_once, payload)
            sample = await one_request(client, payload)
            if run >= WARMUP_RUNS and sample.ok:
                result.http.append(sample.total)
                result.inproc.append(wall)
                result.engine.append(engine)
                result.encode.append(encode)
    return result


# --- Report -----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def speech_rows(levels: list[LevelResult], name: str) -> list[list[str]]:
    header = ["# section", "n", "req/s", "p50 ms", "p95 ms", "TTFB p50 ms", "TTFB p95 ms"]
    rows = [[*header, "errors", "vs c=1"]]
    base_rps = levels[0].rps or float("nan")
    for level in levels:
        totals, ttfbs = [s.total for s in level.good], [s.ttfb for s in level.good]
        cells = [len(level.samples), f"{level.rps:.1f}", ms(pct(totals, 50)), ms(pct(totals, 95))]
        cells += [ms(pct(ttfbs, 50)), ms(pct(ttfbs, 95)), level.errors]
        cells += [f"{level.rps / base_rps:.2f}x"]
        rows.append([f"{name} c={level.concurrency}", *map(str, cells)])
    return rows


def encode_rows(encoders: list[EncodeResult]) -> list[list[str]]:
    rows = [["# section", "audio s", "open ms", "encode ms", "ms/audio s", "vs pcm"]]
    pcm = next(e.ms_per_audio_second for e in encoders if e.name == "pcm")
    for e in encoders:
        cells = [f"{e.audio_seconds:.1f}", f"{e.setup_ms:.2f}", f"{e.encode_ms:.1f}"]
        cells += [f"{e.ms_per_audio_second:.2f}", f"{e.ms_per_audio_second / pcm:.1f}x"]
        rows.append([f"encode {e.name}", *cells])
    return rows


def overhead_rows(overheads: list[Overhead]) -> list[list[str]]:
    # What HTTP, ASGI, Django and the thread hand-offs add on top of engine and encoder work.
    # pcm shows the server's own share; mp3 adds the encoder thread competing for the CPUs.
    header = ["# section", "total p50", "engine p50", "encode p50", "in-proc p50", "overhead p50"]
    rows = [[*header, ""]]
    for o in overheads:
        http, engine, encode = pct(o.http, 50), pct(o.engine, 50), pct(o.encode, 50)
        extra_ms = (http - engine - encode) * 1e3
        verdict = "ok" if extra_ms <= OVERHEAD_GOAL_MS else "OVER"
        cells = [ms(http), ms(engine), ms(encode), ms(pct(o.inproc, 50)), f"{extra_ms:.1f}"]
        goal = f"goal <= {OVERHEAD_GOAL_MS:.0f} ms: {verdict}"
        rows.append([f"overhead c=1 {o.response_format}", *cells, goal])
    return rows


def render(rows: list[list[str]]) -> str:
    """One aligned table; each section starts with its own header row (leading '#')."""
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    lines = []
    for row in rows:
        if row[0].startswith("#") and lines:
            lines.append("")  # a blank line between sections keeps one table readable
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=False)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def csm_env(env: dict[str, str], checkpoint: Path) -> dict[str, str]:
    """The same server speaking with CSM from a random checkpoint (no weights needed)."""
    return env | {
        "CSM_MODEL": str(checkpoint),
        "DEFAULT_ENGINE": "csm",
        "CSM_PREPARE_VOICES": "false",
        "WATERMARK": "off",
        "HF_HUB_OFFLINE": "1",
    }


def measure_csm(env: dict[str, str], tmp: Path, size: str) -> list[LevelResult]:
    """Concurrent HTTP clients against CSM: the batching scheduler behind the real API."""
    from speech.engines.csm.random_checkpoint import FULL_SIZE, TINY, build_random_checkpoint

    log(f"csm: building a {size} random checkpoint")
    checkpoint = build_random_checkpoint(tmp / "csm", size=TINY if size == "tiny" else FULL_SIZE)
    levels = []
    with running_server(csm_env(env, checkpoint)) as base_url:
        for concurrency, count in CSM_LEVELS:
            log(f"csm: c={concurrency}, {count} requests")
            levels.append(asyncio.run(run_level(base_url, concurrency, count, CSM_PAYLOAD)))
    return levels


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--csm-size",
        choices=["tiny", "full"],
        default="tiny",
        help="the random CSM checkpoint of the csm rows (full: the CSM-1B architecture, slow)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    print(
        f"bench_api: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; csm rows: {args.csm_size} random checkpoint"
    )
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        env = bench_env(Path(tmp))
        prepare_database(env)
        setup_django(env)
        levels = []
        with running_server(env) as base_url:
            log(f"server ready at {base_url}")
            for concurrency, count in LEVELS:
                log(f"speech: c={concurrency}, {count} requests")
                levels.append(asyncio.run(run_level(base_url, concurrency, count)))
            log(f"overhead: {INPROCESS_RUNS} in-process runs interleaved with HTTP requests")
            overheads = [
                asyncio.run(measure_overhead(base_url, response_format))
                for response_format in ("pcm", "mp3")
            ]
        csm_levels = measure_csm(env, Path(tmp), args.csm_size)
        # The servers are gone: encoding is timed without them competing for the CPUs.
        encoders = measure_encoders()
    rows = speech_rows(levels, "espeak") + speech_rows(csm_levels, "csm")
    print(render(rows + encode_rows(encoders) + overhead_rows(overheads)))


if __name__ == "__main__":
    main()
