"""One user against the others, on an embedded server (no broker, the in-process cache): the rows
`make reliability` adds for the hardening of issue 15.

- greedy user: one user with many keys sends long requests back to back on all of them, while a
  polite user sends one short request a second; the polite user's success rate must stay at or
  above POLITE_SUCCESS_MIN.
- cache flooding: a key at its per-minute limit and a username at its sign-in limit stay
  refused after many unrelated cache entries (fresh idempotency keys, failed sign-ins for random
  names).
- slow clients: connections that trickle their request head or body are closed by the server,
  which meanwhile answers /healthz within HEALTH_MAX_SECONDS.
- parallel clone jobs: while one user starts many clones at once, another user's speech
  requests take at most CLONE_LATENCY_FACTOR times as long as when the server is idle.

Each scenario returns a row (its name, what it measured, whether it held). Timings are reported
and compared with the bounds the issue sets; nothing here waits without a bound.
"""

import asyncio
import re
import secrets
import statistics
import time
from dataclasses import dataclass

import httpx

POLITE_SUCCESS_MIN = 0.95
HEALTH_MAX_SECONDS = 1.0
CLONE_LATENCY_FACTOR = 2.0
# The settings of the embedded server these scenarios run against (on top of the load's).
SERVER_SETTINGS = {
    "SPEECH_MAX_INFLIGHT": "12",
    "HTTP_MAX_CONNECTIONS": "200",
    "HTTP_HEADER_TIMEOUT_SECONDS": "3",
    "REQUEST_BODY_TIMEOUT_SECONDS": "3",
}
GREEDY_KEYS = 9
LONG_TEXT = " ".join(f"This is sentence number {n} of a long reading." for n in range(20))
# Another user's request while clones run: a few sentences, long enough that noise is small.
BYSTANDER_TEXT = " ".join(f"This is sentence number {n} of a short reading." for n in range(4))
SIGN_IN_FAILURES = 10
SLOW_HEADERS = 150
SLOW_BODIES = 150
# How long any one scenario may wait for the server before calling it a hang.
HANG_SECONDS = 120.0


@dataclass
class Row:
    name: str
    text: str
    ok: bool


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# Stands for "no HTTP answer": the connection failed or was closed under the request (a kept-alive
# connection the server timed out as the client reused it, say). Counted as a failure.
NO_ANSWER = 0


async def _speak(http: httpx.AsyncClient, key: str, text: str = "Hello there.") -> int:
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav"}
    try:
        response = await http.post("/v1/audio/speech", json=body, headers=_bearer(key))
    except httpx.TransportError:
        return NO_ANSWER
    return response.status_code


# --- Greedy user ---------------------------------------------------------------------------------


async def greedy_user(url: str, greedy_keys: list[str], polite_key: str, seconds: float) -> Row:
    deadline = time.monotonic() + seconds
    greedy_statuses: list[int] = []
    polite_statuses: list[int] = []
    limits = httpx.Limits(max_connections=len(greedy_keys) * 4 + 10)
    async with httpx.AsyncClient(base_url=url, timeout=HANG_SECONDS, limits=limits) as http:

        async def greedy(key: str) -> None:
            while time.monotonic() < deadline:
                status = await _speak(http, key, LONG_TEXT)
                greedy_statuses.append(status)
                if status != 200:
                    await asyncio.sleep(0.05)

        async def polite() -> None:
            await asyncio.sleep(1.0)  # the greedy user has the slots first
            while time.monotonic() < deadline:
                polite_statuses.append(await _speak(http, polite_key))
                await asyncio.sleep(1.0)

        await asyncio.gather(polite(), *(greedy(key) for key in greedy_keys for _ in range(4)))
    succeeded = sum(1 for status in polite_statuses if status == 200)
    rate = succeeded / len(polite_statuses) if polite_statuses else 0.0
    refused = {s: greedy_statuses.count(s) for s in sorted(set(greedy_statuses))}
    return Row(
        "greedy user vs polite",
        f"polite user {succeeded}/{len(polite_statuses)} succeeded ({rate:.0%}, must be >= "
        f"{POLITE_SUCCESS_MIN:.0%}) while a user with {len(greedy_keys)} keys x 4 streams sent "
        f"{len(greedy_statuses)} requests (by status: {refused})",
        rate >= POLITE_SUCCESS_MIN,
    )


# --- Cache flooding ------------------------------------------------------------------------------


def _csrf(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    return match.group(1) if match else ""


async def _sign_in(http: httpx.AsyncClient, username: str, password: str) -> bool:
    """Whether the login page signs in (a redirect); a refusal looks the same whether the
    password was wrong or the name is throttled, so a throttle shows as the right password
    refused."""
    http.cookies.clear()
    page = await http.get("/login/")
    response = await http.post(
        "/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": _csrf(page.text)},
        headers={"Referer": f"{http.base_url}login/"},
    )
    return response.status_code in {301, 302, 303}


async def _flood_idempotency_keys(http: httpx.AsyncClient, key: str, entries: int) -> None:
    """`entries` cheap requests (refused: no recording), each with a fresh Idempotency-Key."""

    async def one(number: int) -> None:
        await http.post(
            "/v1/voice-cloning/clone",
            data={"name": f"flood-{number}"},
            headers={**_bearer(key), "Idempotency-Key": secrets.token_hex(16)},
        )

    for start in range(0, entries, 50):
        await asyncio.gather(*(one(number) for number in range(start, min(entries, start + 50))))


async def cache_flooding(
    url: str, limited_key: str, victim: str, victim_password: str, entries: int
) -> Row:
    async with httpx.AsyncClient(base_url=url, timeout=HANG_SECONDS) as http:
        # given a key at its per-minute limit
        spoken = 0
        while spoken < 500 and await _speak(http, limited_key) == 200:
            spoken += 1
        key_limited = await _speak(http, limited_key) == 429
        # when many unrelated entries go into the cache (within the limit's minute)
        started = time.monotonic()
        await _flood_idempotency_keys(http, limited_key, entries)
        flood_seconds = time.monotonic() - started
        # then the key is still refused
        key_still = await _speak(http, limited_key) == 429

        # given a username at its sign-in limit (more failures than LOGIN_MAX_FAILURES' default)
        # (its right password signs in until then: the page itself works)
        signs_in = await _sign_in(http, victim, victim_password)
        for _ in range(SIGN_IN_FAILURES):
            await _sign_in(http, victim, "wrong password")
        sign_in_limited = not await _sign_in(http, victim, victim_password)
        # when failed sign-ins for random names and more fresh idempotency keys go in
        failed_sign_ins = max(1, entries // 10)
        for _ in range(failed_sign_ins):
            await _sign_in(http, f"nobody-{secrets.token_hex(6)}", "wrong password")
        await _flood_idempotency_keys(http, limited_key, entries)
        # then the username is still refused, even with its right password
        sign_in_still = not await _sign_in(http, victim, victim_password)
    held = key_limited and signs_in and sign_in_limited and key_still and sign_in_still
    return Row(
        "cache flooding",
        f"key at its per-minute limit ({spoken} requests; 429 before: {key_limited}) "
        f"{'still 429' if key_still else 'served again'} after {entries} fresh Idempotency-Keys "
        f"in {flood_seconds:.0f} s; username at its sign-in limit (signed in before its "
        f"failures: {signs_in}; throttled after them: {sign_in_limited}) "
        f"{'still refused' if sign_in_still else 'let in'} after "
        f"{failed_sign_ins} failed sign-ins for random names and {entries} more keys",
        held,
    )


# --- Slow clients --------------------------------------------------------------------------------


async def _hold(host: str, port: int, head: bytes, trickle: bytes, until: float) -> float | None:
    """Send `head`, then `trickle` every second; seconds until the server closed the connection
    (None if it was still open at `until`)."""
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return 0.0  # refused at once: shed too
    try:
        writer.write(head)
        while time.monotonic() < until:
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout=1.0)
            except TimeoutError:
                writer.write(trickle)
                try:
                    await writer.drain()
                except ConnectionError:
                    return time.monotonic() - started
                continue
            except ConnectionError:
                return time.monotonic() - started
            if not data:
                return time.monotonic() - started
        return None
    finally:
        writer.close()


async def slow_clients(url: str) -> Row:
    parsed = httpx.URL(url)
    until = time.monotonic() + HANG_SECONDS
    header = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    body_head = (
        b"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    holders = [
        *(
            _hold(parsed.host, parsed.port, header, b"X-Slow: 1\r\n", until)
            for _ in range(SLOW_HEADERS)
        ),
        *(_hold(parsed.host, parsed.port, body_head, b" ", until) for _ in range(SLOW_BODIES)),
    ]
    health: list[float | None] = []

    async def probe(done: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=HANG_SECONDS) as http:
            while not done.is_set():
                started = time.monotonic()
                try:
                    ok = (await http.get("/healthz", headers={"Connection": "close"})).is_success
                except httpx.HTTPError:
                    ok = False
                health.append(time.monotonic() - started if ok else None)
                await asyncio.sleep(0.5)

    done = asyncio.Event()
    prober = asyncio.create_task(probe(done))
    closed = await asyncio.gather(*holders)
    done.set()
    await prober
    shed = [seconds for seconds in closed if seconds is not None]
    answered = [seconds for seconds in health if seconds is not None]
    slowest = max(answered, default=float("nan"))
    held = (
        len(shed) == len(closed)
        and len(answered) == len(health)
        and bool(answered)
        and slowest <= HEALTH_MAX_SECONDS
    )
    return Row(
        "slow clients",
        f"{len(shed)}/{len(closed)} slow connections closed by the server ({SLOW_HEADERS} "
        f"trickling headers, {SLOW_BODIES} trickling bodies; the last after "
        f"{max(shed, default=float('nan')):.1f} s); /healthz answered {len(answered)}/"
        f"{len(health)}, slowest {slowest:.2f} s (must be <= {HEALTH_MAX_SECONDS:g} s)",
        held,
    )


# --- Parallel clone jobs -------------------------------------------------------------------------


async def _latencies(http: httpx.AsyncClient, key: str, count: int) -> list[float]:
    values = []
    for _ in range(count):
        started = time.monotonic()
        status = await _speak(http, key, BYSTANDER_TEXT)
        if status == 200:
            values.append(time.monotonic() - started)
        await asyncio.sleep(0.2)
    return values


async def parallel_clones(
    url: str, cloner_key: str, bystander_key: str, sample: bytes, transcript: str, clones: int
) -> Row:
    async with httpx.AsyncClient(base_url=url, timeout=HANG_SECONDS) as http:
        idle = await _latencies(http, bystander_key, 10)

        async def clone(number: int) -> int:
            response = await http.post(
                "/v1/voice-cloning/clone",
                data={"name": f"parallel-{number}", "transcript": transcript, "consent": "true"},
                files={"audio_file": ("sample.wav", sample, "audio/wav")},
                headers=_bearer(cloner_key),
            )
            return response.status_code

        jobs = [asyncio.create_task(clone(number)) for number in range(clones)]
        await asyncio.sleep(0.5)  # the uploads are in and their jobs started
        busy = await _latencies(http, bystander_key, 10)
        statuses = await asyncio.gather(*jobs)
    idle_p50 = statistics.median(idle) if idle else float("nan")
    busy_p50 = statistics.median(busy) if busy else float("nan")
    held = bool(idle) and len(busy) == 10 and busy_p50 <= CLONE_LATENCY_FACTOR * idle_p50
    by_status = {s: statuses.count(s) for s in sorted(set(statuses))}
    return Row(
        "parallel clone jobs",
        f"another user's speech p50 {busy_p50:.2f} s during {clones} parallel clones "
        f"(by status: {by_status}) vs {idle_p50:.2f} s idle "
        f"(must be <= {CLONE_LATENCY_FACTOR:g}x); {len(busy)}/10 answered",
        held,
    )
