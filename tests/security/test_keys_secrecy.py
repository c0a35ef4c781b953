"""API keys: compared in constant time, never kept in plaintext (database, cache), never shown
in error reports. (Storage as SHA-256, masking in 401s and logs: tests/accounts/test_api_keys.py.)
"""

import hmac
import secrets

import httpx
import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django.views.debug import SafeExceptionReporterFilter

from accounts import keys as keys_module
from accounts import selectors as selectors_module
from accounts.keys import key_generate
from accounts.selectors import api_key_authenticate

pytestmark = pytest.mark.django_db(transaction=True)


def _cached_values() -> list[bytes]:
    """The raw bytes of every entry in the cache, whichever backend holds it."""
    backend = cache._cache if hasattr(cache, "_cache") else None
    if isinstance(backend, dict):  # local memory: pickled values by key
        return [key.encode() + value for key, value in backend.items()]
    client = cache._cache.get_client()
    return [key + (client.get(key) or b"") for key in client.scan_iter()]


def test_key_checks_compare_in_constant_time(alice_key, monkeypatch):
    calls: list[str] = []

    def spy(name, compare):
        def compare_digest(a, b):
            calls.append(name)
            return compare(a, b)

        return compare_digest

    monkeypatch.setattr(
        keys_module.secrets, "compare_digest", spy("checksum", secrets.compare_digest)
    )
    monkeypatch.setattr(selectors_module.hmac, "compare_digest", spy("hash", hmac.compare_digest))

    assert api_key_authenticate(alice_key) is not None
    assert api_key_authenticate(alice_key) is not None  # from the cache, compared all the same

    assert calls == ["checksum", "hash", "checksum", "hash"]


def test_no_cache_entry_holds_a_plaintext_key(live_server_url, alice_key, media_root):
    unknown = key_generate()
    with httpx.Client(base_url=live_server_url, timeout=60) as client:
        for key in (alice_key, unknown):
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"retry-{key[-6:]}"}
            client.get("/v1/audio/voices", headers=headers)
            client.post(
                "/v1/audio/speech", json={"model": "tts-1", "input": "Hi."}, headers=headers
            ).read()
            client.post(
                "/v1/voice-cloning/clone",
                data={"name": "n", "consent": "true"},
                files={"audio_file": ("a.txt", b"not audio", "text/plain")},
                headers=headers,
            )

    entries = _cached_values()

    assert entries, "the requests left nothing in the cache to look at"
    for entry in entries:
        for key in (alice_key, unknown):
            assert key.encode() not in entry


def test_error_reports_never_show_the_authorization_header(alice_key):
    request = RequestFactory().get("/v1/audio/voices", HTTP_AUTHORIZATION=f"Bearer {alice_key}")

    meta = SafeExceptionReporterFilter().get_safe_request_meta(request)

    assert alice_key not in str(meta)
