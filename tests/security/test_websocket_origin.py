"""The job WebSocket takes an Origin only if it is this server's own: scheme, host and port as
the client reached it, on a host in ALLOWED_HOSTS (or an origin in CSRF_TRUSTED_ORIGINS).

A browser sends its session cookie with a WebSocket from any page; only the Origin tells this
server's page from another's. Each refusal is the handshake's 403; an accepted socket reaches
the route, which closes it for its own reason (no key: 4401; no route: 4404).
"""

import socket
from urllib.parse import urlsplit

import pytest
from django.test import override_settings
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from accounts.websocket import origin_allowed

pytestmark = pytest.mark.django_db(transaction=True)

JOB_PATH = "/ws/jobs/00000000-0000-0000-0000-000000000000/"
REFUSED = ("refused", 403)
REACHED_THE_JOB_ROUTE = ("closed", 4401)


def _open(
    live_server_url: str, origin: str | None, *, host: str = "127.0.0.1", path: str = JOB_PATH
) -> tuple[str, int | None]:
    """("refused", status) if the handshake was refused, else ("closed", the route's code).

    `host` is the name the client says it reached (its Host header); the connection itself
    always goes to the live server.
    """
    port = urlsplit(live_server_url).port
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        with connect(f"ws://{host}:{port}{path}", sock=sock, origin=origin, open_timeout=30) as ws:
            try:
                ws.recv(timeout=30)
            except ConnectionClosed as closed:
                return "closed", closed.rcvd.code if closed.rcvd else None
    except InvalidStatus as refused:
        return "refused", refused.response.status_code
    raise AssertionError("the socket sent a message")


def _port(live_server_url: str) -> int:
    port = urlsplit(live_server_url).port
    assert port is not None
    return port


def test_the_servers_own_origin_and_a_script_without_one_are_let_in(live_server_url):
    port = _port(live_server_url)

    assert _open(live_server_url, f"http://127.0.0.1:{port}") == REACHED_THE_JOB_ROUTE
    assert _open(live_server_url, f"http://localhost:{port}", host="localhost") == (
        REACHED_THE_JOB_ROUTE
    )
    assert _open(live_server_url, None) == REACHED_THE_JOB_ROUTE
    assert _open(live_server_url, f"http://127.0.0.1:{port}", path="/ws/x/") == ("closed", 4404)


def test_origins_other_than_the_servers_own_are_refused(live_server_url):
    port = _port(live_server_url)
    foreign = [
        f"http://127.0.0.1:{port + 1}",  # another port of the same host
        f"http://127.0.0.1:{port - 1}",
        "http://127.0.0.1:8000",
        "http://127.0.0.1",  # the same host without the port the server has
        "http://127.0.0.1:80",
        f"https://127.0.0.1:{port}",  # another scheme
        f"ws://127.0.0.1:{port}",
        f"http://sub.127.0.0.1:{port}",
        f"http://localhost:{port}",  # another allowed host, but not the one reached
        f"http://127.0.0.1.evil.example:{port}",
        f"http://127.0.0.1:{port}.evil.example",
        f"http://127.0.0.1:{port}@evil.example",
        "https://evil.example",
        "null",
        "",
        "127.0.0.1",
    ]

    answers = {origin: _open(live_server_url, origin) for origin in foreign}

    assert answers == {origin: REFUSED for origin in foreign}


def test_a_subdomain_of_the_host_reached_is_refused(live_server_url):
    port = _port(live_server_url)

    for origin in (f"http://a.localhost:{port}", f"http://localhost.:{port}"):
        assert _open(live_server_url, origin, host="localhost") == REFUSED, origin


def test_a_host_the_server_does_not_serve_makes_no_origin_its_own(live_server_url):
    # DNS rebinding: a page on evil.example, whose name now resolves to this server.
    port = _port(live_server_url)

    for host in ("evil.example", "127.0.0.2"):
        assert _open(live_server_url, f"http://{host}:{port}", host=host) == REFUSED, host


def test_an_origin_in_csrf_trusted_origins_is_let_in(live_server_url, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example"]

    assert _open(live_server_url, "https://app.example") == REACHED_THE_JOB_ROUTE
    assert _open(live_server_url, "https://app.example:8443") == REFUSED


def test_the_proxy_header_decides_the_scheme():
    # (The live server's uvicorn takes X-Forwarded-Proto from loopback itself, so this rule is
    # checked on the scope directly.)
    scope = {
        "type": "websocket",
        "scheme": "ws",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"origin", b"https://127.0.0.1:8000"),
            (b"x-forwarded-proto", b"https"),
        ],
    }
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        assert origin_allowed(scope)
    with override_settings(SECURE_PROXY_SSL_HEADER=None):
        assert not origin_allowed(scope)
    assert origin_allowed({**scope, "scheme": "wss"})
