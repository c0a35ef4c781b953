"""A bounded load on a live server, over loopback: concurrent clients, each looping over a mix of
requests for a fixed time, every answer checked to the last byte.

Each answer is one of:
- accepted: 200, and complete (the audio's whole body arrived and looks like its format, the
  SSE stream ended with `speech.audio.done`, the JSON parsed);
- refused: 429 or 503 with `Retry-After` and an OpenAI error body (the client waits as told);
- a server error: any other 5xx, or a 503 without `Retry-After`;
- incomplete: a 200 whose body was cut, malformed, or never came (connection error, timeout);
- unexpected: any other status (a 4xx the mix never provokes).

Most clients have a key of their own and pace themselves like a chat UI reading sentences out;
a few share one key and send as fast as they can, to be refused by the per-key limits
(requests per minute, generations at once).
"""

import asyncio
import base64
import json
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

SENTENCES = [
    "Hello there.",
    "The weather today is mild, with a light breeze from the west.",
    "Please remember to bring the documents to the meeting at 3:30 pm.",
    "It cost $12.50, which is 20% less than last year.",
    "Once upon a time, in a small village by the sea, there lived an old fisherman.",
    "Can you hear me now?",
    "The quick brown fox jumps over the lazy dog, again and again and again.",
    "Dr. Smith will see you on Jan. 5th at the St. James clinic.",
]
FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


def looks_like(fmt: str, body: bytes) -> bool:
    """Whether a complete body of `fmt` begins as that format does."""
    if not body:
        return False
    if fmt == "mp3":
        return body.startswith(b"ID3") or (body[0] == 0xFF and body[1] & 0xE0 == 0xE0)
    if fmt == "opus":
        return body.startswith(b"OggS")
    if fmt == "aac":
        return body[0] == 0xFF and body[1] & 0xF0 == 0xF0
    if fmt == "flac":
        return body.startswith(b"fLaC")
    if fmt == "wav":
        return body.startswith(b"RIFF") and body[8:12] == b"WAVE"
    return len(body) % 2 == 0  # pcm: 16-bit samples


@dataclass
class Outcome:
    kind: str  # the request's kind, e.g. "speech:mp3"
    result: str  # accepted | refused | server_error | incomplete | unexpected
    status: int | None
    seconds: float
    first_byte_seconds: float | None = None
    detail: str = ""
    # The error code of a refusal (rate_limit_exceeded, server_busy, ...).
    code: str = ""


@dataclass
class LoadReport:
    clients: int
    seconds: float
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, result: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.result == result)

    @property
    def requests(self) -> int:
        return len(self.outcomes)

    @property
    def statuses(self) -> Counter:
        return Counter(outcome.status for outcome in self.outcomes)

    def refused_by(self, status: int) -> int:
        return sum(1 for o in self.outcomes if o.result == "refused" and o.status == status)

    def refusal_codes(self) -> Counter:
        return Counter(f"{o.status} {o.code}" for o in self.outcomes if o.result == "refused")

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result not in {"accepted", "refused"}]

    def latency(self, quantile: float, *, speech_only: bool = False, ttfb: bool = False) -> float:
        values = [
            (o.first_byte_seconds if ttfb else o.seconds)
            for o in self.outcomes
            if o.result == "accepted"
            and (not speech_only or o.kind.startswith("speech"))
            and (not ttfb or o.first_byte_seconds is not None)
        ]
        if not values:
            return float("nan")
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[round(quantile * 100) - 1]

    def summary(self) -> str:
        kinds = Counter((o.kind.split(":")[0], o.result, o.status) for o in self.outcomes)
        return ", ".join(f"{k}={n}" for k, n in sorted(kinds.items(), key=str))

    @property
    def held(self) -> bool:
        return self.requests > 0 and self.count("accepted") > 0 and not self.failures()


def _refusal(response: httpx.Response, body: bytes) -> str:
    """'' when a 429/503 is a proper refusal, else what is wrong with it."""
    if "retry-after" not in response.headers:
        return "no Retry-After"
    try:
        error = json.loads(body)["error"]
        assert {"message", "type", "code"} <= set(error)
    except (ValueError, KeyError, TypeError, AssertionError):
        return "not an OpenAI error body"
    return ""


class Client:
    def __init__(
        self,
        http: httpx.AsyncClient,
        key: str,
        rng: random.Random,
        *,
        greedy: bool,
        deadline: float,
        report: LoadReport,
    ) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {key}"}
        self.rng = rng
        self.greedy = greedy
        self.deadline = deadline
        self.report = report

    def _pick(self) -> tuple[str, dict]:
        if self.greedy:
            return "speech", {"response_format": self.rng.choice(FORMATS)}
        roll = self.rng.random()
        if roll < 0.62:
            return "speech", {"response_format": self.rng.choice(FORMATS)}
        if roll < 0.72:
            return "speech-sse", {"response_format": self.rng.choice(["pcm", "mp3"])}
        if roll < 0.82:
            return "get", {"path": "/v1/audio/voices"}
        if roll < 0.90:
            return "get", {"path": "/v1/models"}
        if roll < 0.95:
            return "get", {"path": "/v1/audio/models"}
        return "get", {"path": "/v1/audio/speech/response-formats"}

    async def run(self) -> None:
        while time.monotonic() < self.deadline:
            kind, options = self._pick()
            outcome = await self._request(kind, options)
            self.report.outcomes.append(outcome)
            if outcome.result == "refused":
                # As told, within reason: a per-minute refusal may say up to a minute.
                wait = min(float(outcome.detail or 1), 0.2 if self.greedy else 2.0)
                await asyncio.sleep(wait)
            elif not self.greedy:
                await asyncio.sleep(self.rng.uniform(0.0, 0.5))

    async def _request(self, kind: str, options: dict) -> Outcome:
        started = time.monotonic()
        if kind == "get":
            label = f"get:{options['path']}"
            request = self.http.build_request("GET", options["path"], headers=self.headers)
        else:
            fmt = options["response_format"]
            label = f"{kind}:{fmt}"
            body = {
                "model": self.rng.choice(["tts-1", "tts-1-hd", "gpt-4o-mini-tts"]),
                "voice": self.rng.choice(["alloy", "echo", "nova", "onyx", "shimmer"]),
                "input": self.rng.choice(SENTENCES),
                "response_format": fmt,
                "speed": self.rng.choice([1.0, 1.0, 1.25, 0.8]),
            }
            if kind == "speech-sse":
                body["stream_format"] = "sse"
            request = self.http.build_request(
                "POST", "/v1/audio/speech", json=body, headers=self.headers
            )
        first_byte = None
        try:
            response = await self.http.send(request, stream=True)
            try:
                chunks = []
                async for chunk in response.aiter_raw():
                    if first_byte is None:
                        first_byte = time.monotonic() - started
                    chunks.append(chunk)
                data = b"".join(chunks)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            return Outcome(
                label, "incomplete", None, time.monotonic() - started, detail=repr(exc)[:200]
            )
        seconds = time.monotonic() - started
        status = response.status_code
        text = data[:200].decode(errors="replace")
        if status in {429, 503}:
            problem = _refusal(response, data)
            if not problem:
                retry_after = response.headers["retry-after"]
                code = str(json.loads(data)["error"].get("code") or "")
                return Outcome(label, "refused", status, seconds, detail=retry_after, code=code)
            result = "server_error" if status == 503 else "unexpected"
            return Outcome(label, result, status, seconds, detail=problem)
        if status >= 500:
            return Outcome(label, "server_error", status, seconds, detail=text)
        if status != 200:
            return Outcome(label, "unexpected", status, seconds, detail=text)
        problem = self._check(kind, options, response, data)
        if problem:
            return Outcome(label, "incomplete", status, seconds, first_byte, detail=problem)
        return Outcome(label, "accepted", status, seconds, first_byte)

    @staticmethod
    def _check(kind: str, options: dict, response: httpx.Response, data: bytes) -> str:
        content_type = response.headers.get("content-type", "")
        if kind == "get":
            try:
                json.loads(data)
            except ValueError:
                return "a JSON answer that does not parse"
            return ""
        if kind == "speech-sse":
            events = [
                json.loads(line[len(b"data: ") :])
                for line in data.split(b"\n\n")
                if line.startswith(b"data: ")
            ]
            if not events or events[-1].get("type") != "speech.audio.done":
                return "an SSE stream without speech.audio.done"
            audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
            if not looks_like(options["response_format"], audio):
                return "SSE audio that is not its format"
            return ""
        fmt = options["response_format"]
        if not content_type.startswith(CONTENT_TYPES[fmt]):
            return f"content type {content_type!r} for {fmt}"
        if not looks_like(fmt, data):
            return f"a body that is not {fmt}"
        return ""


async def run_load(
    base_url: str,
    keys: list[str],
    greedy_key: str,
    *,
    clients: int = 50,
    greedy_clients: int = 5,
    seconds: float = 60.0,
    seed: int = 0,
    timeout: float = 120.0,
) -> LoadReport:
    """`clients` clients for `seconds`: `greedy_clients` of them share `greedy_key`, the others
    take turns over `keys`."""
    report = LoadReport(clients=clients, seconds=seconds)
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as http:
        deadline = time.monotonic() + seconds
        workers = [
            Client(
                http,
                greedy_key if index < greedy_clients else keys[index % len(keys)],
                random.Random(seed * 1000 + index),
                greedy=index < greedy_clients,
                deadline=deadline,
                report=report,
            )
            for index in range(clients)
        ]
        await asyncio.gather(*(worker.run() for worker in workers))
    return report
