"""Usage accounting: one row per user, key and day, written as each speech response closes."""

import time

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.keys import key_hash
from accounts.models import ApiKey, Usage

pytestmark = pytest.mark.django_db(transaction=True)

PCM_BYTES_PER_SECOND = 2 * 24000
TEN = "Hello you."
TWENTY = "Hello there, friend."


def _speak(base_url: str, text: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    response = httpx.post(
        f"{base_url}/v1/audio/speech",
        json={"model": "tts-1", "input": text, "response_format": "pcm"},
        headers=headers,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response


def _usage_when(predicate, timeout: float = 5.0) -> list[Usage]:
    """Usage rows, once `predicate(rows)` holds or `timeout` has passed: usage is written as a
    response closes, just after the client has its body."""
    deadline = time.monotonic() + timeout
    while True:
        rows = list(Usage.objects.order_by("pk"))
        if predicate(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def _requests_of(rows: list[Usage], user, api_key=None, *, keyless: bool = False) -> int:
    return sum(
        row.requests
        for row in rows
        if row.user_id == user.pk
        and (row.api_key_id is None if keyless else row.api_key_id == api_key.pk)
    )


def test_two_requests_make_one_row_with_their_totals(live_server_url, alice, alice_key):
    assert len(TEN) == 10
    assert len(TWENTY) == 20
    api_key = ApiKey.objects.get(hashed_key=key_hash(alice_key))
    # when alice makes two requests with her key
    first = _speak(live_server_url, TEN, alice_key)
    second = _speak(live_server_url, TWENTY, alice_key)
    # then one row holds both, for today
    rows = _usage_when(lambda rows: _requests_of(rows, alice, api_key) >= 2)
    assert len(rows) == 1
    row = rows[0]
    assert row.user == alice
    assert row.api_key == api_key
    assert row.day == timezone.now().date()
    assert row.requests == 2
    assert row.input_characters == 30
    received = (len(first.content) + len(second.content)) / PCM_BYTES_PER_SECOND
    assert received > 0.5
    assert row.audio_seconds == pytest.approx(received, abs=0.05)


def test_each_key_of_a_user_has_its_own_row(live_server_url, alice, alice_key):
    from accounts.services import api_key_create

    other, other_key = api_key_create(owner=alice, name="second")
    first = ApiKey.objects.get(hashed_key=key_hash(alice_key))

    _speak(live_server_url, TEN, alice_key)
    _speak(live_server_url, TWENTY, other_key)

    rows = _usage_when(lambda rows: sum(row.requests for row in rows) >= 2)
    by_key = {row.api_key_id: (row.requests, row.input_characters) for row in rows}
    assert by_key == {first.pk: (1, 10), other.pk: (1, 20)}


def test_a_keyless_request_in_open_mode_counts_for_the_default_account(
    settings, live_server_url, alice_key
):
    # given keyless mode
    settings.AUTH_MODE = "open"
    # when a request comes without a key, and one with a junk key
    first = _speak(live_server_url, TEN)
    second = _speak(live_server_url, TWENTY, "not-a-key")
    # then both count, without a key, for the default account
    default = get_user_model().objects.get(username=settings.ADMIN_USERNAME)
    rows = _usage_when(lambda rows: _requests_of(rows, default, keyless=True) >= 2)
    assert len(rows) == 1
    row = rows[0]
    assert row.user == default
    assert row.api_key is None
    assert row.day == timezone.now().date()
    assert row.requests == 2
    assert row.input_characters == 30
    received = (len(first.content) + len(second.content)) / PCM_BYTES_PER_SECOND
    assert row.audio_seconds == pytest.approx(received, abs=0.05)


def test_usage_of_another_user_is_separate(live_server_url, alice, alice_key, bob, bob_key):
    alice_api_key = ApiKey.objects.get(hashed_key=key_hash(alice_key))
    bob_api_key = ApiKey.objects.get(hashed_key=key_hash(bob_key))
    # when alice asks twice and bob once
    _speak(live_server_url, TEN, alice_key)
    _speak(live_server_url, TWENTY, alice_key)
    bobs = _speak(live_server_url, TWENTY, bob_key)
    # then each has a row of their own
    rows = _usage_when(
        lambda rows: (
            _requests_of(rows, alice, alice_api_key) >= 2
            and _requests_of(rows, bob, bob_api_key) >= 1
        )
    )
    assert len(rows) == 2
    alices = Usage.objects.get(user=alice)
    bobs_row = Usage.objects.get(user=bob)
    assert (alices.api_key, alices.requests, alices.input_characters) == (alice_api_key, 2, 30)
    assert (bobs_row.api_key, bobs_row.requests, bobs_row.input_characters) == (bob_api_key, 1, 20)
    assert bobs_row.audio_seconds == pytest.approx(
        len(bobs.content) / PCM_BYTES_PER_SECOND, abs=0.05
    )


def test_a_refused_request_is_not_counted(live_server_url, alice, alice_key):
    # given one counted request
    _speak(live_server_url, TEN, alice_key)
    rows = _usage_when(lambda rows: sum(row.requests for row in rows) >= 1)
    assert [row.requests for row in rows] == [1]
    # when a request fails validation, and one has no key
    invalid = httpx.post(
        f"{live_server_url}/v1/audio/speech",
        json={"model": "tts-1", "input": TEN, "voice": "no-such-voice"},
        headers={"Authorization": f"Bearer {alice_key}"},
        timeout=60,
    )
    assert invalid.status_code == 400
    keyless = httpx.post(
        f"{live_server_url}/v1/audio/speech",
        json={"model": "tts-1", "input": TEN},
        timeout=60,
    )
    assert keyless.status_code == 401
    # then the count is unchanged, and nothing was counted for anyone else
    _speak(live_server_url, TWENTY, alice_key)  # a marker: once it is counted, all before are
    rows = _usage_when(lambda rows: sum(row.requests for row in rows) >= 2)
    assert [(row.user, row.requests, row.input_characters) for row in rows] == [(alice, 2, 30)]
