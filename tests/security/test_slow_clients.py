"""Slow clients cannot hold connections: a request head must arrive within
HTTP_HEADER_TIMEOUT_SECONDS, a body must keep up REQUEST_BODY_MIN_BYTES_PER_SECOND once
REQUEST_BODY_TIMEOUT_SECONDS have passed, and beyond HTTP_MAX_CONNECTIONS the connection waiting
longest for its head is closed to make room, while the health probes keep answering.

Over a real `manage.py serve` process (raw sockets: no HTTP client library sends a request this
slowly). Every wait below only stops a hang; none measures speed.
"""

import select
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import HANG_SECONDS, Server, server_env, start_server, wait_until

pytestmark = pytest.mark.system

# Seconds between the pieces a slow client sends.
TRICKLE_INTERVAL = 0.2
SHORT_BOUNDS = {
    "HTTP_HEADER_TIMEOUT_SECONDS": "1",
    "REQUEST_BODY_TIMEOUT_SECONDS": "1",
    "REQUEST_BODY_MIN_BYTES_PER_SECOND": "1000",
}
# Bounds that never fire during a test, so that only the connection cap sheds anyone.
CAP = 6
CAP_ONLY = {
    "HTTP_HEADER_TIMEOUT_SECONDS": "600",
    "REQUEST_BODY_TIMEOUT_SECONDS": "600",
    "REQUEST_BODY_MIN_BYTES_PER_SECOND": "1",
    "HTTP_MAX_CONNECTIONS": str(CAP),
}


def slow_clients_server(base: Path, **settings: str) -> Server:
    """`manage.py serve` on its own VAR_DIR: nothing here reaches the database (bodies and heads
    are refused before Django, and /healthz reads nothing)."""
    var_dir = Path(tempfile.mkdtemp(prefix="var-", dir=base))
    env = server_env(
        var_dir,
        SECRET_KEY="slow-clients-tests-" + "x" * 40,
        SHUTDOWN_GRACE_SECONDS="1",
        **settings,
    )
    return start_server(env, var_dir)


@pytest.fixture(scope="module")
def server_factory(tmp_path_factory) -> Iterator[Callable[..., Server]]:
    started: dict[tuple, Server] = {}
    base = tmp_path_factory.mktemp("slow-clients")

    def get(**settings: str) -> Server:
        key = tuple(sorted(settings.items()))
        if key not in started:
            started[key] = slow_clients_server(base, **settings)
        return started[key]

    yield get
    for server in started.values():
        server.process.stop()


@pytest.fixture
def bounded_server(server_factory) -> Server:
    return server_factory(**SHORT_BOUNDS)


@pytest.fixture
def capped_server(server_factory) -> Server:
    return server_factory(**CAP_ONLY)


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=HANG_SECONDS)
    sock.setblocking(False)
    return sock


def closed_by_server(sock: socket.socket, received: bytearray) -> bool:
    """Read what has arrived; True once the server has closed its end."""
    while select.select([sock], [], [], 0)[0]:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not data:
            return True
        received.extend(data)
    return False


def trickle_until_closed(sock: socket.socket, pieces: Iterable[bytes]) -> bytes:
    """Send `pieces` one every TRICKLE_INTERVAL (then nothing) until the server closes the
    connection; what it answered. Fails if the connection is still open after HANG_SECONDS."""
    received = bytearray()
    pieces = iter(pieces)
    deadline = time.monotonic() + HANG_SECONDS
    try:
        while time.monotonic() < deadline:
            if closed_by_server(sock, received):
                return bytes(received)
            piece = next(pieces, None)
            if piece is not None:
                try:
                    sock.sendall(piece)
                except (ConnectionResetError, BrokenPipeError):
                    return bytes(received)
            select.select([sock], [], [], TRICKLE_INTERVAL)
    finally:
        sock.close()
    raise AssertionError(f"the server kept the connection open for {HANG_SECONDS:g} s")


def each_byte(data: bytes) -> Iterator[bytes]:
    return (data[i : i + 1] for i in range(len(data)))


def forever(piece: bytes) -> Iterator[bytes]:
    while True:
        yield piece


HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def nothing() -> Iterator[bytes]:
    return iter(())


def one_byte_at_a_time() -> Iterator[bytes]:
    # A head long enough that it is still incomplete when any bound fires.
    return each_byte(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 10_000)


def request_line_then_nothing() -> Iterator[bytes]:
    return iter([b"GET /healthz HTTP/1.1\r\n"])


def headers_never_terminated() -> Iterator[bytes]:
    yield b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    for n in range(10_000):
        yield f"X-Header-{n}: {n}\r\n".encode()


def a_second_request_kept_alive_then_stalled() -> Iterator[bytes]:
    yield HEAD
    yield b"GET /healthz HTTP/1.1\r\n"
    yield from forever(b"X-Slow: 1\r\n")


@pytest.mark.parametrize(
    "pieces",
    [
        nothing,
        one_byte_at_a_time,
        request_line_then_nothing,
        headers_never_terminated,
        a_second_request_kept_alive_then_stalled,
    ],
)
def test_a_request_head_that_never_completes_is_closed(bounded_server, pieces):
    # given a client that connects and sends its request head slowly, or never finishes it
    sock = connect(bounded_server)

    # when it keeps trickling, then the server closes the connection
    answered = trickle_until_closed(sock, pieces())

    # having answered nothing but the complete requests it got
    assert answered.count(b"HTTP/1.1 ") == answered.count(b"HTTP/1.1 200 ")
    # and it still answers everyone else
    assert httpx.get(f"{bounded_server.url}/healthz", timeout=HANG_SECONDS).status_code == 200


def post_head(length: int | None, extra: bytes = b"") -> bytes:
    framing = (
        f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    )
    return (
        (
            "POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\n{framing}"
        ).encode()
        + extra
        + b"\r\n"
    )


def byte_by_byte_body() -> Iterator[bytes]:
    yield post_head(100_000)
    yield from forever(b" ")


def chunked_byte_by_byte_body() -> Iterator[bytes]:
    yield post_head(None)
    yield from forever(b"1\r\n \r\n")


def a_fast_start_then_a_trickle() -> Iterator[bytes]:
    # Well above the minimum rate at first: only the average over time gives it away.
    yield post_head(100_000)
    yield b" " * 2000
    yield from forever(b" ")


def half_a_body_then_a_stall() -> Iterator[bytes]:
    yield post_head(100_000)
    yield b" " * 50_000


@pytest.mark.parametrize(
    "pieces",
    [
        byte_by_byte_body,
        chunked_byte_by_byte_body,
        a_fast_start_then_a_trickle,
        half_a_body_then_a_stall,
    ],
)
def test_a_request_body_below_the_minimum_rate_is_given_up(bounded_server, pieces):
    # given a client that sends a request head, then its body slower than the minimum rate
    sock = connect(bounded_server)

    # when it keeps trickling, then the server answers 408 and closes the connection
    answered = trickle_until_closed(sock, pieces())
    assert answered.startswith(b"HTTP/1.1 408 "), answered[:200]
    assert b'"request_timeout"' in answered
    # and it still answers everyone else
    assert httpx.get(f"{bounded_server.url}/healthz", timeout=HANG_SECONDS).status_code == 200


def test_a_body_sent_steadily_is_not_cut(bounded_server):
    # given a body that takes several body timeouts to send, but above the minimum rate
    body = b'{"model": "tts-1", "voice": "alloy", "input": "Hi."}'.ljust(6000, b" ")
    sock = connect(bounded_server)
    # Each piece earns a second at the minimum rate, and comes after TRICKLE_INTERVAL.
    pieces = [post_head(len(body)), *(body[i : i + 1000] for i in range(0, len(body), 1000))]
    try:
        for piece in pieces:
            sock.sendall(piece)
            select.select([sock], [], [], TRICKLE_INTERVAL)
        # then it reaches the application, which answers it
        received = response_head(sock)
    finally:
        sock.close()
    assert received.startswith(b"HTTP/1.1 "), received[:200]
    assert not received.startswith(b"HTTP/1.1 408 "), received[:200]


# A proxy's pool: its idle connections outlive the header bound, within the keep-alive one.
KEPT_ALIVE = {"HTTP_HEADER_TIMEOUT_SECONDS": "1", "HTTP_KEEPALIVE_SECONDS": "8"}


def test_an_idle_kept_alive_connection_lasts_the_keep_alive_not_the_header_bound(
    server_factory,
):
    # given a server whose heads must arrive within 1 s, and idle connections last 8 s
    server = server_factory(**KEPT_ALIVE)
    sock = connect(server)
    try:
        sock.sendall(HEAD)
        assert b"HTTP/1.1 200 " in response_head(sock)

        # when the connection stays idle longer than the header bound, as a pooled one does
        time.sleep(3)

        # then it is still open, and the next request on it is answered
        assert still_open(sock)
        sock.sendall(HEAD)
        assert b"HTTP/1.1 200 " in response_head(sock)

        # and once idle for the keep-alive time, the server closes it
        wait_until(lambda: closed_by_server(sock, bytearray()), timeout=HANG_SECONDS, what="close")
    finally:
        sock.close()


def response_head(sock: socket.socket) -> bytes:
    """What the server answers on `sock`, up to the end of a response head (or its close)."""
    received = bytearray()
    wait_until(
        lambda: closed_by_server(sock, received) or b"\r\n\r\n" in received,
        timeout=HANG_SECONDS,
        what="an answer",
    )
    return bytes(received)


def still_open(sock: socket.socket) -> bool:
    return not closed_by_server(sock, bytearray())


def test_beyond_the_cap_the_longest_waiting_connections_are_closed(capped_server):
    # given more connections than the cap, each with an unfinished request head
    socks = []
    for _ in range(CAP + 4):
        sock = connect(capped_server)
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        socks.append(sock)
    try:
        # when one more client asks for the health probe
        health = httpx.get(f"{capped_server.url}/healthz", timeout=HANG_SECONDS)

        # then it is answered
        assert health.status_code == 200
        # and the oldest of the waiting connections were closed to make room for the others
        wait_until(
            lambda: not any(still_open(sock) for sock in socks[:5]),
            timeout=HANG_SECONDS,
            what="the oldest connections to be closed",
        )
        assert all(still_open(sock) for sock in socks[-(CAP - 2) :])
    finally:
        for sock in socks:
            sock.close()


def test_with_every_connection_mid_request_health_is_answered_and_the_rest_refused(
    capped_server,
):
    # given as many connections as the cap, each in the middle of a slow request body
    socks = []
    for _ in range(CAP):
        sock = connect(capped_server)
        # The server's "100 Continue" shows that the head was read and the body is awaited.
        sock.sendall(post_head(100_000, b"Expect: 100-continue\r\n"))
        socks.append(sock)
        answered = response_head(sock)
        assert answered.startswith(b"HTTP/1.1 100 "), bytes(answered)
        sock.sendall(b" ")
    try:
        # when more clients come: then the health probes are answered
        for path in ["/healthz", "/readyz", "/healthz"]:
            response = httpx.get(f"{capped_server.url}{path}", timeout=HANG_SECONDS)
            assert response.status_code in {200, 503}
            assert response.headers["content-type"] == "application/json", response.text
        # and anything else is refused while the cap is full
        for path in ["/v1/models", "/login/", "/"]:
            response = httpx.get(f"{capped_server.url}{path}", timeout=HANG_SECONDS)
            assert response.status_code == 503
            assert response.text == "Service Unavailable"
    finally:
        for sock in socks:
            sock.close()
    # and once they are gone, everything is served again
    wait_until(
        lambda: (
            httpx.get(f"{capped_server.url}/v1/models", timeout=HANG_SECONDS).status_code != 503
        ),
        timeout=HANG_SECONDS,
        what="the server to serve again",
    )
