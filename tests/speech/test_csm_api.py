"""CSM through the HTTP API on a live server: speech, conversation, errors and readiness.

The model is the tiny random checkpoint, so what is checked is the plumbing (formats, seeds,
context, errors), not how the speech sounds. Requests ask for a second of audio or less.
"""

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import torch
from prometheus_client import REGISTRY
from scheduler_support import hold

from speech.audio.decode import decode_audio
from speech.audio.formats import SAMPLE_RATE
from speech.engines.csm import engine as engine_module
from speech.engines.csm import standard_voices
from speech.engines.csm.batching import CsmBatch
from speech.engines.csm.prompt import Segment
from speech.engines.registry import engine_get
from tests.support.audio import encoded, noise, tone
from tests.support.engines import wait_while_loading
from tests.support.voices import cloned_voice
from voices.models import Voice

pytestmark = pytest.mark.django_db(transaction=True)

ERROR_KEYS = {"message", "type", "param", "code"}
TEXT = "Good morning, and welcome to the show."
# One second of audio: 13 frames generated, 24000 samples delivered.
ONE_SECOND = {"seed": 1, "max_audio_length_ms": 1000}


def b64(samples: np.ndarray, fmt: str = "wav") -> str:
    return base64.b64encode(encoded(samples, fmt)).decode()


def decoded(data: bytes, response_format: str) -> np.ndarray:
    if response_format == "pcm":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768
    return decode_audio(data, sample_rate=SAMPLE_RATE, max_seconds=30)


def record_prompt_lengths(monkeypatch) -> list[int]:
    """Wrap (not replace) the batch's prefill in the server's process; record each prompt."""
    lengths: list[int] = []
    prefill = CsmBatch.prefill

    def recording(self, job):
        lengths.append(sum(self.builder.length(segment) for segment in job.prompt))
        return prefill(self, job)

    monkeypatch.setattr(CsmBatch, "prefill", recording)
    return lengths


@pytest.fixture
def narrator(csm_engine, alice, media_root) -> Voice:
    """Alice's cloned voice: two seconds of reference audio (25 frames)."""
    return cloned_voice(alice, "narrator", tone(2.0), "This is how I sound.")


def speech(api: httpx.Client, **fields) -> httpx.Response:
    return api.post(
        "/v1/audio/speech",
        json={"model": "csm-1b", "voice": "narrator", "input": TEXT, **ONE_SECOND, **fields},
    )


# --- speech -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response_format", "content_type", "exact"),
    [
        ("mp3", "audio/mpeg", False),
        ("opus", "audio/opus", False),
        ("aac", "audio/aac", False),
        ("flac", "audio/flac", True),
        ("wav", "audio/wav", True),
        ("pcm", "audio/pcm", True),
    ],
)
def test_csm_speaks_every_response_format(api, narrator, response_format, content_type, exact):
    # when
    response = speech(api, response_format=response_format)
    # then
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    samples = decoded(response.content, response_format)
    if exact:
        assert samples.size == SAMPLE_RATE
    else:
        # lossy codecs add their priming and padding
        assert 0.9 * SAMPLE_RATE <= samples.size <= 1.2 * SAMPLE_RATE
    assert np.abs(samples).max() > 0.05


def test_the_openai_client_speaks_with_csm_in_full_and_streamed(openai_client, narrator):
    # given
    request = {
        "model": "csm-1b",
        "voice": "narrator",
        "input": TEXT,
        "response_format": "wav",
        "extra_body": ONE_SECOND,
    }
    # when
    whole = openai_client.audio.speech.create(**request)
    with openai_client.audio.speech.with_streaming_response.create(**request) as response:
        content_type = response.headers["content-type"]
        streamed = b"".join(response.iter_bytes())
    # then
    assert decoded(whole.content, "wav").size == SAMPLE_RATE
    assert content_type == "audio/wav"
    assert streamed == whole.content


def test_the_same_seed_gives_the_same_bytes(api, narrator):
    first = speech(api, response_format="wav", seed=42)
    again = speech(api, response_format="wav", seed=42)
    other = speech(api, response_format="wav", seed=43)
    assert first.status_code == again.status_code == other.status_code == 200
    assert first.content == again.content
    assert other.content != first.content


def test_a_standard_voice_speaks_with_csm(openai_client, csm_engine, media_root, monkeypatch):
    # given a short recipe for alloy's reference (15 frames instead of 125), to keep it quick
    monkeypatch.setitem(standard_voices._SENTENCES, "alloy", "Hi.")
    monkeypatch.setattr(engine_module, "_SECONDS_SLACK", 0.4)
    # when alloy is first asked of CSM (its reference is made now)
    audio = openai_client.audio.speech.create(
        model="csm-1b", voice="alloy", input=TEXT, response_format="wav", extra_body=ONE_SECOND
    )
    # then
    assert decoded(audio.content, "wav").size == SAMPLE_RATE
    assert Voice.objects.filter(owner__isnull=True, name="alloy").count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 0),
        ("temperature", 2.5),
        ("topk", 0),
        ("topk", 101),
        ("max_audio_length_ms", 0),
        ("seed", -1),
        ("voice_consistency", 1.5),
    ],
)
def test_out_of_range_parameters_are_refused_by_name(api, field, value):
    # when
    response = api.post(
        "/v1/audio/speech", json={"model": "csm-1b", "input": TEXT, "voice": "alloy", field: value}
    )
    # then
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == field
    assert error["type"] == "invalid_request_error"
    assert field in error["message"]


def test_a_missing_model_answers_503_with_what_to_do_while_espeak_still_speaks(api, settings):
    # given CSM_MODEL is an empty directory (the tests' default)
    # when csm-1b is asked for until CSM has finished trying to load
    deadline = time.monotonic() + 30
    while True:
        response = api.post("/v1/audio/speech", json={"model": "csm-1b", "input": TEXT})
        assert response.status_code == 503
        error = response.json()["error"]
        if error["code"] != "engine_loading" or time.monotonic() > deadline:
            break
        assert response.headers["retry-after"] == "10"
        time.sleep(0.05)
    # then the answer says why and what to set, in OpenAI's error shape, without a path
    assert set(error) == ERROR_KEYS
    assert error["code"] == "engine_unavailable"
    assert error["type"] == "server_error"
    assert "CSM_MODEL" in error["message"]
    assert settings.CSM_MODEL not in error["message"]
    assert "retry-after" not in response.headers
    # and eSpeak answers meanwhile
    espeak = api.post("/v1/audio/speech", json={"model": "espeak", "input": TEXT})
    assert espeak.status_code == 200
    assert espeak.content


# --- conversation -----------------------------------------------------------------------------


def two_turns() -> list[dict]:
    return [
        {"speaker": 0, "text": "How was the trip?", "audio": b64(tone(2.0, 180.0))},
        {"speaker": 1, "text": "Long, but worth it.", "audio": b64(noise(2.0))},
    ]


@pytest.mark.parametrize(
    ("prefix", "response_format", "content_type"),
    [("/v1", "wav", "audio/wav"), ("/api/v1", "flac", "audio/flac")],
)
def test_conversation_speaks_the_next_turn_after_its_context(
    api, csm_engine, monkeypatch, prefix, response_format, content_type
):
    # given
    lengths = record_prompt_lengths(monkeypatch)
    body = {
        "model": "csm-1b",
        "text": "Tell me everything.",
        "speaker_id": 0,
        "context": two_turns(),
        "response_format": response_format,
        **ONE_SECOND,
    }
    # when
    response = api.post(f"{prefix}/audio/conversation", json=body)
    # then
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    samples = decoded(response.content, response_format)
    assert samples.size == SAMPLE_RATE
    assert np.abs(samples).max() > 0.05
    # and both turns, their two seconds of audio (25 frames) each, were in the prompt
    builder = csm_engine._builder
    expected = (
        len(builder.text_ids(Segment(0, "How was the trip?")))
        + 26
        + len(builder.text_ids(Segment(1, "Long, but worth it.")))
        + 26
        + len(builder.text_ids(Segment(0, "Tell me everything.")))
    )
    assert lengths == [expected]


def conversation_error(api, context: list[dict]) -> dict:
    response = api.post(
        "/v1/audio/conversation", json={"model": "csm-1b", "text": "Hi.", "context": context}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS
    return error


def test_a_context_item_that_is_not_audio_is_named(api, csm_engine):
    context = two_turns()
    context[1]["audio"] = base64.b64encode(b"this is not audio, just text").decode()
    error = conversation_error(api, context)
    assert error["param"] == "context[1].audio"
    assert error["code"] == "invalid_audio"


def test_context_audio_that_is_not_base64_is_named(api):
    context = two_turns()
    context[0]["audio"] = "%%% not base64 %%%"
    error = conversation_error(api, context)
    assert error["param"] == "context[0].audio"


def test_more_than_32_context_turns_are_refused(api):
    turn = {"speaker": 0, "text": "Hi.", "audio": base64.b64encode(b"RIFF").decode()}
    error = conversation_error(api, [turn] * 33)
    assert error["param"] == "context"


def test_a_context_longer_than_the_window_loses_its_oldest_turn(api, csm_engine, monkeypatch):
    # given two turns of 90 s (1125 frames each): together more than the 2048 positions
    # (Opus keeps the body small: see the next test for why that matters)
    lengths = record_prompt_lengths(monkeypatch)
    context = [
        {"speaker": 0, "text": "The older turn.", "audio": b64(noise(90.0, seed=1), "opus")},
        {"speaker": 1, "text": "The newer turn.", "audio": b64(noise(90.0, seed=2), "opus")},
    ]
    # when
    response = api.post(
        "/v1/audio/conversation",
        json={"text": "And now?", "context": context, "response_format": "wav", **ONE_SECOND},
    )
    # then it answers, from a prompt of the newer turn only
    assert response.status_code == 200, response.text
    assert decoded(response.content, "wav").size == SAMPLE_RATE
    builder = csm_engine._builder
    newer = len(builder.text_ids(Segment(1, "The newer turn."))) + 1125 + 1
    assert lengths == [newer + len(builder.text_ids(Segment(0, "And now?")))]
    assert lengths[0] + 13 <= builder.max_positions


def test_a_conversation_body_within_the_conversation_limit_is_accepted(api, csm_engine, settings):
    # given a minute of WAV context: about 3.8 MB of JSON, well under the conversation limit
    context = [{"speaker": 0, "text": "A long turn.", "audio": b64(noise(60.0))}]
    body = {"text": "And now?", "context": context, "response_format": "wav", **ONE_SECOND}
    assert 2.5 * 2**20 < len(json.dumps(body)) < settings.CONVERSATION_MAX_BODY_BYTES
    # when
    response = api.post("/v1/audio/conversation", json=body)
    # then
    assert response.status_code == 200, response.text


def test_conversation_needs_a_key(live_server_url):
    response = httpx.post(
        f"{live_server_url}/v1/audio/conversation", json={"model": "csm-1b", "text": "Hi."}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_conversation_with_an_engine_that_takes_no_context_is_refused(api):
    response = api.post("/v1/audio/conversation", json={"model": "espeak", "text": "Hi."})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "model_not_supported"
    assert error["param"] == "model"
    assert "csm-1b" in error["message"]


# --- readiness --------------------------------------------------------------------------------


def test_readyz_lists_csm_ready_with_how_it_runs(live_server_url, csm_engine):
    body = httpx.get(f"{live_server_url}/readyz").json()
    csm = body["engines"]["csm"]
    assert (csm["state"], csm["reason"]) == ("ready", "")
    # the device, the precision and the frame step's path (eager: the tests' settings)
    runtime = csm["runtime"]
    assert (runtime["device"], runtime["dtype"], runtime["captured"]) == ("cpu", "float32", False)
    assert set(runtime["steps"]) == {"captured", "eager"}
    assert runtime["steps"]["eager"] > 0  # the warm-up's steps


def test_readyz_lists_csm_unavailable_with_its_reason(live_server_url, settings):
    # given CSM has tried to load from an empty CSM_MODEL
    wait_while_loading(engine_get("csm"), 30)
    # when
    body = httpx.get(f"{live_server_url}/readyz").json()
    # then
    csm = body["engines"]["csm"]
    assert csm["state"] == "unavailable"
    assert "CSM_MODEL" in csm["reason"]
    assert settings.CSM_MODEL not in csm["reason"]


# --- batching ---------------------------------------------------------------------------------


def record_batch_rows(monkeypatch) -> list[int]:
    """Wrap (not replace) the batch's step; record how many requests each step served."""
    rows: list[int] = []
    step = CsmBatch.step

    def recording(self, jobs):
        rows.append(len(jobs))
        return step(self, jobs)

    monkeypatch.setattr(CsmBatch, "step", recording)
    return rows


def wait_until(condition, what: str, seconds: float = 20.0) -> None:
    """A hang guard, not a timing assertion: fail only if it never happens."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


def test_concurrent_requests_are_stepped_together_and_each_gets_its_own_take(
    api, narrator, csm_engine, live_server_url, alice_key, monkeypatch
):
    # given what three seeds give one request at a time
    seeds = (1, 2, 3)
    alone = [speech(api, seed=seed, response_format="pcm").content for seed in seeds]
    rows = record_batch_rows(monkeypatch)
    scheduler = csm_engine._scheduler
    # when the three arrive while the model is busy, and then it is free
    release = hold(scheduler)

    def client(seed: int) -> bytes:
        headers = {"Authorization": f"Bearer {alice_key}"}
        with httpx.Client(base_url=live_server_url, headers=headers, timeout=60) as own:
            response = speech(own, seed=seed, response_format="pcm")
            assert response.status_code == 200, response.text
            return response.content

    with ThreadPoolExecutor(len(seeds)) as pool:
        together = pool.map(client, seeds)
        wait_until(lambda: scheduler.waiting == len(seeds), "three requests waiting")
        assert REGISTRY.get_sample_value("tts_speech_scheduler_waiting") == len(seeds)
        release.set()
        together = list(together)
    # then they were stepped as one batch, and each got exactly its take alone
    assert max(rows) == len(seeds)
    assert together == alone


def test_a_full_scheduler_answers_503_with_retry_after_at_once(
    api, narrator, csm_engine, monkeypatch
):
    # given a scheduler with one place and no queue, the place taken by a request that waits
    assert speech(api).status_code == 200  # the voice's reference is encoded once, now
    scheduler = csm_engine._scheduler
    monkeypatch.setattr(scheduler, "max_batch", 1)
    monkeypatch.setattr(scheduler, "max_queue", 0)
    release = hold(scheduler)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(speech, api)
        wait_until(lambda: scheduler.waiting == 1, "the first request waiting")
        # when another request comes
        refused = speech(api)
        release.set()
        # then it is refused with OpenAI's error body and a time to retry, and the first
        # one is answered in full
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert set(refused.json()["error"]) == ERROR_KEYS
        assert first.result().status_code == 200


def test_a_client_that_hangs_up_leaves_the_batch(api, narrator, csm_engine):
    # given a request for a minute of speech, read until its first audio
    scheduler = csm_engine._scheduler
    body = {"model": "csm-1b", "voice": "narrator", "input": TEXT * 8, "seed": 1}
    with api.stream(
        "POST", "/v1/audio/speech", json={**body, "response_format": "pcm"}
    ) as response:
        assert response.status_code == 200
        next(response.iter_raw())
        assert scheduler.batch_size == 1
    # when the client hangs up, then its row leaves the batch and its admission ends
    wait_until(lambda: scheduler.batch_size == 0, "the row left the batch")
    wait_until(lambda: scheduler._sessions == 0, "the admission ended")


def test_running_out_of_gpu_memory_in_a_step_is_a_retryable_503(api, narrator, monkeypatch):
    # given a batch step that runs out of memory once
    step = CsmBatch.step

    def out_of_memory_once(self, jobs):
        monkeypatch.setattr(CsmBatch, "step", step)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(CsmBatch, "step", out_of_memory_once)
    # when
    failed = speech(api)
    # then it is a 503 worth retrying, and the retry is answered
    assert failed.status_code == 503
    assert failed.headers["retry-after"] == "1"
    assert failed.json()["error"]["code"] == "engine_error"
    assert speech(api).status_code == 200
