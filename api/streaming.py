"""Streaming a SpeechStream over HTTP from async views, without blocking the event loop.

The blocking pipeline (engine, filter, encoder) runs on worker threads one piece at a time;
the event loop only moves bytes. The response starts only once the first audio exists, so a
failure before that still gets a proper status and an OpenAI error body.
"""

import asyncio
import base64
import contextvars
import json
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connections
from django.http import StreamingHttpResponse
from rest_framework.request import Request

from accounts.limits import USER, GenerationSlots, generation_slots_acquire
from accounts.models import ApiKey
from accounts.services import usage_record
from api.error_codes import ErrorCode, ErrorType
from api.errors import ApiError, rate_limited, service_unavailable
from api.throttling import request_api_key
from speech import metrics
from speech.admission import speech_slots
from speech.engines.base import EngineError
from speech.synthesis import SpeechStream

logger = logging.getLogger(__name__)


@cache
def _executor() -> ThreadPoolExecutor:
    # One worker per admitted generation: a request never waits for a thread.
    return ThreadPoolExecutor(max_workers=settings.SPEECH_MAX_INFLIGHT, thread_name_prefix="speech")


_END = object()
# A consumer that takes nothing for this long has gone (or never started): stop generating.
_STALL_SECONDS = 60.0


class BackgroundIterator:
    """Run a blocking iterator on a worker thread that hands items to the event loop.

    The worker runs ahead of the consumer by at most `max_ahead` items, so items cost a
    wake-up of the loop rather than a round trip per item. `close()` stops it before its next
    item; the worker closes the iterator itself (a generator belongs to one thread), runs
    `on_stop`, hands over the end, then runs `after_stop`. The worker, not the response,
    decides when the work has really ended: a response that is never started or closed cannot
    keep it, or what `on_stop` frees, forever.
    """

    def __init__(
        self,
        iterator: Iterator[bytes],
        *,
        on_stop: Callable[[], None],
        after_stop: Callable[[], None],
        max_ahead: int = 8,
    ) -> None:
        self._iterator = iterator
        self._on_stop = on_stop
        self._after_stop = after_stop
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[object, BaseException | None]] = asyncio.Queue()
        self._space = threading.Semaphore(max_ahead)
        self._cancelled = threading.Event()
        # The worker's log lines carry the request's id (a contextvar) too.
        _executor().submit(contextvars.copy_context().run, self._run)

    def _run(self) -> None:
        outcome: BaseException | None = None
        try:
            while not self._cancelled.is_set():
                try:
                    item = next(self._iterator)
                except StopIteration:
                    break
                if not self._space.acquire(timeout=_STALL_SECONDS):
                    logger.warning("speech client stopped reading; generation abandoned")
                    self._cancelled.set()
                if self._cancelled.is_set():
                    break
                self._hand_over(item, None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            outcome = exc
        finally:
            try:
                close = getattr(self._iterator, "close", None)
                if close is not None:
                    close()
            finally:
                self._on_stop()
        if not self._cancelled.is_set():
            self._hand_over(_END, outcome)
        # Slow bookkeeping goes after the hand-over, off the response's critical path.
        self._after_stop()

    def _hand_over(self, item: object, error: BaseException | None) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (item, error))
        except RuntimeError:
            # The event loop is gone (server shutting down): nobody is waiting any more.
            self._cancelled.set()

    async def next(self) -> bytes | None:
        """The next item, None at the end; re-raises what the iterator raised."""
        item, error = await self._queue.get()
        if item is _END:
            if error is not None:
                raise error
            return None
        self._space.release()
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the worker at its next item; never blocks."""
        self._cancelled.set()
        self._space.release()  # wake the worker if it waits for room


class SpeechResponse(StreamingHttpResponse):
    """A streaming response that frees its generation slot however the stream ends."""

    def __init__(self, *args, on_close: Callable[[], None], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._on_close = on_close

    def close(self) -> None:
        try:
            self._on_close()
        finally:
            super().close()


async def speech_response(
    stream: SpeechStream,
    *,
    sse: bool,
    request: Request,
    admitted: Callable[[], None] | None = None,
) -> SpeechResponse:
    """`speech_stream_response` for an API request's caller."""
    return await speech_stream_response(
        stream, sse=sse, user=request.user, api_key=request_api_key(request), admitted=admitted
    )


def caller_slots_acquire(
    *, user: AbstractBaseUser, api_key: ApiKey | None, work: str
) -> GenerationSlots:
    """The key's own concurrent slot and the user's (over all the user's keys), or 429 naming
    whose limit it is; `work` names what is running ("generations"), for the message."""
    slots = generation_slots_acquire(user=user, api_key=api_key)
    if slots.refused_by is not None:
        whose = "your account's API keys" if slots.refused_by == USER else "this API key"
        raise rate_limited(
            f"Too many {work} at once for {whose}; wait for one to finish.",
            code=ErrorCode.CONCURRENCY_LIMIT_EXCEEDED,
            retry_after=settings.SPEECH_RETRY_AFTER_SECONDS,
        )
    return slots


def generation_admit(*, user: AbstractBaseUser, api_key: ApiKey | None) -> Callable[[], None]:
    """Take the caller's generation slots, or refuse (429 for the caller's own limit, 503 when
    the server is full); returns what gives them back, to be called exactly once."""
    slots = caller_slots_acquire(user=user, api_key=api_key, work="generations")
    # The process's own slots, shared fairly between users (speech/admission.py).
    owner = str(user.pk)
    if not speech_slots.try_acquire(owner):
        slots.release()
        raise service_unavailable(
            "The server is busy generating other requests; retry shortly.",
            code=ErrorCode.SERVER_BUSY,
            retry_after=settings.SPEECH_RETRY_AFTER_SECONDS,
        )

    def free_slots() -> None:
        speech_slots.release(owner)
        slots.release()

    return free_slots


async def speech_stream_response(
    stream: SpeechStream,
    *,
    sse: bool,
    user: AbstractBaseUser,
    api_key: ApiKey | None,
    admitted: Callable[[], None] | None = None,
) -> SpeechResponse:
    """Admit the caller's generation (unless `admitted` is what gives back the slots a view
    took already, from `generation_admit`) and stream it. The slots are given back, and its
    usage recorded, by the worker when generation stops, however the response ends."""
    # Run on the worker thread once generation has really stopped, however it ended.
    free_slots = admitted or generation_admit(user=user, api_key=api_key)

    def record_usage() -> None:
        metrics.observe_generation(engine, stream.timings.engine_seconds, stream.audio_seconds)
        try:
            if stream.audio_seconds > 0:
                usage_record(
                    user=user,
                    api_key=api_key,
                    input_characters=stream.plan.input_characters,
                    audio_seconds=stream.audio_seconds,
                )
        except Exception:
            logger.exception("could not record speech usage")
        finally:
            # This pool thread may not use the database again for a long while.
            connections.close_all()

    engine = stream.plan.engine.name
    started = time.perf_counter()
    pump = BackgroundIterator(iter(stream), on_stop=free_slots, after_stop=record_usage)
    try:
        first = await pump.next()
        if first is not None:
            metrics.observe_first_audio(engine, time.perf_counter() - started)
    except EngineError as exc:
        pump.close()
        raise _engine_error(exc) from exc
    except BaseException as exc:
        pump.close()
        if _out_of_memory(exc):
            # Whichever engine ran out: memory frees when its request ends, so a retry may pass.
            logger.warning("speech generation ran out of memory: %s", exc)
            raise _engine_error(
                EngineError("the engine ran out of memory; retry shortly.", retryable=True)
            ) from exc
        raise
    fmt = stream.plan.audio_format
    if sse:
        body = _sse_events(first, pump, stream)
        content_type = "text/event-stream"
    else:
        body = _audio_chunks(first, pump)
        content_type = fmt.content_type
    response = SpeechResponse(
        _stop_on_failure(body, pump), content_type=content_type, on_close=pump.close
    )
    response["Cache-Control"] = "no-store"
    # Tell reverse proxies (nginx) not to buffer: audio must flow as it is made.
    response["X-Accel-Buffering"] = "no"
    return response


def _out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")  # loaded by any engine that could run out of GPU memory
    return isinstance(exc, MemoryError) or (
        torch is not None and isinstance(exc, torch.OutOfMemoryError)
    )


def _engine_error(exc: EngineError) -> ApiError:
    if exc.retryable:
        return service_unavailable(
            f"Speech generation failed: {exc.message}",
            code=ErrorCode.ENGINE_ERROR,
            retry_after=settings.SPEECH_RETRY_AFTER_SECONDS,
        )
    return ApiError(500, f"Speech generation failed: {exc.message}", type=ErrorType.SERVER_ERROR)


async def _stop_on_failure(
    body: AsyncIterator[bytes], pump: BackgroundIterator
) -> AsyncIterator[bytes]:
    """Stop the worker at once if the body fails mid-stream: Django closes a response only
    when the body ends or the client leaves, not when the body raises."""
    try:
        async for part in body:
            yield part
    except BaseException:
        pump.close()
        raise


async def _audio_chunks(first: bytes | None, pump: BackgroundIterator) -> AsyncIterator[bytes]:
    chunk = first
    while chunk is not None:
        yield chunk
        chunk = await pump.next()


async def _sse_events(
    first: bytes | None, pump: BackgroundIterator, stream: SpeechStream
) -> AsyncIterator[bytes]:
    chunk = first
    try:
        while chunk is not None:
            audio = base64.b64encode(chunk).decode("ascii")
            yield _sse({"type": "speech.audio.delta", "audio": audio})
            chunk = await pump.next()
    except EngineError as exc:
        # Headers are gone: report the failure in-band, as OpenAI's streams do.
        logger.warning("speech generation failed mid-stream: %s", exc.message)
        yield _sse({"type": "error", **_engine_error(exc).body()})
        return
    yield _sse({"type": "speech.audio.done", "usage": stream.usage()})


def _sse(event: dict) -> bytes:
    return f"data: {json.dumps(event, separators=(',', ':'))}\n\n".encode()
