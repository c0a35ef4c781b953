"""The captured frame step on the tiny checkpoint, compiled by inductor on this CPU.

Compiling costs minutes of CPU, so this module compiles two shapes once (1 and 4 rows, the
smallest span) and every test uses them; the engine's test reuses inductor's cache.
"""

import os
import threading
import time

import numpy as np
import pytest
import torch
from prometheus_client import REGISTRY, generate_latest
from torch._dynamo.utils import counters
from torch._inductor.runtime.cache_dir_utils import cache_dir
from transformers import CsmForConditionalGeneration, CsmProcessor

from speech.engines.base import EngineState, SynthesisParams, VoiceSpec
from speech.engines.csm import engine as engine_module
from speech.engines.csm.batching import CsmBatch, span_sizes
from speech.engines.csm.capture import CapturePlan, capture_plan
from speech.engines.csm.frame_step import StepShape
from speech.engines.csm.generation import Sampling, lay_out_codebook_heads
from speech.engines.csm.prompt import PromptBuilder, Segment
from speech.engines.registry import engine_get, engines_reset
from speech.engines.scheduler import FrameJob, FrameScheduler
from speech.health import speech_readiness
from tests.support.engines import wait_while_loading

# Compiling on two busy cores can outlast the suite's 5 minutes per test.
pytestmark = pytest.mark.timeout(1800)

SPAN = 512
SHAPES = (StepShape(1, SPAN), StepShape(4, SPAN))
SAMPLINGS = [Sampling(0.9, 50), Sampling(0.7, 5), Sampling(1.3, 100)]


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tiny_csm_dir, one_thread) -> tuple[CsmForConditionalGeneration, PromptBuilder]:
    model = CsmForConditionalGeneration.from_pretrained(tiny_csm_dir).eval()
    lay_out_codebook_heads(model)
    return model, PromptBuilder(model, CsmProcessor.from_pretrained(tiny_csm_dir))


@pytest.fixture(scope="module")
def captured(tiny) -> CsmBatch:
    """A batch of up to 4 rows whose 1-row and 4-row steps are compiled."""
    model, builder = tiny
    plan = CapturePlan(shapes=SHAPES, mode="default")
    batch = CsmBatch(model, builder, None, max_rows=4, capture=plan)
    assert batch.capture is not None
    batch.capture.start()
    assert batch.capture.wait(timeout=1200), "compiling took over 20 minutes"
    assert batch.capture.status.failed == ""
    assert batch.capture.status.captured == ["1x512", "4x512"]
    return batch


def job(text: str, seed: int, sampling: Sampling = SAMPLINGS[0], limit: int = 8) -> FrameJob:
    return FrameJob([Segment(0, text)], sampling, seed, limit)


def alone(batch: CsmBatch, request: FrameJob) -> torch.Tensor:
    batch.join(batch.prefill(request))
    codes = [batch.step([request])[0][0] for _ in range(request.limit)]
    batch.keep([])
    return torch.stack(codes)


def test_the_captured_step_equals_the_eager_step_given_the_same_state(captured):
    # given three rows of different prompts and settings in the 4-row bucket
    requests = [
        job("Hello there.", 1, SAMPLINGS[0]),
        job("A rather longer sentence than that.", 2, SAMPLINGS[1]),
        job("Third.", 3, SAMPLINGS[2]),
    ]
    with torch.inference_mode():
        for request in requests:
            captured.join(captured.prefill(request))
        state = captured.state
        before = [tensor.clone() for tensor in state.full.tensors()]
        shape, compiled = captured.capture.covering(StepShape(3, SPAN))
        assert shape == StepShape(4, SPAN)
        # when one frame is made by the compiled step, and from the same state by the eager one
        compiled_codes, compiled_ended = (t.clone() for t in compiled(state.views(4), SPAN))
        after_compiled = [tensor.clone() for tensor in state.full.tensors()]
        for tensor, kept in zip(state.full.tensors(), before, strict=True):
            tensor.copy_(kept)
        eager_codes, eager_ended = captured.frame_step(state.views(4), SPAN)
        after_eager = [tensor.clone() for tensor in state.full.tensors()]
        captured.keep([])
    # then the same ids are drawn, and the state moves on alike (within float tolerance)
    assert torch.equal(compiled_codes[:3], eager_codes[:3])
    assert torch.equal(compiled_ended[:3], eager_ended[:3])
    for index, (compiled_tensor, eager_tensor) in enumerate(
        zip(after_compiled, after_eager, strict=True)
    ):
        torch.testing.assert_close(
            compiled_tensor, eager_tensor, atol=1e-4, rtol=1e-4, msg=f"state tensor {index}"
        )
    # and the step did move on: hidden state and positions changed
    assert not torch.equal(after_eager[-7], before[-7])


def test_a_request_draws_the_same_alone_eager_and_captured_among_others(tiny, captured):
    model, builder = tiny
    eager = CsmBatch(model, builder, None, max_rows=4)
    target = job("The same words, whoever is near.", 42, SAMPLINGS[1], limit=10)
    with torch.inference_mode():
        expected = alone(eager, target)
        assert eager.steps_captured == 0
        # when it runs captured, alone, and then in a batch that others join and leave
        steps = captured.steps_captured
        assert torch.equal(alone(captured, target), expected)
        others = [job(f"Someone else, number {n}.", n, SAMPLINGS[n % 3], 4) for n in range(3)]
        captured.join(captured.prefill(others[0]))
        captured.join(captured.prefill(target))
        running = [others[0], target]
        drawn = []
        for frame in range(10):
            if frame in (2, 3):
                extra = others[frame - 1]
                captured.join(captured.prefill(extra))
                running.append(extra)
            codes, _ = captured.step(running)
            drawn.append(codes[running.index(target)])
            for request in running:
                request.frames += 1
            kept = [row for row, r in enumerate(running) if r is target or r.frames < r.limit]
            captured.keep(kept)
            running = [running[row] for row in kept]
        captured.keep([])
    # then it drew exactly the same frames, every step of them captured
    assert torch.equal(torch.stack(drawn), expected)
    assert captured.steps_captured - steps == 20


def test_no_recompilation_after_warm_up(captured):
    # given the compiled shapes, and how many graphs were compiled to make them
    graphs = counters["stats"]["unique_graphs"]
    eager_steps = captured.steps_eager
    scheduler = FrameScheduler(captured, max_batch=4, max_queue=8)
    results: dict[int, int] = {}

    def speak(index: int) -> None:
        text = "Word " * (1 + 5 * index)  # prompt lengths from 3 to about 60 positions
        sampling = SAMPLINGS[index % 3]
        time.sleep(0.05 * index)
        with scheduler.session(f"caller-{index}") as session:
            stream = session.submit([Segment(index % 2, text)], sampling, index, 3 + index)
            results[index] = len(list(stream))

    # when 8 requests of different prompt lengths come and go (batches of 1 to 4 rows, joins
    # and leaves at every step)
    threads = [threading.Thread(target=speak, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    scheduler.close()
    # then each got its frames, every step ran a captured graph, and nothing was compiled
    assert results == {n: 3 + n for n in range(8)}
    assert captured.steps_eager == eager_steps
    assert counters["stats"]["unique_graphs"] == graphs


def test_a_shape_not_captured_runs_eagerly(tiny):
    # given a batch whose capture has nothing ready (never started)
    model, builder = tiny
    plan = CapturePlan(shapes=SHAPES, mode="default")
    batch = CsmBatch(model, builder, None, max_rows=4, capture=plan)
    # when it steps, the eager step serves
    with torch.inference_mode():
        alone(batch, job("Not yet.", 1, limit=2))
    assert (batch.steps_eager, batch.steps_captured) == (2, 0)
    assert batch.capture.status.captured == []


@pytest.mark.django_db(transaction=True)
def test_the_engine_captures_in_the_background_and_says_so(
    settings, tiny_csm_dir, one_thread, captured, monkeypatch, caplog
):
    # given the engine with capture on for one-row steps at the smallest span
    monkeypatch.setattr(engine_module, "span_sizes", lambda window: span_sizes(window)[:1])
    settings.CSM_MODEL = str(tiny_csm_dir)
    settings.CSM_DEVICE, settings.CSM_DTYPE = "cpu", "float32"
    settings.CSM_PREPARE_VOICES = False
    # The cache the module's shapes were compiled into: the engine's compile reuses them.
    settings.CSM_COMPILE_CACHE_DIR = cache_dir()
    params = SynthesisParams(seed=5, max_audio_ms=800)
    voice = VoiceSpec(name="plain")

    def speak(engine) -> np.ndarray:
        return np.concatenate(list(engine.synthesize(["Captured or not."], voice, params)))

    def loaded():
        engines_reset()
        engine = wait_while_loading(engine_get("csm"), 120)
        assert engine.state is EngineState.READY, engine.reason
        return engine

    try:
        settings.CSM_CAPTURE = False
        plain = speak(loaded())
        settings.CSM_CAPTURE, settings.CSM_CAPTURE_BUCKETS = True, [1]
        with caplog.at_level("INFO", logger="speech.engines.csm.engine"):
            engine = loaded()
        # when its capture is done
        assert engine._batch.capture.wait(timeout=900)
        audio = speak(engine)
        steps = engine._batch.steps_captured
        report = speech_readiness()[1]["engines"]["csm"]["runtime"]
        metrics = generate_latest(REGISTRY).decode()
    finally:
        engines_reset()
    # then one log line said which path runs, /readyz and /metrics name the captured shape
    # and count the captured steps, and the captured step spoke exactly what the eager one
    # spoke (seeded sampling, not greedy)
    assert any("CSM frame step: captured on cpu in float32" in r.message for r in caplog.records)
    assert report["device"] == "cpu" and report["dtype"] == "float32"
    assert report["captured"] is True
    assert report["capture"]["captured"] == ["1x512"]
    assert report["steps"]["captured"] == steps > 0
    # and inductor's cache is the one the setting names (kept across restarts)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == settings.CSM_COMPILE_CACHE_DIR
    assert 'tts_frame_step_captured{engine="csm",shape="1x512"} 1.0' in metrics
    assert f'tts_frame_steps_total{{engine="csm",path="captured"}} {float(steps)}' in metrics
    np.testing.assert_array_equal(audio, plain)


def test_the_buckets_asked_for_name_the_buckets_that_hold_them():
    buckets, spans = [1, 2, 4, 8, 16], [512, 2048]
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    # by default: the ends on a CPU, every bucket on CUDA (small span first, then the whole)
    cpu_plan = capture_plan(cpu, buckets, spans)
    assert [(s.rows, s.span) for s in cpu_plan.shapes] == [
        (1, 512),
        (16, 512),
        (1, 2048),
        (16, 2048),
    ]
    assert cpu_plan.mode == "default"
    cuda_plan = capture_plan(cuda, buckets, spans)
    assert [s.rows for s in cuda_plan.shapes] == buckets * 2
    assert cuda_plan.mode == "reduce-overhead"
    # asked for: 3 rows run in the 4-row bucket, past the largest is the largest
    asked = capture_plan(cpu, buckets, spans[:1], requested=[3, 4, 1, 40])
    assert [s.rows for s in asked.shapes] == [1, 4, 16]
