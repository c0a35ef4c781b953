"""X-Forwarded-For is believed only from a proxy TRUSTED_PROXIES names (core/proxies.py), over
a real server: by default a loopback client cannot choose the address the sign-in throttle
counts or the one /metrics checks; naming 127.0.0.1 as the proxy makes the header count."""

import re
from collections.abc import Iterator
from unittest import mock

import httpx
import pytest
from django.core.management import call_command

LIMIT = 3
# Ways a client might claim another address.
CLAIMS = [
    {"X-Forwarded-For": "10.9.9.9"},
    {"X-Forwarded-For": "10.9.9.9, 10.9.9.8"},
    {"X-Forwarded-For": "10.9.9.9,10.9.9.7"},
    {"X-Forwarded-For": "10.9.9.9", "X-Real-IP": "10.9.9.9"},
    {"X-Forwarded-For": "10.9.9.9", "Forwarded": "for=10.9.9.9"},
]


@pytest.fixture
def server(request, settings, transactional_db) -> Iterator[httpx.Client]:
    """The live server, started with TRUSTED_PROXIES as the test's parameter."""
    settings.TRUSTED_PROXIES = request.param
    settings.METRICS_TOKEN = ""
    settings.LOGIN_MAX_FAILURES = LIMIT
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 600
    url = request.getfixturevalue("live_server_url")
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


DEFAULT = pytest.mark.parametrize("server", [[]], indirect=True)
TRUSTING_LOOPBACK = pytest.mark.parametrize("server", [["127.0.0.1"]], indirect=True)


def _sign_in(client: httpx.Client, username: str, password: str, claim: dict) -> httpx.Response:
    client.cookies.clear()
    form = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    return client.post(
        "/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{client.base_url}/login/", **claim},
    )


@DEFAULT
def test_a_claimed_address_does_not_open_metrics(server, settings) -> None:
    settings.METRICS_ALLOWED_IPS = ["10.9.9.0/24"]
    for claim in CLAIMS:
        assert server.get("/metrics", headers=claim).status_code == 404, claim


@DEFAULT
def test_a_claimed_address_does_not_close_metrics_to_loopback(server, settings) -> None:
    settings.METRICS_ALLOWED_IPS = ["127.0.0.0/8"]
    for claim in CLAIMS:
        assert server.get("/metrics", headers=claim).status_code == 200, claim


@DEFAULT
def test_a_claimed_address_does_not_escape_the_sign_in_throttle(server, carol) -> None:
    assert _sign_in(server, "carol", "carol-pass-1", {}).status_code == 302
    for index in range(LIMIT):
        claim = {"X-Forwarded-For": f"10.9.9.{index + 1}"}
        assert _sign_in(server, "carol", "wrong", claim).status_code == 200
    for claim in [*CLAIMS, {"X-Forwarded-For": "10.9.9.1"}, {}]:
        assert _sign_in(server, "carol", "carol-pass-1", claim).status_code == 200, claim


@TRUSTING_LOOPBACK
def test_a_named_proxy_is_believed_by_metrics(server, settings) -> None:
    settings.METRICS_ALLOWED_IPS = ["10.9.9.0/24"]
    assert server.get("/metrics", headers={"X-Forwarded-For": "10.9.9.9"}).status_code == 200
    assert server.get("/metrics").status_code == 404


@TRUSTING_LOOPBACK
def test_a_named_proxy_is_believed_by_the_sign_in_throttle(server, carol) -> None:
    for _ in range(LIMIT):
        _sign_in(server, "carol", "wrong", {"X-Forwarded-For": "10.9.9.1"})
    assert (
        _sign_in(server, "carol", "carol-pass-1", {"X-Forwarded-For": "10.9.9.1"}).status_code
        == 200
    )
    response = _sign_in(server, "carol", "carol-pass-1", {"X-Forwarded-For": "10.9.9.2"})
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        ([], {"proxy_headers": False}),
        (["127.0.0.1"], {"proxy_headers": True, "forwarded_allow_ips": ["127.0.0.1"]}),
        (
            ["10.0.0.0/8", "::1"],
            {"proxy_headers": True, "forwarded_allow_ips": ["10.0.0.0/8", "::1"]},
        ),
    ],
)
def test_serve_passes_the_setting_to_uvicorn(settings, trusted, expected, monkeypatch) -> None:
    settings.TRUSTED_PROXIES = trusted
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    with mock.patch("uvicorn.run") as run:
        call_command("serve")
    options = run.call_args.kwargs
    for name, value in expected.items():
        assert options[name] == value
