"""CSM_COMPILE: the compiled frame modules draw what the plain ones draw (the tiny checkpoint,
compiled by inductor on the CPU; on a GPU the same call adds CUDA graphs)."""

import time

import numpy as np
import pytest
import torch

from speech.engines.base import EngineState, SynthesisParams, VoiceSpec
from speech.engines.registry import engine_get, engines_reset

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = ["Compiled or not, the same words."]


def loaded_engine(settings, tiny_csm_dir, *, compiled: bool):
    settings.CSM_MODEL = str(tiny_csm_dir)
    settings.CSM_DEVICE, settings.CSM_DTYPE = "cpu", "float32"
    settings.CSM_PREPARE_VOICES = False
    settings.CSM_COMPILE = compiled
    engines_reset()
    engine = engine_get("csm")
    deadline = time.monotonic() + 600  # a hang guard: compiling on two busy cores is slow
    while engine.state is EngineState.LOADING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.state is EngineState.READY, engine.reason
    return engine


def greedy(engine) -> np.ndarray:
    """Greedy decoding (top-k 1): no near-tie of two ids can flip on rounding alone."""
    params = SynthesisParams(topk=1, seed=0, max_audio_ms=800)
    return np.concatenate(list(engine.synthesize(TEXT, VoiceSpec(name="plain"), params)))


def test_compiled_frame_modules_speak_what_the_plain_ones_speak(settings, tiny_csm_dir):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # given what the plain engine says
        plain = greedy(loaded_engine(settings, tiny_csm_dir, compiled=False))
        # when an engine whose frame modules are compiled (at warm-up, before it is ready)
        # says the same
        engine = loaded_engine(settings, tiny_csm_dir, compiled=True)
        model = engine._loaded.model
        compiled = greedy(engine)
    finally:
        torch.set_num_threads(threads)
        engines_reset()
    # then the modules really are compiled, and the audio is the same
    assert hasattr(model.depth_decoder.forward, "_torchdynamo_orig_callable")
    assert hasattr(model.backbone_model.forward, "_torchdynamo_orig_callable")
    assert compiled.shape == plain.shape
    np.testing.assert_allclose(compiled, plain, atol=1e-3)
