"""Security state cannot be evicted: however much unrelated cache traffic a caller makes (fresh
Idempotency-Keys, failed sign-ins for made-up names, the cache's other entries), a sign-in
throttle, a used-up request budget and a taken generation slot all still hold.

They live in the "limits" cache, a store of their own, bounded per kind of entry.
"""

import contextlib
import os
import re
import secrets
import threading
import time

import httpx
import pytest
from django.core.cache import cache
from django.urls import reverse

from accounts.models import ApiKey
from core.cache import PerKindLocMemCache, limits_cache
from tests.support.held_streams import HeldStreams
from tests.support.processes import run_python

pytestmark = pytest.mark.django_db(transaction=True)

SPEECH = {"model": "tts-1", "input": "Hi.", "response_format": "pcm"}
LOGIN = reverse("login")
# More than the 300 entries of Django's local-memory cache, which held all of it before.
FLOOD = 350


@pytest.fixture
def endless_engine(endless_engine, monkeypatch) -> threading.Event:
    # The held stream is left unread for as long as the flood takes: not given up meanwhile.
    monkeypatch.setattr("api.streaming._STALL_SECONDS", 3600.0)
    return endless_engine


def _csrf(client: httpx.Client) -> str:
    form = client.get(LOGIN)
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)


def _sign_in(client: httpx.Client, username: str, password: str, token: str) -> httpx.Response:
    return client.post(
        LOGIN,
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{client.base_url}{LOGIN}"},
    )


def _flood_idempotency_keys(base_url: str, key: str, count: int) -> None:
    """Consent uploads, each with a fresh Idempotency-Key: each answer (a 400 here) is kept."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for _ in range(count):
            response = client.post(
                "/v1/audio/voice_consents",
                headers={
                    "Authorization": f"Bearer {key}",
                    "Idempotency-Key": secrets.token_hex(16),
                },
                files={"name": (None, "")},
            )
            assert response.status_code == 400, response.text


def _flood_failed_sign_ins(base_url: str, count: int) -> None:
    """Failed sign-ins, each for a name nobody has."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        token = _csrf(client)
        for _ in range(count):
            response = _sign_in(client, f"nobody-{secrets.token_hex(6)}", "wrong", token)
            assert response.status_code == 200


def _flood_cache_entries(count: int) -> None:
    """The cache's everyday entries: authenticated keys, playback tickets, anything."""
    for index in range(count):
        cache.set(f"accounts:api-key:{secrets.token_hex(32)}", ApiKey(pk=index), timeout=300)
        cache.set(f"ui-speech:{secrets.token_hex(16)}", {"user": index}, timeout=300)


FLOODS = {
    "idempotency keys": lambda url, key: _flood_idempotency_keys(url, key, FLOOD),
    "failed sign-ins for made-up names": lambda url, key: _flood_failed_sign_ins(url, FLOOD),
    "cache entries": lambda url, key: _flood_cache_entries(10 * FLOOD),
    "all of them": lambda url, key: (
        _flood_idempotency_keys(url, key, FLOOD // 2),
        _flood_failed_sign_ins(url, FLOOD // 2),
        _flood_cache_entries(FLOOD),
    ),
}


@pytest.mark.parametrize("flood", list(FLOODS))
def test_throttles_and_limits_survive_a_flood_of_unrelated_cache_entries(
    settings, live_server_url, alice, alice_key, bob_key, endless_engine, flood
):
    settings.LOGIN_MAX_FAILURES = 3
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 600
    settings.RATE_LIMIT_CONCURRENT = 1
    settings.RATE_LIMIT_USER_CONCURRENT = 1
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 1000
    settings.RATE_LIMIT_USER_REQUESTS_PER_MINUTE = 0
    with contextlib.ExitStack() as held, httpx.Client(base_url=live_server_url, timeout=60) as web:
        # given alice's account is refused sign-in after three failures
        token = _csrf(web)
        for _ in range(3):
            assert _sign_in(web, "alice", "wrong", token).status_code == 200
        assert _sign_in(web, "alice", "alice-pass-1", token).status_code == 200
        web.cookies.clear()
        token = _csrf(web)
        # and she holds her one generation slot, with a stream left unread
        streams = HeldStreams(live_server_url)
        held.callback(streams.close)
        opened_in = int(time.time() // 60)
        assert streams.open(alice_key).status_code == 200
        # and her key's requests this minute are counted (the stream was one; the minute may
        # have turned while it opened)
        key_pk = ApiKey.objects.get(owner=alice).pk
        windows = range(opened_in, int(time.time() // 60) + 1)
        window = next(w for w in windows if limits_cache.get(f"ratelimit:rpm:key:{key_pk}:{w}"))
        counter = f"ratelimit:rpm:key:{key_pk}:{window}"
        assert limits_cache.get(counter) == 1

        # when the cache is flooded
        FLOODS[flood](live_server_url, bob_key)

        # then her sign-in is still refused, even with the right password (the page words
        # every refusal alike; signing in would redirect)
        refused = _sign_in(web, "alice", "alice-pass-1", token)
        assert refused.status_code == 200
        assert "errorlist" in refused.text
        # and her slot is still taken: a second generation is refused
        second = streams.open(alice_key)
        assert second.status_code == 429
        assert second.json()["error"]["code"] == "concurrency_limit_exceeded"
        # and her minute's count is intact (the refused request counted in it too, unless the
        # flood ran into the next minute)
        assert limits_cache.get(counter) in {1, 2}


def test_a_used_up_minute_survives_a_flood(settings, live_server_url, alice_key, bob_key):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 2
    settings.RATE_LIMIT_USER_REQUESTS_PER_MINUTE = 0
    headers = {"Authorization": f"Bearer {alice_key}"}

    def speak() -> int:
        return httpx.post(
            f"{live_server_url}/v1/audio/speech", json=SPEECH, headers=headers, timeout=60
        ).status_code

    # given alice's key has used up its minute
    window = int(time.time() // 60)
    assert [speak(), speak(), speak()] == [200, 200, 429]
    counter = f"ratelimit:rpm:key:{ApiKey.objects.get(owner__username='alice').pk}:{window}"
    # when bob floods (his own requests given room enough for it)
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 10 * FLOOD
    _flood_idempotency_keys(live_server_url, bob_key, FLOOD)
    _flood_failed_sign_ins(live_server_url, FLOOD)
    _flood_cache_entries(FLOOD)
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 2
    # then alice's count for that minute is intact
    assert limits_cache.get(counter) == 3
    if int(time.time() // 60) == window:
        # and, the minute not over yet, she is still refused
        assert speak() == 429


# --- The store itself ---------------------------------------------------------------------


def test_each_kind_is_bounded_on_its_own():
    store = PerKindLocMemCache("test-kinds", {"OPTIONS": {"MAX_ENTRIES": 50}})
    store.clear()
    store.set("ratelimit:rpm:key:1:1", 7, timeout=600)
    store.set("login-failures:ivan", {"failures": 5}, timeout=600)
    # when one kind is flooded far past the bound
    for index in range(2000):
        store.set(f"idempotency:1:{index}", {"state": "done"}, timeout=600)
    # then the other kinds are untouched, and the flooded kind stays within its bound
    assert store.get("ratelimit:rpm:key:1:1") == 7
    assert store.get("login-failures:ivan") == {"failures": 5}
    kept = sum(store.has_key(f"idempotency:1:{index}") for index in range(2000))
    assert 0 < kept <= 50
    # and counters work as in any cache
    assert store.incr("ratelimit:rpm:key:1:1") == 8
    assert store.decr("ratelimit:rpm:key:1:1") == 7
    store.clear()
    assert store.get("ratelimit:rpm:key:1:1") is None


def test_with_redis_the_limits_have_a_prefix_and_a_fallback_of_their_own(tmp_path):
    # given the settings of a deployment with Redis (nothing connects to it here)
    env = {
        **os.environ,
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "csmsite.settings",
    }
    code = (
        "import django; django.setup()\n"
        "from django.core.cache import caches\n"
        "limits, default = caches['limits'], caches['default']\n"
        "print(type(limits).__name__, type(limits._local).__name__, limits.key_prefix,"
        " limits._local._name != getattr(default._local, '_name', None))\n"
    )
    result = run_python("-c", code, env=env)
    assert result.returncode == 0, result.stderr
    # then they are in Redis under their own prefix, and kept by the process while it is down,
    # bounded per kind, apart from the rest of the cache
    assert result.stdout.split() == ["FallbackRedisCache", "PerKindLocMemCache", "limits", "True"]
