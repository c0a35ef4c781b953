"""The scheduler's own rules, over a counting model: admission, fairness, leaving, failures.

The model here is a plain counter (each row's frame is its request's number and frame index),
so what is checked is the scheduler alone: who is in each step, in which order, and what each
caller receives. The CSM model under the scheduler is tested in test_csm_batching.py.
"""

import threading
import time

import pytest
import torch
from scheduler_support import hold

from speech.engines.base import EngineError
from speech.engines.scheduler import FrameJob, FrameScheduler, SchedulerBusy


class CountingModel:
    """Rows are jobs; a row's frame is [job number, frame index]. Records every step's rows."""

    def __init__(self, *, end_after: dict[int, int] | None = None) -> None:
        self.rows: list[int] = []
        self.frames: list[int] = []
        self.steps: list[list[int]] = []
        self.end_after = end_after or {}
        self.fail_next_step: Exception | None = None
        # When set, each step waits for a ticket: the test decides when steps happen.
        self.tickets: threading.Semaphore | None = None

    def prefill(self, job: FrameJob) -> int:
        return job.prompt

    def join(self, prefilled: int) -> None:
        self.rows.append(prefilled)
        self.frames.append(0)

    def step(self, jobs: list[FrameJob]) -> tuple[torch.Tensor, list[bool]]:
        if self.tickets is not None:
            assert self.tickets.acquire(timeout=10)
        assert [job.prompt for job in jobs] == self.rows
        self.steps.append(list(self.rows))
        if self.fail_next_step is not None:
            error, self.fail_next_step = self.fail_next_step, None
            raise error
        codes = torch.tensor(
            [[row, frame] for row, frame in zip(self.rows, self.frames, strict=True)]
        )
        self.frames = [frame + 1 for frame in self.frames]
        ended = [
            self.end_after.get(row) == frame
            for row, frame in zip(self.rows, self.frames, strict=True)
        ]
        return codes, ended

    def keep(self, rows: list[int]) -> None:
        self.rows = [self.rows[index] for index in rows]
        self.frames = [self.frames[index] for index in rows]


def wait_until_closed(scheduler: FrameScheduler) -> None:
    deadline = time.monotonic() + 10
    while not scheduler._closed:
        assert time.monotonic() < deadline, "never closed"
        time.sleep(0.01)


def frames_of(stream) -> list[list[int]]:
    return [frame.tolist() for frame in stream]


def test_each_caller_gets_its_own_frames_up_to_its_limit():
    # given
    model = CountingModel()
    scheduler = FrameScheduler(model, max_batch=4, max_queue=4)
    with scheduler.session("a") as first, scheduler.session("b") as second:
        # when two jobs run together
        one = first.submit(1, None, None, limit=3)
        two = second.submit(2, None, None, limit=5)
        # then each stream holds only its own frames, as many as its limit
        assert frames_of(one) == [[1, 0], [1, 1], [1, 2]]
        assert frames_of(two) == [[2, f] for f in range(5)]
    # and the batch is empty again
    assert scheduler.batch_size == 0
    scheduler.close()


def test_the_end_of_speech_frame_ends_the_stream_without_being_delivered():
    # given job 7 whose model ends the speech at its third frame
    model = CountingModel(end_after={7: 3})
    scheduler = FrameScheduler(model, max_batch=2, max_queue=0)
    # when
    with scheduler.session("a") as session:
        frames = frames_of(session.submit(7, None, None, limit=10))
    # then the two frames before it arrive, not the marker
    assert frames == [[7, 0], [7, 1]]
    scheduler.close()


def test_sessions_beyond_batch_and_queue_are_refused_at_once():
    # given a scheduler with two places and one queue place, all taken
    scheduler = FrameScheduler(CountingModel(), max_batch=2, max_queue=1)
    with scheduler.session("a"), scheduler.session("b"), scheduler.session("c"):
        # when another caller comes, then it is refused, retryably
        with pytest.raises(SchedulerBusy) as refused:
            with scheduler.session("d"):
                pass
        assert refused.value.retryable
    # and once they have left, a caller is admitted again
    with scheduler.session("d"):
        pass
    scheduler.close()


def test_a_place_goes_to_the_owner_with_fewest_rows_not_the_first_in_line():
    # given a batch of two, its model thread held so the queue builds up
    model = CountingModel()
    scheduler = FrameScheduler(model, max_batch=2, max_queue=8)
    release = hold(scheduler)
    # when owner a submits four jobs, then owner b one
    streams = [scheduler._submit(FrameJob(n, None, None, 2, owner="a")) for n in (1, 2, 3, 4)]
    streams.append(scheduler._submit(FrameJob(9, None, None, 2, owner="b")))
    release.set()
    for stream in streams:
        frames_of(stream)
    # then the first batch is a's first job and b's, though a's second came before b's
    assert model.steps[0] == [1, 9]
    assert all(len(rows) <= 2 for rows in model.steps)
    scheduler.close()


def test_a_cancelled_job_leaves_the_batch_at_the_next_step():
    # given two endless jobs stepped together once
    model = CountingModel()
    model.tickets = threading.Semaphore(0)
    scheduler = FrameScheduler(model, max_batch=4, max_queue=0)
    release = hold(scheduler)
    with scheduler.session("a") as session:
        leaving = session.submit(1, None, None, limit=10_000)
        staying = session.submit(2, None, None, limit=12)
        release.set()
        model.tickets.release()
        assert next(iter(leaving)).tolist() == [1, 0]
        # when the first caller stops reading, and the model steps on
        leaving.cancel()
        for _ in range(11):
            model.tickets.release()
        frames_of(staying)
    # then job 1 was in at most the step already under way when it cancelled, none after,
    # and its stream ends rather than hangs
    assert len(model.steps) == 12
    assert model.steps[0] == [1, 2]
    assert all(rows == [2] for rows in model.steps[2:])
    assert len(frames_of(leaving)) <= 1
    scheduler.close()


def test_a_failed_step_fails_every_job_in_it_and_the_next_job_runs():
    # given a step that runs out of memory
    model = CountingModel()
    model.fail_next_step = torch.OutOfMemoryError("simulated")
    scheduler = FrameScheduler(model, max_batch=4, max_queue=0)
    release = hold(scheduler)
    with scheduler.session("a") as session:
        one = session.submit(1, None, None, limit=5)
        two = session.submit(2, None, None, limit=5)
        release.set()
        # when / then both callers see the cause
        for stream in (one, two):
            with pytest.raises(torch.OutOfMemoryError):
                frames_of(stream)
        # and the next job starts on a clean batch
        assert frames_of(session.submit(3, None, None, limit=2)) == [[3, 0], [3, 1]]
    scheduler.close()


def test_calls_run_on_the_model_thread_between_steps():
    # given
    scheduler = FrameScheduler(CountingModel(), max_batch=1, max_queue=0)
    # when
    name = scheduler.call(lambda: threading.current_thread().name)
    # then
    assert name == "scheduler"
    with pytest.raises(ZeroDivisionError):
        scheduler.call(lambda: 1 / 0)
    scheduler.close()


def test_closing_ends_every_waiting_stream_and_refuses_new_work():
    # given a job waiting while the model thread is busy
    scheduler = FrameScheduler(CountingModel(), max_batch=1, max_queue=1)
    release = hold(scheduler)
    with scheduler.session("a") as session:
        waiting = session.submit(1, None, None, limit=5)
        # when the scheduler is closed (close waits for the model thread, so from another
        # thread, while this one lets the model thread go)
        closing = threading.Thread(target=scheduler.close)
        closing.start()
        wait_until_closed(scheduler)
        release.set()
        closing.join(10)
        # then the waiting caller is told, retryably, instead of waiting forever
        with pytest.raises(EngineError) as stopped:
            frames_of(waiting)
        assert stopped.value.retryable
    # and nothing new is taken
    with pytest.raises(EngineError):
        with scheduler.session("b"):
            pass
    with pytest.raises(EngineError):
        scheduler.call(lambda: None)


def test_a_failure_outside_the_step_fails_the_batch_and_the_loop_goes_on():
    # given a model whose row bookkeeping fails once
    model = CountingModel()
    keep = model.keep
    failures = [RuntimeError("bookkeeping")]

    def failing_keep(rows):
        if failures and rows:
            raise failures.pop()
        keep(rows)

    model.keep = failing_keep
    scheduler = FrameScheduler(model, max_batch=2, max_queue=0)
    release = hold(scheduler)
    with scheduler.session("a") as session:
        # when a job finishes (its row leaves through keep) while another runs
        short = session.submit(1, None, None, limit=1)
        long = session.submit(2, None, None, limit=50)
        release.set()
        results = []
        for stream in (short, long):
            try:
                results.append(len(frames_of(stream)))
            except RuntimeError:
                results.append("failed")
        # then the batch's callers were told, and the next job is served
        assert "failed" in results
        assert frames_of(session.submit(3, None, None, limit=2)) == [[3, 0], [3, 1]]
    scheduler.close()
