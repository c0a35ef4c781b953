"""SIGTERM: the server stops accepting connections at once, lets the requests in flight finish
within SHUTDOWN_GRACE_SECONDS, then exits by itself; one that outlasts the grace period is cut.

The request in flight is a long text streamed as SSE (complete exactly when its
`speech.audio.done` event arrives); the client holds it open by not reading for a while, as
slow clients do, so the signal surely lands in the middle of it.
"""

import json
import signal

import httpx
import pytest

from tests.support.processes import HANG_SECONDS, wait_until

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]

# uvicorn shuts down gracefully, then re-raises the signal it caught.
EXITED_ON_SIGTERM = {0, -signal.SIGTERM}
LONG_TEXT = " ".join(f"This is sentence number {n} of a long reading." for n in range(80))


def new_connections_refused(url: str) -> bool:
    """True when a new connection gets no answer: refused outright, or (when it reached the
    kernel's backlog just before the listening socket closed) reset or closed unanswered."""
    try:
        httpx.get(f"{url}/healthz", timeout=5)
    except (httpx.NetworkError, httpx.RemoteProtocolError):
        return True
    return False


def events(lines) -> list[dict]:
    return [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]


def test_sigterm_finishes_requests_in_flight_and_refuses_new_ones(start_server, api_key):
    # given a server with a grace period longer than the request needs
    server = start_server(SHUTDOWN_GRACE_SECONDS="30")
    with (
        httpx.Client(base_url=server.url, timeout=HANG_SECONDS) as client,
        client.stream(
            "POST",
            "/v1/audio/speech",
            headers={"Authorization": f"Bearer {api_key}"},
            json={
                "model": "tts-1",
                "input": LONG_TEXT,
                "response_format": "pcm",
                "stream_format": "sse",
            },
        ) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        first = events([next(lines)])
        assert first[0]["type"] == "speech.audio.delta"

        # when the server is told to stop while the request is in flight
        server.process.signal(signal.SIGTERM)

        # then it takes no new connections
        wait_until(
            lambda: new_connections_refused(server.url),
            timeout=HANG_SECONDS,
            what="new connections to be refused",
        )
        assert server.process.alive()
        # and the request in flight is answered completely
        rest = events(lines)
    assert rest, "nothing came after the first event"
    assert {event["type"] for event in rest[:-1]} == {"speech.audio.delta"}
    assert rest[-1]["type"] == "speech.audio.done"
    assert rest[-1]["usage"]["input_tokens"] > 0
    # and then the server exits by itself, as the signal asked (uvicorn re-raises it once done)
    assert server.process.popen.wait(timeout=HANG_SECONDS) in EXITED_ON_SIGTERM


def test_a_request_that_outlasts_the_grace_period_is_cut_and_the_server_exits(
    start_server, api_key
):
    # given a short grace period and a client that stops reading a long answer
    server = start_server(SHUTDOWN_GRACE_SECONDS="1")
    with (
        httpx.Client(base_url=server.url, timeout=HANG_SECONDS) as client,
        client.stream(
            "POST",
            "/v1/audio/speech",
            headers={"Authorization": f"Bearer {api_key}"},
            json={"model": "tts-1", "input": LONG_TEXT, "response_format": "pcm", "speed": 0.25},
        ) as response,
    ):
        assert response.status_code == 200
        chunks = response.iter_raw()
        next(chunks)

        # when the server is told to stop
        server.process.signal(signal.SIGTERM)

        # then it exits once the grace period is over, without waiting for the client
        assert server.process.popen.wait(timeout=HANG_SECONDS) in EXITED_ON_SIGTERM
        # and the answer it could not finish is cut off, not passed off as complete
        with pytest.raises(httpx.RemoteProtocolError):
            for _ in chunks:
                pass
