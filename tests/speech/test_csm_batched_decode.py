"""Decoding several streams' audio at once: the same audio as each alone, one call per step.

`StreamingDecoder.decode_together` runs the convolution stack once over every stream whose
piece has the same length; each stream must still get exactly what its own `decode` gives.
The scheduler's `call_batched` is what brings those pieces together on the model thread.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from scheduler_support import hold

from speech.engines.csm.codec import StreamingDecoder
from speech.engines.csm.engine import SAMPLES_PER_FRAME
from speech.engines.scheduler import FrameScheduler


@pytest.fixture
def model(csm_engine):
    return csm_engine._loaded.model


def random_codes(count: int, seed: int = 0) -> torch.Tensor:
    """Valid codec codes (count, 32), as a generator could have drawn them."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2048, (count, 32), generator=generator)


class IdleModel:
    """A model with no requests: the scheduler here only runs calls."""

    def prefill(self, job):
        raise AssertionError("no request is submitted here")

    def join(self, prefilled):
        raise AssertionError("no request is submitted here")

    def step(self, jobs):
        raise AssertionError("no request is submitted here")

    def keep(self, rows):
        pass


def test_streams_decoded_together_get_what_each_gets_alone(model):
    # given three streams' codes; stream 2 starts two steps late, and pieces of 3 then 12
    # frames mean each step mixes lengths (groups of different time lengths)
    codes = [random_codes(60, seed=seed) for seed in range(3)]
    sizes = {0: [3, 12, 12, 12, 1], 1: [3, 12, 3, 12, 12], 2: [0, 0, 3, 12, 12]}
    codec = model.codec_model
    alone = [StreamingDecoder(codec) for _ in range(3)]
    together = [StreamingDecoder(codec) for _ in range(3)]
    starts = [0, 0, 0]
    for step in range(5):
        # when each step's pieces are decoded together, a stream not yet started left out
        rows = [stream for stream in range(3) if sizes[stream][step]]
        pieces = []
        for stream in rows:
            size = sizes[stream][step]
            pieces.append(codes[stream][starts[stream] : starts[stream] + size])
            starts[stream] += size
        audio = StreamingDecoder.decode_together([together[row] for row in rows], pieces)
        # then each stream's audio is what its own decoder gives for its own pieces
        for stream, piece, got in zip(rows, pieces, audio, strict=True):
            expected = alone[stream].decode(piece)
            assert got.shape == (piece.shape[0] * SAMPLES_PER_FRAME,)
            assert float(expected.abs().max()) > 0.01
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_a_stream_listed_twice_decodes_its_pieces_in_order(model):
    codes = random_codes(15, seed=4)
    alone, together = StreamingDecoder(model.codec_model), StreamingDecoder(model.codec_model)
    other_alone, other = StreamingDecoder(model.codec_model), StreamingDecoder(model.codec_model)
    expected = [alone.decode(codes[:3]), other_alone.decode(codes[3:6]), alone.decode(codes[6:])]
    got = StreamingDecoder.decode_together(
        [together, other, together], [codes[:3], codes[3:6], codes[6:]]
    )
    for piece, want in zip(got, expected, strict=True):
        torch.testing.assert_close(piece, want, rtol=1e-5, atol=1e-5)


def test_no_frames_decode_to_no_audio_beside_others(model):
    decoders = [StreamingDecoder(model.codec_model) for _ in range(2)]
    audio = StreamingDecoder.decode_together(decoders, [random_codes(0), random_codes(3)])
    assert [piece.shape[0] for piece in audio] == [0, 3 * SAMPLES_PER_FRAME]


# --- the scheduler's batched calls ----------------------------------------------------------


@pytest.fixture
def scheduler():
    scheduler = FrameScheduler(IdleModel(), max_batch=4, max_queue=4)
    yield scheduler
    scheduler.close()


def wait_for_queued(scheduler, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(scheduler._calls) < count:
        assert time.monotonic() < deadline, "the calls were never queued"
        time.sleep(0.005)


def queue_while_held(scheduler, function_many, items):
    """Each item queued from its own thread while the model thread is busy; their results."""
    release = hold(scheduler)
    with ThreadPoolExecutor(len(items)) as pool:
        futures = [pool.submit(scheduler.call_batched, function_many, item) for item in items]
        wait_for_queued(scheduler, len(items))
        release.set()
        return [future.exception(10) or future.result() for future in futures]


def test_queued_batched_calls_run_as_one_call_and_each_caller_gets_its_result(scheduler):
    groups: list[list[int]] = []

    def square_all(items: list[int]) -> list[int]:
        groups.append(list(items))
        return [item * item for item in items]

    results = queue_while_held(scheduler, square_all, [1, 2, 3, 4, 5])
    assert results == [1, 4, 9, 16, 25]
    assert len(groups) == 1 and sorted(groups[0]) == [1, 2, 3, 4, 5]


def test_batched_calls_of_different_functions_and_plain_calls_keep_apart(scheduler):
    seen: list[tuple[str, list[int]]] = []

    def tag(name):
        def run(items):
            seen.append((name, list(items)))
            return [f"{name}{item}" for item in items]

        return run

    first, second = tag("a"), tag("b")
    release = hold(scheduler)
    with ThreadPoolExecutor(4) as pool:
        calls = [
            pool.submit(scheduler.call_batched, first, 1),
            pool.submit(scheduler.call_batched, second, 2),
            pool.submit(scheduler.call_batched, first, 3),
            pool.submit(scheduler.call, lambda: "plain"),
        ]
        wait_for_queued(scheduler, 4)
        release.set()
        results = sorted(future.result(10) for future in calls)
    assert results == ["a1", "a3", "b2", "plain"]
    assert sorted((name, sorted(items)) for name, items in seen) == [("a", [1, 3]), ("b", [2])]


def test_a_failing_batched_call_fails_every_caller_of_its_group(scheduler):
    def explode(items):
        raise ValueError(f"bad batch of {len(items)}")

    results = queue_while_held(scheduler, explode, [1, 2, 3])
    assert all(isinstance(error, ValueError) for error in results)
    assert {str(error) for error in results} == {"bad batch of 3"}
    # and the scheduler goes on serving calls
    assert scheduler.call_batched(lambda items: [item + 1 for item in items], 1) == 2


def test_a_wrong_count_of_results_fails_the_group(scheduler):
    results = queue_while_held(scheduler, lambda items: items[:1], [1, 2])
    assert all(isinstance(error, RuntimeError) for error in results)
