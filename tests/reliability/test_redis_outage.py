"""Redis stops: speech goes on (the cache carries on in the process), cloning, which needs the
queue, answers 503 at once and leaves nothing behind, and everything recovers when Redis is back.

Redis is a private redis-server that the test kills (SIGKILL, no persistence) and starts again
on the same port, or freezes (SIGSTOP: it accepts connections and never answers) and thaws; the
server is a real process that keeps running throughout.
"""

import httpx
import pytest
from reliability_support import assert_openai_503, speak

from ingest.models import IngestJob
from tests.support.audio import TRANSCRIPT, sample_wav
from tests.support.processes import HANG_SECONDS, wait_until
from tests.support.storage import stored_files

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


def clone(client: httpx.Client, key: str, name: str) -> httpx.Response:
    return client.post(
        "/v1/voice-cloning/clone",
        headers={"Authorization": f"Bearer {key}"},
        data={"name": name, "transcript": TRANSCRIPT, "consent": "true"},
        files={"audio_file": ("sample.wav", sample_wav(), "audio/wav")},
    )


def assert_spoken(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"RIFF")
    assert len(response.content) > 10_000


def test_redis_stopping_keeps_speech_going_refuses_cloning_and_recovers(
    private_redis, start_server, api_key, media_root
):
    # given a server whose cache, rate limits and job queue are in Redis
    server = start_server(REDIS_URL=private_redis.url, INGEST_WAIT_SECONDS="0")
    auth = {"Authorization": f"Bearer {api_key}"}
    redis = private_redis.client()
    with httpx.Client(base_url=server.url, timeout=HANG_SECONDS) as client:
        assert_spoken(speak(client, api_key, response_format="wav"))
        assert redis.keys("*ratelimit:rpm*"), "the request was not counted in Redis"

        # when Redis stops
        private_redis.kill()

        # then speech keeps working, in every format, with the catalogue and the voice list
        for fmt in ("mp3", "opus", "wav", "pcm"):
            response = speak(client, api_key, response_format=fmt, input=f"Still here: {fmt}.")
            assert response.status_code == 200, response.text
            assert response.content
        assert_spoken(speak(client, api_key, response_format="wav"))
        assert client.get("/v1/audio/voices", headers=auth).status_code == 200
        assert client.get("/v1/models").status_code == 200
        # and cloning, which needs the queue, is refused at once in OpenAI's shape...
        refused = clone(client, api_key, "during-the-outage")
        assert_openai_503(refused, "queue_unavailable")
        # ...leaving neither a job nor its upload behind
        assert not IngestJob.objects.exists()
        assert stored_files(media_root) == []

        # when Redis is back (empty: it keeps nothing across the restart)
        private_redis.start()

        # then requests are counted in Redis again (after the cache's short back-off)
        def counted_in_redis() -> bool:
            assert_spoken(speak(client, api_key, response_format="wav"))
            return bool(redis.keys("*ratelimit:rpm*"))

        wait_until(counted_in_redis, timeout=HANG_SECONDS, what="rate limits back in Redis")
        # and cloning is queued for a worker again
        queued = clone(client, api_key, "after-the-outage")
        assert queued.status_code == 202, queued.text
        assert queued.json()["status"] == "queued"
        assert IngestJob.objects.get().status == IngestJob.Status.QUEUED
        assert redis.llen("celery") == 1


def test_a_frozen_redis_holds_nothing_up_and_is_used_again_once_it_answers(
    private_redis, start_server, api_key, media_root
):
    # given a server whose Redis stops answering (without closing anything)
    server = start_server(
        REDIS_URL=private_redis.url, INGEST_WAIT_SECONDS="0", SERVICE_CONNECT_TIMEOUT_SECONDS="1"
    )
    with httpx.Client(base_url=server.url, timeout=HANG_SECONDS) as client:
        assert_spoken(speak(client, api_key, response_format="wav"))
        private_redis.freeze()
        try:
            # then speech is answered regardless (each wait on Redis is bounded)
            assert_spoken(speak(client, api_key, response_format="wav"))
            assert_spoken(speak(client, api_key, response_format="wav"))
            # and cloning is refused rather than left hanging
            assert_openai_503(clone(client, api_key, "frozen"), "queue_unavailable")
            assert not IngestJob.objects.exists()
            assert stored_files(media_root) == []
        finally:
            private_redis.thaw()

        # when it answers again, it is used again
        redis = private_redis.client()
        redis.flushdb()

        def counted_in_redis() -> bool:
            assert_spoken(speak(client, api_key, response_format="wav"))
            return bool(redis.keys("*ratelimit:rpm*"))

        wait_until(counted_in_redis, timeout=HANG_SECONDS, what="rate limits back in Redis")


def test_a_generation_slot_taken_before_an_outage_is_given_back_after_it(
    private_redis, settings, monkeypatch
):
    from accounts import limits
    from core.cache import FallbackRedisCache

    # given the limits in a Redis that will freeze, and one generation at a time per key
    cache = FallbackRedisCache(
        private_redis.url, {"OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}}
    )
    monkeypatch.setattr(limits, "cache", cache)
    monkeypatch.setattr(limits, "_unreleased", [])
    settings.RATE_LIMIT_CONCURRENT = 1
    identity = "key:outage"
    assert limits.generation_slot_acquire(identity)

    # when Redis freezes before that generation ends
    private_redis.freeze()
    try:
        limits.generation_slot_release(identity)
        assert cache.degraded
        # then the process keeps the limit by itself meanwhile
        assert limits.generation_slot_acquire(identity)
        assert not limits.generation_slot_acquire(identity)
        limits.generation_slot_release(identity)
    finally:
        private_redis.thaw()

    # and once Redis answers again, the slot taken there before the outage is free
    wait_until(
        lambda: cache.get("probe") is None and not cache.degraded,
        timeout=HANG_SECONDS,
        what="Redis to answer",
    )
    assert limits.generation_slot_acquire(identity)
    assert cache.get(limits._slot_counter(identity)) == 1
    assert not limits.generation_slot_acquire(identity)
