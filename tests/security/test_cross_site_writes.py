"""AUTH_MODE=open: a keyless write that a browser marks as sent by another origin's page is
refused (403, code cross_site_request), over a real server. Scripts and SDKs (no Origin, no
Sec-Fetch-Site), this server's own origin and any request with a real key are unaffected.

A multipart or text/plain POST and a form submission are CORS "simple" requests: a browser
sends them from any page without asking first, so in open mode any site the owner visits
could clone voices, record consents, generate speech or delete voices as them.
"""

from collections.abc import Iterator

import httpx
import pytest

from voices.models import Voice

FOREIGN_ORIGINS = [
    "https://evil.example",
    "http://evil.example",
    "http://127.0.0.1:1",  # another port of this host: another origin
    "https://127.0.0.1:{port}",  # another scheme
    "http://localhost:{port}",  # another name for this host: another origin
    "null",  # sandboxed frames, data: URLs, some redirects
    "http://127.0.0.1:{port}.evil.example",
]
FOREIGN_FETCH_SITES = ["cross-site", "same-site", "CROSS-SITE"]


def _writes(voice_name: str) -> list[tuple[str, str, dict]]:
    """(method, path, httpx keyword arguments) for several write routes."""
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt "
    return [
        ("POST", "/v1/voice-cloning/clone", {"files": {"file": ("a.wav", wav)}, "data": {}}),
        (
            "POST",
            "/v1/audio/voice_consents",
            {"files": {"recording": ("c.wav", wav)}, "data": {"name": "x", "language": "en"}},
        ),
        ("POST", "/v1/audio/speech", {"json": {"model": "tts-1", "input": "hi", "voice": "alloy"}}),
        ("POST", "/api/v1/audio/speech", {"content": b'{"input": "hi"}'}),
        ("DELETE", f"/v1/audio/voices/{voice_name}", {}),
        ("DELETE", f"/v1/voice-cloning/voices/{voice_name}", {}),
    ]


@pytest.fixture
def open_server(settings, live_server_url, default_user) -> str:
    settings.AUTH_MODE = "open"
    return live_server_url


@pytest.fixture
def owners_voice(default_user) -> Voice:
    return Voice.objects.create(
        owner=default_user,
        name="owners-voice",
        kind=Voice.Kind.CLONED,
        source=Voice.Source.UPLOAD,
        reference_audio="voices/owner/reference.wav",
        reference_text="Hello.",
    )


@pytest.fixture
def client(open_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=open_server, timeout=60) as client:
        yield client


def _port(client: httpx.Client) -> int:
    return client.base_url.port


def _assert_refused(response: httpx.Response, what: object) -> None:
    assert response.status_code == 403, (what, response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == "cross_site_request", what
    assert error["type"] == "invalid_request_error"


def test_a_foreign_origin_cannot_write(client, owners_voice) -> None:
    for origin in FOREIGN_ORIGINS:
        origin = origin.format(port=_port(client))
        for method, path, kwargs in _writes(owners_voice.name):
            response = client.request(method, path, headers={"Origin": origin}, **kwargs)
            _assert_refused(response, (origin, method, path))
    assert Voice.objects.filter(pk=owners_voice.pk).exists()


def test_a_foreign_sec_fetch_site_cannot_write(client, owners_voice) -> None:
    for site in FOREIGN_FETCH_SITES:
        for method, path, kwargs in _writes(owners_voice.name):
            response = client.request(method, path, headers={"Sec-Fetch-Site": site}, **kwargs)
            _assert_refused(response, (site, method, path))
    # Either header alone is enough; a same-origin claim does not excuse a foreign Origin.
    headers = {"Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"}
    _assert_refused(client.delete(f"/v1/audio/voices/{owners_voice.name}", headers=headers), "")
    assert Voice.objects.filter(pk=owners_voice.pk).exists()


def test_foreign_reads_are_not_refused(client) -> None:
    response = client.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200


def test_scripts_and_the_own_origin_still_write(client, owners_voice) -> None:
    own = f"http://127.0.0.1:{_port(client)}"
    for headers in [{}, {"Origin": own}, {"Sec-Fetch-Site": "same-origin", "Origin": own}]:
        for method, path, kwargs in _writes(owners_voice.name)[:4]:
            response = client.request(method, path, headers=headers, **kwargs)
            assert response.status_code != 403, (headers, path, response.text)
            assert response.status_code < 500, (headers, path, response.text)
    response = client.delete(f"/v1/audio/voices/{owners_voice.name}", headers={"Origin": own})
    assert response.status_code == 200, response.text
    assert not Voice.objects.filter(pk=owners_voice.pk).exists()


def test_a_real_key_writes_from_any_origin(client, alice, alice_key) -> None:
    voice = Voice.objects.create(
        owner=alice,
        name="alices-voice",
        kind=Voice.Kind.CLONED,
        source=Voice.Source.UPLOAD,
        reference_audio="voices/alice/reference.wav",
        reference_text="Hello.",
    )
    headers = {
        "Authorization": f"Bearer {alice_key}",
        "Origin": "https://evil.example",
        "Sec-Fetch-Site": "cross-site",
    }
    for method, path, kwargs in _writes(voice.name)[:4]:
        response = client.request(method, path, headers=headers, **kwargs)
        assert response.status_code not in {401, 403}, (path, response.text)
    assert client.delete(f"/v1/audio/voices/{voice.name}", headers=headers).status_code == 200


def test_keys_required_mode_is_unchanged(settings, live_server_url, alice_key) -> None:
    settings.AUTH_MODE = "required"
    with httpx.Client(base_url=live_server_url, timeout=60) as client:
        headers = {"Origin": "https://evil.example"}
        assert client.post("/v1/audio/speech", json={}, headers=headers).status_code == 401


def test_an_origin_in_csrf_trusted_origins_may_write(client, settings, owners_voice) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example"]
    headers = {"Origin": "https://app.example"}
    assert (
        client.delete(f"/v1/audio/voices/{owners_voice.name}", headers=headers).status_code == 200
    )
    _assert_refused(
        client.delete("/v1/audio/voices/x", headers={"Origin": "https://app.example:8443"}), ""
    )
