"""`Idempotency-Key` for the routes that create things (voices, consents).

An SDK that retries after a timeout must not create the thing twice. The first request with a
key claims it; its final answer (any status below 500) is kept for 24 hours, per user and key,
with a fingerprint of the request. A repeat with the same fingerprint gets that answer again
(`Idempotent-Replayed: true`); the same key on a different request is refused (422), and a
repeat that arrives while the first is still running is told so (409). A 5xx is not kept: the
caller may retry it with the same key. Entries live in the "limits" cache (Redis in production,
so all server processes share them), apart from the rest of the cache: other traffic cannot
push them out. Embedded, they are bounded as a kind of their own (LIMITS_CACHE_MAX_ENTRIES,
least recently used out): a flood of fresh keys can evict only older idempotency records, never
a rate limit or a sign-in throttle.
"""

import functools
import hashlib
import inspect
import json
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from rest_framework.request import Request
from rest_framework.response import Response

from api.error_codes import ErrorCode
from api.errors import ApiError, api_error_from
from core.cache import limits_cache as cache

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
KEEP_SECONDS = 24 * 3600
_PENDING = "pending"
_DONE = "done"


def _in_progress_seconds() -> int:
    # Long enough for the slowest request (it waits up to INGEST_WAIT_SECONDS for its job),
    # short enough that a claim left by a crashed process does not block the key for a day.
    return int(settings.INGEST_WAIT_SECONDS) + 300


def _request_key(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise ApiError(
            400,
            f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} characters long.",
            param=HEADER,
            code=ErrorCode.INVALID_IDEMPOTENCY_KEY,
        )
    return key


def _cache_key(request: Request, key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"idempotency:{request.user.pk}:{digest}"


def _hash_value(digest: Any, value: Any) -> None:
    if isinstance(value, UploadedFile):
        digest.update(f"file:{value.name}:{value.size}:".encode())
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
    else:
        digest.update(json.dumps(value, sort_keys=True, default=str).encode())
    digest.update(b"\0")


def fingerprint(request: Request) -> str:
    """Method, path and every body field, uploaded files by their contents."""
    digest = hashlib.sha256(f"{request.method} {request.path}\0".encode())
    data = request.data
    # A multipart body's QueryDict holds its files too; a JSON body is a plain dict.
    fields = data.lists() if hasattr(data, "lists") else ((k, [v]) for k, v in data.items())
    for name, values in sorted(fields, key=lambda field: field[0]):
        digest.update(f"{name}=".encode())
        for value in values:
            _hash_value(digest, value)
    return digest.hexdigest()


def _refusal(entry: dict[str, Any], print_: str) -> ApiError | None:
    if entry["fingerprint"] != print_:
        return ApiError(
            422,
            f"This {HEADER} was already used with a different request.",
            param=HEADER,
            code=ErrorCode.IDEMPOTENCY_KEY_REUSED,
        )
    if entry["state"] == _PENDING:
        return ApiError(
            409,
            f"A request with this {HEADER} is still in progress; retry later.",
            param=HEADER,
            code=ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS,
            headers={"Retry-After": "1"},
        )
    return None


def _claim(request: Request, key: str) -> tuple[str, str, Response | None]:
    """Claims `key` for this request: (cache key, fingerprint, the answer to replay or None).
    Raises the refusal when the key is taken by another request or is still in progress."""
    cache_key, print_ = _cache_key(request, key), fingerprint(request)
    pending = {"state": _PENDING, "fingerprint": print_}
    # add() is atomic (SET NX on Redis): of two concurrent first requests, one wins.
    entry = None
    for _ in range(2):  # a second try when the entry expired between add() and get()
        if cache.add(cache_key, pending, timeout=_in_progress_seconds()):
            return cache_key, print_, None
        entry = cache.get(cache_key)
        if entry is not None:
            break
    if entry is None:
        raise ApiError(
            409,
            "A request with this Idempotency-Key is in progress; retry shortly.",
            param="Idempotency-Key",
            code=ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS,
        )
    refusal = _refusal(entry, print_)
    if refusal is not None:
        raise refusal
    replay = Response(
        entry["data"], status=entry["status"], headers={"Idempotent-Replayed": "true"}
    )
    return cache_key, print_, replay


def _answer_of(view: Any, exc: Exception) -> Response | None:
    """The response DRF will make of `exc`, when it is a request error (not a server fault)."""
    error = api_error_from(exc, params=getattr(view, "error_params", None))
    if error is None:
        return None
    return Response(error.body(), status=error.status)


def _settle(cache_key: str, print_: str, response: Response | None) -> None:
    """Keeps a final answer; forgets the claim after a server fault so a retry runs again."""
    if response is None or response.status_code >= 500:
        cache.delete(cache_key)
        return
    final = {
        "state": _DONE,
        "fingerprint": print_,
        "status": response.status_code,
        "data": response.data,
    }
    cache.set(cache_key, final, timeout=KEEP_SECONDS)


def idempotent(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Makes a view method (sync or async) honour `Idempotency-Key`."""

    if inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def async_wrapped(self: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
            key = _request_key(request)
            if key is None:
                return await handler(self, request, *args, **kwargs)
            cache_key, print_, replay = await sync_to_async(_claim)(request, key)
            if replay is not None:
                return replay
            try:
                response = await handler(self, request, *args, **kwargs)
            except Exception as exc:
                await sync_to_async(_settle)(cache_key, print_, _answer_of(self, exc))
                raise
            except BaseException:
                # Cancelled (the client went away): release the key now, without awaiting, so
                # the client's retry runs instead of meeting "in progress" for minutes.
                _settle(cache_key, print_, None)
                raise
            await sync_to_async(_settle)(cache_key, print_, response)
            return response

        return async_wrapped

    @functools.wraps(handler)
    def wrapped(self: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
        key = _request_key(request)
        if key is None:
            return handler(self, request, *args, **kwargs)
        cache_key, print_, replay = _claim(request, key)
        if replay is not None:
            return replay
        try:
            response = handler(self, request, *args, **kwargs)
        except Exception as exc:
            _settle(cache_key, print_, _answer_of(self, exc))
            raise
        _settle(cache_key, print_, response)
        return response

    return wrapped
