"""A WebSocket upgrade on a path no consumer serves is closed as not found (4404), never a 500
with a traceback, with or without credentials, over a real connection to the live server."""

import logging
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.django_db(transaction=True)

UNROUTED = [
    "/",
    "/ws/nothing/",
    "/ws/jobs/",
    "/ws/jobs/a/b/",
    "/ws/jobs",
    "/v1/audio/speech",
    "/api/v1/voice-cloning/jobs/00000000-0000-0000-0000-000000000000",
    "/login/",
    "/%00",
    "/..%2F..%2Fetc%2Fpasswd",
    "/" + "a" * 2000,
    "/ws/nothing/?job=1",
]


@pytest.fixture
def server_errors() -> Iterator[list[logging.LogRecord]]:
    """Errors the server logs (uvicorn's own logger does not reach the root logger)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "django", "")]
    for logger in loggers:
        logger.addHandler(handler)
    yield records
    for logger in loggers:
        logger.removeHandler(handler)


def _close_code(url: str, headers: dict[str, str]) -> int | None:
    with connect(url, additional_headers=headers, open_timeout=30, close_timeout=10) as ws:
        try:
            ws.recv(timeout=30)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    raise AssertionError(f"{url} sent a message")


@pytest.mark.parametrize("path", UNROUTED)
def test_an_unrouted_websocket_path_closes_as_not_found(
    live_server_url, alice_key, server_errors, path
):
    url = live_server_url.replace("http://", "ws://") + path
    for headers in ({}, {"Authorization": f"Bearer {alice_key}"}):
        assert _close_code(url, headers) == 4404, (path, headers)

    assert [record.getMessage() for record in server_errors] == []


def test_the_job_route_still_answers_for_itself(live_server_url, server_errors):
    # Routed, but without a key: the job consumer's own "not authenticated".
    url = live_server_url.replace("http://", "ws://") + "/ws/jobs/not-a-uuid/"

    assert _close_code(url, {}) == 4401
    assert server_errors == []
