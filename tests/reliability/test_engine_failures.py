"""The engine fails (a CUDA out-of-memory, simulated): the caller gets a retryable 503 in
OpenAI's shape, the generation slots come back, and the next request succeeds.

An engine that raises EngineError is covered in tests/speech/test_speech_api.py; here the
error is the one torch raises, from inside CSM's model, and from an engine that does not
translate it.
"""

import pytest
from reliability_support import assert_openai_503

from speech.admission import speech_slots
from speech.engines.espeak import EspeakEngine
from tests.support.audio import tone
from tests.support.processes import wait_until
from tests.support.voices import cloned_voice

pytestmark = pytest.mark.system

CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.25 GiB total capacity)"


def out_of_memory_once(function):
    """`function`, except that its first call raises torch's CUDA out-of-memory error."""
    import torch

    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError(CUDA_OOM)
        return function(*args, **kwargs)

    return failing


def assert_retryable_and_slots_freed(response) -> None:
    error = assert_openai_503(response, "engine_error")
    assert "memory" in error["message"]
    assert "GiB" not in error["message"]
    wait_until(lambda: speech_slots.inflight == 0, timeout=20, what="the slot to be freed")


def test_csm_running_out_of_gpu_memory_is_a_retryable_503_then_it_speaks(
    api, csm_engine, alice, media_root, monkeypatch
):
    # given a cloned voice, and CSM's backbone running out of memory on its next step
    cloned_voice(alice, "narrator", tone(1.0), "This is how I sound.")
    backbone = csm_engine._loaded.model.backbone_model
    monkeypatch.setattr(backbone, "forward", out_of_memory_once(backbone.forward))
    body = {
        "model": "csm-1b",
        "voice": "narrator",
        "input": "Hello.",
        "response_format": "wav",
        "max_audio_length_ms": 400,
    }

    # when a request meets it: a 503 the caller may retry
    assert_retryable_and_slots_freed(api.post("/v1/audio/speech", json=body))

    # then the next request speaks
    response = api.post("/v1/audio/speech", json=body)
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"RIFF")


def test_an_engine_that_lets_out_of_memory_through_is_a_retryable_503(api, monkeypatch):
    # given an engine that raises torch's error as it is
    monkeypatch.setattr(EspeakEngine, "synthesize", out_of_memory_once(EspeakEngine.synthesize))
    body = {"model": "tts-1", "voice": "alloy", "input": "Hello.", "response_format": "mp3"}

    assert_retryable_and_slots_freed(api.post("/v1/audio/speech", json=body))

    response = api.post("/v1/audio/speech", json=body)
    assert response.status_code == 200, response.text
    assert response.content
