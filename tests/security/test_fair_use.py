"""One user cannot starve the others: limits count per user as well as per key, keys per user
are capped, and the process's generation slots are shared fairly between users. Over a real
server, with a user spreading requests over many keys and several routes.
"""

import time
from collections.abc import Iterator

import httpx
import pytest
from django.contrib.auth import get_user_model

from accounts.services import api_key_create
from speech.admission import InflightLimiter, speech_slots
from tests.support.held_streams import HeldStreams
from web.errors import request_budget_check

pytestmark = pytest.mark.django_db(transaction=True)

SPEECH = {"model": "tts-1", "input": "Hi.", "response_format": "pcm"}
# The same speech route, under both of its mounts.
SPEECH_ROUTES = ["/v1/audio/speech", "/api/v1/audio/speech"]


def _keys(username: str, count: int) -> list[str]:
    user = get_user_model().objects.get(username=username)
    return [api_key_create(owner=user, name=f"key {index}")[1] for index in range(count)]


def _speak(base_url: str, key: str, route: str = "/v1/audio/speech") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{base_url}{route}", json=SPEECH, headers=headers, timeout=60)


def _code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def _wait_for_a_fresh_window(margin: float = 10.0) -> None:
    """Sleep into the next minute when the current one ends within `margin` seconds, so the
    requests of one test cannot straddle two fixed windows."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


@pytest.fixture
def streams(live_server_url: str) -> Iterator[HeldStreams]:
    held = HeldStreams(live_server_url)
    yield held
    held.close()


def _wait_for_inflight(count: int) -> None:
    deadline = time.monotonic() + 20
    while speech_slots.inflight != count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert speech_slots.inflight == count


# --- Requests per minute, per user ----------------------------------------------------------


@pytest.mark.parametrize(
    ("key_count", "routes"),
    [
        (4, ["/v1/audio/speech"]),
        (6, SPEECH_ROUTES),
        (2, ["/api/v1/audio/speech"]),
    ],
)
def test_many_keys_share_their_users_requests_per_minute(
    settings, live_server_url, alice, bob_key, key_count, routes
):
    # given three requests a minute per key, five per user, and no concurrency limits
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 3
    settings.RATE_LIMIT_USER_REQUESTS_PER_MINUTE = 5
    settings.RATE_LIMIT_CONCURRENT = 0
    settings.RATE_LIMIT_USER_CONCURRENT = 0
    keys = _keys("alice", key_count)
    _wait_for_a_fresh_window()
    # when alice spreads twelve requests over her keys and the routes
    responses = [
        _speak(live_server_url, keys[index % key_count], routes[index % len(routes)])
        for index in range(12)
    ]
    # then five are served in all, however many keys she has
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 5, statuses
    refused = [response for response in responses if response.status_code != 200]
    assert {response.status_code for response in refused} == {429}
    assert {_code(response) for response in refused} == {"rate_limit_exceeded"}
    assert all(response.headers["retry-after"].isdigit() for response in refused)
    # and another user is served from a budget of his own
    bobs = _speak(live_server_url, bob_key)
    assert bobs.status_code == 200, bobs.text


def test_a_keys_own_refusals_do_not_use_up_its_users_other_keys(settings, live_server_url, alice):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 2
    settings.RATE_LIMIT_USER_REQUESTS_PER_MINUTE = 4
    settings.RATE_LIMIT_CONCURRENT = 0
    runaway, other = _keys("alice", 2)
    _wait_for_a_fresh_window()
    # given one of alice's keys retries far past its own limit
    statuses = [_speak(live_server_url, runaway).status_code for _ in range(8)]
    assert statuses == [200, 200] + [429] * 6
    # then her other key still has the rest of her user's budget
    assert [_speak(live_server_url, other).status_code for _ in range(3)] == [200, 200, 429]


def test_the_pages_count_against_the_same_user_budget(settings, live_server_url, alice):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 10
    settings.RATE_LIMIT_USER_REQUESTS_PER_MINUTE = 3
    (key,) = _keys("alice", 1)
    _wait_for_a_fresh_window()
    # given alice's pages (keyless) used two of her user's three requests
    request_budget_check(alice)
    request_budget_check(alice)
    # then her key has one left, whatever its own limit
    assert [_speak(live_server_url, key).status_code for _ in range(2)] == [200, 429]


# --- Concurrent generations, per user -------------------------------------------------------


@pytest.mark.parametrize(
    ("key_count", "routes"),
    [(3, ["/v1/audio/speech"]), (5, SPEECH_ROUTES)],
)
def test_many_keys_share_their_users_concurrent_generations(
    settings, live_server_url, alice, bob_key, endless_engine, streams, key_count, routes
):
    # given two generations at once per key, three per user
    settings.RATE_LIMIT_CONCURRENT = 2
    settings.RATE_LIMIT_USER_CONCURRENT = 3
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    settings.RATE_LIMIT_USER_REQUESTS_PER_MINUTE = 0
    keys = _keys("alice", key_count)
    # when alice holds unread streams on every key and route she has
    answers = [
        streams.open(keys[index % key_count], routes[index % len(routes)]).status_code
        for index in range(2 * key_count)
    ]
    # then three are admitted in all, and the rest refused as her account's limit
    assert answers.count(200) == 3, answers
    assert set(answers) == {200, 429}
    refused = _speak(live_server_url, keys[-1], routes[-1])
    assert refused.status_code == 429
    assert _code(refused) == "concurrency_limit_exceeded"
    assert "account" in refused.json()["error"]["message"]
    # and bob generates meanwhile
    assert streams.open(bob_key).status_code == 200
    # and once hers end, she may generate again
    streams.close()
    _wait_for_inflight(0)
    assert streams.open(keys[0]).status_code == 200


# --- Fair admission to the process's slots --------------------------------------------------


@pytest.mark.parametrize(("slots", "reserve"), [(4, 1), (6, 2), (3, 1)])
def test_a_greedy_user_cannot_take_every_slot(
    settings, live_server_url, alice, bob_key, carol_key, endless_engine, streams, slots, reserve
):
    # given a process with few slots, and no per-key or per-user limits at all
    settings.SPEECH_MAX_INFLIGHT = slots
    settings.SPEECH_INFLIGHT_RESERVE = reserve
    settings.RATE_LIMIT_CONCURRENT = 0
    settings.RATE_LIMIT_USER_CONCURRENT = 0
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    settings.RATE_LIMIT_USER_REQUESTS_PER_MINUTE = 0
    keys = _keys("alice", 3)
    # when alice opens streams on all her keys and both routes until she is refused
    greedy = [
        streams.open(keys[index % 3], SPEECH_ROUTES[index % 2]).status_code
        for index in range(slots + 2)
    ]
    # then she holds all but the reserve, and is told the server is busy
    assert greedy.count(200) == slots - reserve, greedy
    busy = _speak(live_server_url, keys[0])
    assert busy.status_code == 503
    assert _code(busy) == "server_busy"
    # and a polite user still gets in, holding none
    assert streams.open(bob_key).status_code == 200
    if reserve > 1:
        assert streams.open(carol_key).status_code == 200


def test_a_freed_slot_goes_to_a_user_who_holds_none(
    settings, live_server_url, alice, bob_key, carol_key, endless_engine
):
    # given four slots, one kept back: alice holds three, bob the fourth
    settings.SPEECH_MAX_INFLIGHT = 4
    settings.SPEECH_INFLIGHT_RESERVE = 1
    settings.RATE_LIMIT_CONCURRENT = 0
    settings.RATE_LIMIT_USER_CONCURRENT = 0
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    settings.RATE_LIMIT_USER_REQUESTS_PER_MINUTE = 0
    keys = _keys("alice", 2)
    alices_last = HeldStreams(live_server_url)
    others = HeldStreams(live_server_url)
    try:
        assert [others.open(keys[0]).status_code for _ in range(2)] == [200, 200]
        assert alices_last.open(keys[1]).status_code == 200
        assert others.open(bob_key).status_code == 200
        _wait_for_inflight(4)
        # when one of alice's streams ends
        alices_last.close()
        _wait_for_inflight(3)
        # then she cannot take the freed slot (she holds two), on any key or route
        for key in keys:
            for route in SPEECH_ROUTES:
                answer = _speak(live_server_url, key, route)
                assert answer.status_code == 503, answer.text
        # but carol, who holds none, can
        assert others.open(carol_key).status_code == 200
    finally:
        alices_last.close()
        others.close()


@pytest.mark.parametrize(("slots", "reserve"), [(32, 4), (4, 1), (8, 3), (1, 1)])
def test_the_last_free_slots_go_to_users_who_hold_fewer(settings, slots, reserve):
    settings.SPEECH_MAX_INFLIGHT = slots
    settings.SPEECH_INFLIGHT_RESERVE = reserve
    limiter = InflightLimiter()
    # a greedy user takes what they can: all but the reserve (one slot when there is only one)
    taken = 0
    while limiter.try_acquire("greedy"):
        taken += 1
    assert taken == max(1, slots - reserve)
    # a user who holds none still gets one, as long as any is free
    free = slots - taken
    polite = [limiter.try_acquire(f"polite-{index}") for index in range(free + 1)]
    assert polite == [True] * free + [False]
    # and a slot the greedy user frees goes to a user who holds none, not back to them
    limiter.release("greedy")
    assert not limiter.try_acquire("greedy") or slots == 1
    assert limiter.try_acquire("newcomer") or slots == 1
