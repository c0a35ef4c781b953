"""One scheduler per model: every request's frames come from one frame-synchronous batch loop.

Requests arrive on many threads (one per HTTP stream); a single model thread owns the model.
It prefills each new request's prompt, adds it to the running batch at the next frame step,
steps the whole batch at once, and hands each request its own frame. A finished or cancelled
request leaves the batch before the next step. Work that is not a frame step but still needs
the model (codec encode and decode) runs on the same thread between steps (`call`), so the
model is never used by two threads at once and no lock is held across a step. Work that is
cheaper done for many callers at once (decoding the audio of every stream that emitted at the
same step) is queued with `call_batched`: the calls queued for the same function between two
steps run as one call over all their items.

Admission is bounded: `session()` refuses at once (a retryable `SchedulerBusy`, a 503 with
Retry-After) when `max_batch + max_queue` requests are already open, rather than queueing
without end. Among waiting requests the next batch place goes to the owner (an API key's
user) with the fewest requests in the batch, so one caller flooding the server cannot starve
another.

The model-specific work (prompt prefill, the batched step, dropping rows) lives behind
`BatchModel`; this module knows nothing about CSM.
"""

import itertools
import logging
import queue
import threading
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import torch

from speech.engines.base import EngineError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_END = object()
_ALL: "weakref.WeakSet[FrameScheduler]" = weakref.WeakSet()


class SchedulerBusy(EngineError):
    """The scheduler has as many open requests as it may: retry shortly."""

    def __init__(self) -> None:
        super().__init__("the server is busy with other requests; retry shortly.", retryable=True)


class FrameStream:
    """The frames of one job, read by the thread that submitted it."""

    def __init__(self, scheduler: "FrameScheduler") -> None:
        self._scheduler = scheduler
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.cancelled = False

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            item = self._items.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def cancel(self) -> None:
        """Stop generating for this job: it leaves the batch before the next step."""
        if not self.cancelled:
            self.cancelled = True
            self._scheduler._wake()

    # Called on the model thread.
    def _put(self, frame: torch.Tensor) -> None:
        self._items.put(frame)

    def _end(self, error: BaseException | None = None) -> None:
        self._items.put(error if error is not None else _END)


@dataclass(eq=False)
class FrameJob:
    """One prompt to continue frame by frame, with its own sampling settings and seed."""

    prompt: Any
    sampling: Any
    # The request's seed, and the number of its first frame here: a request of several
    # chunks numbers its frames across them, so no two draw with the same noise.
    seed: int
    # The most frames to make; fewer if the model ends the speech first.
    limit: int
    first_frame: int = 0
    owner: str = ""
    frames: int = 0
    stream: FrameStream | None = None
    order: int = field(default=0, compare=False)


class BatchModel(Protocol):
    """The model side of the loop. All methods run on the model thread only."""

    def prefill(self, job: FrameJob) -> Any:
        """Run `job.prompt` through the model on its own; returns what `join` takes."""

    def join(self, prefilled: Any) -> None:
        """Add a prefilled request as the last row of the running batch."""

    def step(self, jobs: list[FrameJob]) -> tuple[torch.Tensor, list[bool]]:
        """One frame for every row (rows in the order of `jobs`): the codes on the CPU
        (rows, codebooks) and, per row, whether that frame ends the speech."""

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows of the batch (in this order), freeing the others' memory."""


class Session:
    """One caller's admission: the frames of its chunks, one job after the other."""

    def __init__(self, scheduler: "FrameScheduler", owner: str) -> None:
        self._scheduler = scheduler
        self.owner = owner

    def submit(
        self, prompt: Any, sampling: Any, seed: int, limit: int, *, first_frame: int = 0
    ) -> FrameStream:
        job = FrameJob(prompt, sampling, seed, limit, first_frame=first_frame, owner=self.owner)
        return self._scheduler._submit(job)


class FrameScheduler:
    def __init__(
        self, model: BatchModel, *, max_batch: int, max_queue: int, name: str = "scheduler"
    ) -> None:
        self._model = model
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._name = name
        self._cond = threading.Condition()
        self._waiting: dict[str, deque[FrameJob]] = {}
        self._calls: deque[_Call] = deque()
        self._running: list[FrameJob] = []
        self._sessions = 0
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False
        _ALL.add(self)

    # --- what callers use -------------------------------------------------------------------

    @contextmanager
    def session(self, owner: str) -> Iterator[Session]:
        """Admit one request (raises `SchedulerBusy` at once when full) for as long as it lasts."""
        with self._cond:
            if self._closed:
                raise EngineError("the engine was stopped; retry shortly.", retryable=True)
            if self._sessions >= self.max_batch + self.max_queue:
                raise SchedulerBusy()
            self._sessions += 1
        try:
            yield Session(self, owner)
        finally:
            with self._cond:
                self._sessions -= 1

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` on the model thread, between two frame steps; its result."""
        if threading.current_thread() is self._thread:
            return function(*args)
        return self._queue(_Call(function, args, Future()))

    def call_batched(self, function_many: Callable[[list[Any]], Sequence[T]], item: Any) -> T:
        """Run `function_many` on the model thread, between two frame steps, over `item` and
        the items of every other call of the same function queued by then; `item`'s result.

        `function_many(items)` returns one result per item, in order. If it fails, every
        caller of that group gets the error.
        """
        if threading.current_thread() is self._thread:
            return _one_result_each(function_many, [item])[0]
        return self._queue(_Call(function_many, (item,), Future(), batched=True))

    def _queue(self, call: "_Call") -> Any:
        """Queue `call` for the model thread and wait for its result."""
        with self._cond:
            if self._closed:
                raise EngineError("the engine was stopped; retry shortly.", retryable=True)
            self._calls.append(call)
            self._start()
            self._cond.notify()
        return call.future.result()

    @property
    def batch_size(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return sum(len(jobs) for jobs in self._waiting.values())

    def close(self) -> None:
        """Stop the model thread (waiting callers are told) and wait for it to end."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    # --- the model thread -------------------------------------------------------------------

    def _submit(self, job: FrameJob) -> FrameStream:
        job.stream = FrameStream(self)
        job.order = next(self._order)
        with self._cond:
            if self._closed:
                raise EngineError("the engine was stopped; retry shortly.", retryable=True)
            self._waiting.setdefault(job.owner, deque()).append(job)
            self._start()
            self._cond.notify()
        return job.stream

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._cond:
                    while not (self._calls or self.waiting or self._running or self._closed):
                        self._cond.wait()
                    if self._closed:
                        break
                    calls = list(self._calls)
                    self._calls.clear()
                self._run_calls(calls)
                try:
                    self._drop_cancelled()
                    self._admit()
                    if self._running:
                        self._step()
                except Exception as exc:
                    # Whatever went wrong, the loop goes on: the batch's callers get the cause.
                    logger.exception("the scheduler's batch failed")
                    self._fail_running(exc)
        self._stop()

    def _fail_running(self, error: BaseException) -> None:
        for job in self._running:
            job.stream._end(error)
        self._running = []
        self._model.keep([])

    def _stop(self) -> None:
        """Closed: nobody is left waiting for frames or for a call that will never run."""
        stopped = EngineError("the engine was stopped; retry shortly.", retryable=True)
        with self._cond:
            waiting = [job for jobs in self._waiting.values() for job in jobs]
            self._waiting.clear()
            calls = list(self._calls)
            self._calls.clear()
        for job in [*self._running, *waiting]:
            job.stream._end(stopped)
        self._running = []
        for call in calls:
            call.future.set_exception(stopped)

    @staticmethod
    def _run_calls(calls: list["_Call"]) -> None:
        """Run queued calls in their order; the batched calls of one function run together,
        as one call, where the first of them was queued."""
        groups: dict[Callable[..., Any], list[_Call]] = {}
        for call in calls:
            if call.batched:
                groups.setdefault(call.function, []).append(call)
        for call in calls:
            if not call.batched:
                _run_one(call)
            elif call.function in groups:
                _run_group(call.function, groups.pop(call.function))

    def _next_waiting(self) -> FrameJob | None:
        """The head of the queue of the owner with the fewest rows in the batch (then the
        longest wait)."""
        with self._cond:
            owners = [owner for owner, jobs in self._waiting.items() if jobs]
            if not owners:
                return None
            batch = Counter(job.owner for job in self._running)
            owner = min(owners, key=lambda o: (batch[o], self._waiting[o][0].order))
            job = self._waiting[owner].popleft()
            if not self._waiting[owner]:
                del self._waiting[owner]
            return job

    def _admit(self) -> None:
        while len(self._running) < self.max_batch:
            job = self._next_waiting()
            if job is None:
                return
            assert job.stream is not None
            if job.stream.cancelled:
                job.stream._end()
                continue
            try:
                prefilled = self._model.prefill(job)
                self._model.join(prefilled)
            except Exception as exc:
                logger.exception("prefill failed")
                job.stream._end(exc)
                continue
            self._running.append(job)

    def _drop_cancelled(self) -> None:
        kept = [index for index, job in enumerate(self._running) if not job.stream.cancelled]
        if len(kept) < len(self._running):
            for job in self._running:
                if job.stream.cancelled:
                    job.stream._end()
            self._keep(kept)

    def _keep(self, rows: list[int]) -> None:
        self._running = [self._running[index] for index in rows]
        self._model.keep(rows)

    def _step(self) -> None:
        try:
            codes, ended = self._model.step(self._running)
        except Exception as exc:
            # The batch's state is unknown after a failed step (out of memory, say): every
            # request in it fails with the cause, and the next request starts clean.
            logger.exception("frame step failed for a batch of %d", len(self._running))
            self._fail_running(exc)
            return
        kept = []
        for index, job in enumerate(self._running):
            job.frames += 1
            if ended[index]:
                job.stream._end()  # the end-of-audio frame is a marker, not audio
                continue
            job.stream._put(codes[index])
            if job.frames >= job.limit:
                job.stream._end()
                continue
            kept.append(index)
        if len(kept) < len(self._running):
            self._keep(kept)


@dataclass(eq=False)
class _Call:
    """A call queued for the model thread: `function(*args)`, or for a batched call
    `function([item, ...])` over this call's item (`args[0]`) and its group's."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    future: Future[Any]
    batched: bool = False


def _run_one(call: _Call) -> None:
    try:
        call.future.set_result(call.function(*call.args))
    except BaseException as exc:  # handed to the caller, whatever it is
        call.future.set_exception(exc)


def _run_group(function_many: Callable[[list[Any]], Sequence[Any]], calls: list[_Call]) -> None:
    try:
        results = _one_result_each(function_many, [call.args[0] for call in calls])
    except BaseException as exc:  # handed to every caller of the group, whatever it is
        for call in calls:
            call.future.set_exception(exc)
        return
    for call, result in zip(calls, results, strict=True):
        call.future.set_result(result)


def _one_result_each(
    function_many: Callable[[list[Any]], Sequence[Any]], items: list[Any]
) -> list[Any]:
    """`function_many(items)`, checked to give one result per item."""
    results = list(function_many(items))
    if len(results) != len(items):
        raise RuntimeError(
            f"{getattr(function_many, '__qualname__', function_many)!r} returned "
            f"{len(results)} results for {len(items)} items"
        )
    return results


def scheduler_batch_size() -> int:
    """Rows stepped together right now, over every scheduler in this process."""
    return sum(scheduler.batch_size for scheduler in list(_ALL))


def scheduler_waiting() -> int:
    """Requests prefilled next, over every scheduler in this process."""
    return sum(scheduler.waiting for scheduler in list(_ALL))
