"""No error answer repeats any part of a presented API key, over a real server: no substring
of four or more characters of what was presented appears in the body or the headers, for
malformed, unknown, revoked and expired keys, on several routes."""

import datetime
import zlib

import httpx
import pytest
from django.utils import timezone

from accounts import services
from accounts.keys import KEY_PREFIX, key_is_well_formed
from accounts.services import api_key_create, api_key_revoke

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _well_formed(secret: str) -> str:
    """A key in the server's format (fixed, so the test is the same on every run)."""
    number = zlib.crc32(secret.encode("ascii"))
    checksum = ""
    for _ in range(6):
        number, digit = divmod(number, 62)
        checksum = _ALPHABET[digit] + checksum
    key = f"{KEY_PREFIX}{secret}{checksum}"
    assert key_is_well_formed(key)
    return key


UNKNOWN = _well_formed("Q7xZ9kW2vJ4mP8rT1yB6nC3hF5gD0sL2aE7uK9iO4qX")
REVOKED = _well_formed("Zq3Xw8Vb1Nm6Lk4Jh9Gf2Dd7Ss5Aa0Pp3Oo8Ii1Uu6Y")
EXPIRED = _well_formed("W4eR8tY2uI6oP0aS3dF7gH1jK5lZ9xC2vB6nM4qW8Zr")
ROUTES = [
    ("POST", "/v1/audio/speech", {"json": {"model": "tts-1", "input": "hi", "voice": "alloy"}}),
    ("GET", "/v1/voice-cloning/voices", {}),
    ("GET", "/v1/models", {}),
    ("DELETE", "/api/v1/audio/voices/somebody", {}),
    ("POST", "/v1/voice-cloning/clone", {"files": {"file": ("a.wav", b"RIFF")}}),
]


def _presented() -> list[tuple[str, str]]:
    """(Authorization header, the secret in it) for keys that do not authenticate."""
    bad_checksum = UNKNOWN[:-1] + ("A" if UNKNOWN[-1] != "A" else "B")
    keys = [
        UNKNOWN,
        REVOKED,
        EXPIRED,
        bad_checksum,
        "sk-proj-Vx7Qz3Kw9Jm2Np5Rt8Yb4Hc6Gf1Ds0Le3Wu7Zi9Qo",  # another service's key
        "sk-csm-Q7xZ9",  # truncated
        UNKNOWN + "Zz9Q",  # too long
        "Zx9QZx9QZx9Q" * 10,
        "\uff53\uff4b-\uff43\uff53\uff4d-\uff31\uff17\uff58\uff3a\uff19\uff4b\uff37\uff12",
    ]
    headers = [(f"Bearer {key}", key) for key in keys]
    headers += [
        (f"Token {UNKNOWN}", UNKNOWN),
        (f"Basic {bad_checksum}", bad_checksum),
        (f"Bearer {UNKNOWN[:20]} {UNKNOWN[20:]}", UNKNOWN),
        (f"bearer   {REVOKED}", REVOKED),
    ]
    return headers


@pytest.fixture
def dead_keys(alice, monkeypatch) -> None:
    """REVOKED and EXPIRED exist as alice's keys, one revoked, one expired."""
    monkeypatch.setattr(services, "key_generate", lambda: REVOKED)
    api_key, _ = api_key_create(owner=alice, name="revoked")
    api_key_revoke(api_key=api_key)
    monkeypatch.setattr(services, "key_generate", lambda: EXPIRED)
    api_key_create(owner=alice, name="expired", expires=timezone.now() - datetime.timedelta(1))


_SERVERS_OWN_HEADERS = {"x-request-id", "date"}


def _echoes(text: str, secret: str) -> list[str]:
    folded = text.casefold()
    return [
        secret[start : start + 4]
        for start in range(len(secret) - 3)
        if secret[start : start + 4].casefold() in folded
    ]


def test_no_answer_repeats_any_part_of_the_presented_key(live_server_url, dead_keys) -> None:
    with httpx.Client(base_url=live_server_url, timeout=60) as client:
        for header, secret in _presented():
            for method, path, kwargs in ROUTES:
                response = client.request(
                    method, path, headers={"Authorization": header.encode()}, **kwargs
                )
                assert response.status_code == 401, (header, path, response.text)
                # The request id and the date are the server's own random or changing values.
                headers = [
                    f"{name}: {value}"
                    for name, value in response.headers.items()
                    if name.lower() not in _SERVERS_OWN_HEADERS
                ]
                answer = "\n".join([response.text, *headers])
                assert _echoes(answer, secret) == [], (header, path, response.text)
