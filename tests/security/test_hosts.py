"""Every request, on every path, has its Host checked against ALLOWED_HOSTS (core/hosts.py),
over a real server, with keys required and in AUTH_MODE=open.

A Host the server does not serve is DNS rebinding's signature: a web page on a name the
attacker controls, resolved to this server, reading and writing as the owner in open mode.
"""

import json
import socket
from urllib.parse import urlsplit

import pytest

from api.error_codes import ErrorCode
from core.hosts import INVALID_HOST_CODE

HOSTILE_HOSTS = [
    "rebind.evil.example",
    "rebind.evil.example.",
    "rebind.evil.example:80",
    "evil.example:8000",
    "EVIL.EXAMPLE",
    "localhost.evil.example",
    "127.0.0.1.nip.io",
    "10.1.2.3",
    "127.0.0.2",
    "0.0.0.0",
    "[::ffff:7f00:1]",
    "[::2]",
    "",
    "127.0.0.1:abc",
    "127.0.0.1@evil.example",
]
API_ROUTES = [
    "/v1/voice-cloning/voices",
    "/api/v1/voice-cloning/voices",
    "/v1/audio/voices",
    "/v1/models",
    "/v1/openapi.json",
    "/v1/no-such-route",
]
OTHER_ROUTES = ["/healthz", "/readyz", "/metrics", "/login/", "/v1/docs", "/no-such-page/"]
GOOD_HOSTS = ["127.0.0.1", "localhost", "LOCALHOST", "[::1]", "127.0.0.1:{port}", "localhost:1"]


def _get(base_url: str, path: str, host: str) -> tuple[int, bytes]:
    """A raw GET with exactly this Host line (HTTP clients normalise or refuse odd ones)."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        # HTTP/1.0: the answer comes whole, not chunked.
        request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n"
        sock.sendall(request.encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture(params=["required", "open"])
def server(request, settings, live_server_url, default_user) -> str:
    settings.AUTH_MODE = request.param
    return live_server_url


def test_the_code_is_the_api_enums() -> None:
    assert INVALID_HOST_CODE == ErrorCode.INVALID_HOST


def test_api_routes_refuse_a_host_not_served(server) -> None:
    for path in API_ROUTES:
        for host in HOSTILE_HOSTS:
            status, body = _get(server, path, host)
            assert status == 400, (path, host, status)
            error = json.loads(body)["error"]
            assert error["code"] == "invalid_host", (path, host)
            assert error["type"] == "invalid_request_error"


def test_other_routes_refuse_a_host_not_served(server) -> None:
    for path in OTHER_ROUTES:
        for host in HOSTILE_HOSTS:
            status, _ = _get(server, path, host)
            assert status == 400, (path, host, status)


def test_the_hosts_served_still_answer(server) -> None:
    port = urlsplit(server).port
    for path in [*API_ROUTES[:-1], *OTHER_ROUTES[:-1]]:
        for host in GOOD_HOSTS:
            status, _ = _get(server, path, host.format(port=port))
            # 401: keys are required and none was sent; the Host itself passed.
            assert status in {200, 302, 401}, (path, host, status)
