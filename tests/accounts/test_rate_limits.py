"""Per-key limits on speech generation, against the live server and the real cache (Redis in CI).

Requests per minute are counted in a fixed window aligned to the minute; concurrent
generations are counted per key for as long as a response streams.
"""

import re
import threading
import time

import httpx
import numpy as np
import pytest

from speech.engines.espeak import EspeakEngine

pytestmark = pytest.mark.django_db(transaction=True)

SPEECH = {"model": "tts-1", "input": "Hi.", "response_format": "pcm"}


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _speak(base_url: str, key: str) -> httpx.Response:
    with httpx.Client(base_url=base_url, headers=_headers(key), timeout=60) as client:
        return client.post("/v1/audio/speech", json=SPEECH)


def _wait_for_a_fresh_window(margin: float = 5.0) -> None:
    """Sleep into the next minute when the current one ends within `margin` seconds, so a
    burst cannot straddle two fixed windows."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


def _burst(base_url: str, key: str, count: int) -> list[httpx.Response]:
    """`count` speech requests at once, each from its own client on its own thread."""
    barrier = threading.Barrier(count)
    responses: list[httpx.Response | None] = [None] * count
    errors: list[BaseException] = []

    def fire(index: int) -> None:
        try:
            with httpx.Client(base_url=base_url, headers=_headers(key), timeout=60) as client:
                barrier.wait(timeout=30)
                responses[index] = client.post("/v1/audio/speech", json=SPEECH)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fire, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert all(response is not None for response in responses)
    return responses  # type: ignore[return-value]


def _assert_openai_429(response: httpx.Response, code: str) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= 60


def _assert_rate_headers(response: httpx.Response, *, limit: int, remaining: int) -> None:
    assert response.headers["x-ratelimit-limit-requests"] == str(limit)
    assert response.headers["x-ratelimit-remaining-requests"] == str(remaining)
    reset = response.headers["x-ratelimit-reset-requests"]
    assert re.fullmatch(r"\d+s", reset), reset
    assert 1 <= int(reset[:-1]) <= 60


# --- Requests per minute ---------------------------------------------------------------------


def test_a_burst_gets_exactly_the_limit_and_no_more(settings, live_server_url, alice_key):
    # given five requests a minute, and no limit on concurrency to get in the way
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 5
    settings.RATE_LIMIT_CONCURRENT = 0
    _wait_for_a_fresh_window()
    # when twelve requests arrive at once
    responses = _burst(live_server_url, alice_key, 12)
    # then exactly five are served and seven refused
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 5 + [429] * 7
    refused = [response for response in responses if response.status_code == 429]
    for response in refused:
        _assert_openai_429(response, "rate_limit_exceeded")
        _assert_rate_headers(response, limit=5, remaining=0)
        assert (
            int(response.headers["retry-after"])
            >= int(response.headers["x-ratelimit-reset-requests"][:-1]) - 1
        )
    # and each served one has its own place in the budget
    served = [response for response in responses if response.status_code == 200]
    for response in served:
        assert response.headers["content-type"] == "audio/pcm"
        assert len(response.content) > 0
        assert response.headers["x-ratelimit-limit-requests"] == "5"
    remaining = sorted(
        int(response.headers["x-ratelimit-remaining-requests"]) for response in served
    )
    assert remaining == [0, 1, 2, 3, 4]


def test_the_remaining_budget_counts_down_request_by_request(settings, live_server_url, alice_key):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 5
    _wait_for_a_fresh_window()

    responses = [_speak(live_server_url, alice_key) for _ in range(6)]

    for served, remaining in zip(responses[:5], [4, 3, 2, 1, 0], strict=True):
        assert served.status_code == 200, served.text
        _assert_rate_headers(served, limit=5, remaining=remaining)
    _assert_openai_429(responses[5], "rate_limit_exceeded")
    _assert_rate_headers(responses[5], limit=5, remaining=0)


def test_the_limit_is_per_key(settings, live_server_url, alice, alice_key, bob_key):
    # given alice's key has used up its minute
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 5
    settings.RATE_LIMIT_CONCURRENT = 0
    _wait_for_a_fresh_window()
    responses = _burst(live_server_url, alice_key, 6)
    assert sorted(response.status_code for response in responses) == [200] * 5 + [429]
    _assert_openai_429(_speak(live_server_url, alice_key), "rate_limit_exceeded")
    # when bob asks, then bob is served from a budget of his own
    bobs = _speak(live_server_url, bob_key)
    assert bobs.status_code == 200, bobs.text
    _assert_rate_headers(bobs, limit=5, remaining=4)
    # and so is another key of alice's
    from accounts.services import api_key_create

    _, second_key = api_key_create(owner=alice, name="second")
    seconds = _speak(live_server_url, second_key)
    assert seconds.status_code == 200, seconds.text
    _assert_rate_headers(seconds, limit=5, remaining=4)


def test_a_refused_request_does_not_generate(settings, live_server_url, alice_key, monkeypatch):
    # given alice's budget is used up
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 1
    _wait_for_a_fresh_window()
    assert _speak(live_server_url, alice_key).status_code == 200
    # when she asks again, then the engine is never called
    called = threading.Event()

    def spy(self, chunks, voice, params):
        called.set()
        yield np.zeros(2400, dtype=np.float32)

    monkeypatch.setattr(EspeakEngine, "synthesize", spy)
    _assert_openai_429(_speak(live_server_url, alice_key), "rate_limit_exceeded")
    assert not called.is_set()


def test_zero_turns_the_per_minute_limit_off(settings, live_server_url, alice_key):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0

    with httpx.Client(base_url=live_server_url, headers=_headers(alice_key), timeout=60) as client:
        statuses = [client.post("/v1/audio/speech", json=SPEECH).status_code for _ in range(20)]

    assert statuses == [200] * 20


# --- Concurrent generations -----------------------------------------------------------------


@pytest.fixture
def slow_engine(monkeypatch) -> None:
    """An engine that takes about two seconds: a chunk every 50 ms, forty chunks."""

    def slow(self, chunks, voice, params):
        for _ in range(40):
            time.sleep(0.05)
            yield np.full(1200, 0.1, dtype=np.float32)

    monkeypatch.setattr(EspeakEngine, "synthesize", slow)


def test_one_generation_at_a_time_per_key(
    settings, live_server_url, alice_key, bob_key, slow_engine
):
    # given one generation at a time per key (and no per-minute limit)
    settings.RATE_LIMIT_CONCURRENT = 1
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    with httpx.Client(base_url=live_server_url, headers=_headers(alice_key), timeout=60) as first:
        # when alice's first generation is streaming
        with first.stream("POST", "/v1/audio/speech", json=SPEECH) as streaming:
            assert streaming.status_code == 200
            chunks = streaming.iter_raw()
            assert next(chunks)
            # then a second one of hers is refused
            second = _speak(live_server_url, alice_key)
            _assert_openai_429(second, "concurrency_limit_exceeded")
            # and bob is not affected
            bobs = _speak(live_server_url, bob_key)
            assert bobs.status_code == 200, bobs.text
            assert len(bobs.content) > 0
            # and alice's first generation still completes
            rest = b"".join(chunks)
            assert len(rest) > 0
    # when it has finished, then alice can generate again (the slot is freed as the response
    # closes, just after the client has the whole body)
    deadline = time.monotonic() + 5
    again = _speak(live_server_url, alice_key)
    while again.status_code == 429 and time.monotonic() < deadline:
        _assert_openai_429(again, "concurrency_limit_exceeded")
        time.sleep(0.1)
        again = _speak(live_server_url, alice_key)
    assert again.status_code == 200, again.text


def test_a_refused_generation_does_not_hold_a_slot(
    settings, live_server_url, alice_key, slow_engine
):
    # given two generations at a time, both taken, and a third refused
    settings.RATE_LIMIT_CONCURRENT = 2
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    with (
        httpx.Client(base_url=live_server_url, headers=_headers(alice_key), timeout=60) as one,
        httpx.Client(base_url=live_server_url, headers=_headers(alice_key), timeout=60) as two,
    ):
        with one.stream("POST", "/v1/audio/speech", json=SPEECH) as first:
            assert first.status_code == 200
            with two.stream("POST", "/v1/audio/speech", json=SPEECH) as second:
                assert second.status_code == 200
                _assert_openai_429(_speak(live_server_url, alice_key), "concurrency_limit_exceeded")
                _assert_openai_429(_speak(live_server_url, alice_key), "concurrency_limit_exceeded")
                second.read()
            first.read()
    # when both have finished, then two at once are served again: the refusals took no slot
    deadline = time.monotonic() + 5
    while True:
        responses = _burst(live_server_url, alice_key, 2)
        statuses = [response.status_code for response in responses]
        if statuses == [200, 200] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert statuses == [200, 200], [response.text for response in responses]


def test_a_client_that_hangs_up_frees_its_slot(settings, live_server_url, alice_key, slow_engine):
    settings.RATE_LIMIT_CONCURRENT = 1
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    # given alice hangs up in the middle of a generation
    with httpx.Client(base_url=live_server_url, headers=_headers(alice_key), timeout=60) as client:
        with client.stream("POST", "/v1/audio/speech", json=SPEECH) as streaming:
            assert streaming.status_code == 200
            assert next(streaming.iter_raw())
    # then she can generate again soon after
    deadline = time.monotonic() + 10
    again = _speak(live_server_url, alice_key)
    while again.status_code == 429 and time.monotonic() < deadline:
        time.sleep(0.1)
        again = _speak(live_server_url, alice_key)
    assert again.status_code == 200, again.text
