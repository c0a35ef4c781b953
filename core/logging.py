"""Structured logs and request ids.

Every HTTP request gets an id: the client's `X-Request-ID` when it is sane, else a fresh one.
It is returned in the `X-Request-ID` response header and carried by every log line written
while the request is handled (a contextvar read by `RequestIdFilter`), so one request's lines
can be found across a log store. `LOG_FORMAT=json` writes one JSON object per line.
"""

import contextvars
import datetime
import json
import logging
import re
import uuid

from django.http import HttpRequest, HttpResponseBase

from core.hybrid_middleware import HybridMiddleware

REQUEST_ID_HEADER = "X-Request-ID"
# Client ids end up in log stores and response headers: short, and nothing that could forge a
# log line or a header.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Credentials never belong in a log line, even if some code formats a header into a message.
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{16,}")

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def request_id_from_header(value: str | None) -> str:
    """The client's id when it is sane, else a new one."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Stamp each record with the current request's id ("" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def redact(text: str) -> str:
    return _BEARER.sub(r"\1[redacted]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", "") or request_id_var.get(),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: a stray non-JSON value must not lose the whole line.
        return json.dumps(entry, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """The human-readable format, with the request id and credentials redacted."""

    def format(self, record: logging.LogRecord) -> str:
        # A copy: other handlers see the record as it was.
        record = logging.makeLogRecord(record.__dict__)
        record.request_id = getattr(record, "request_id", "") or request_id_var.get() or "-"
        return redact(super().format(record))


class RequestIdMiddleware(HybridMiddleware):
    """Assign the request id, expose it to logs, and return it on every response.

    First in MIDDLEWARE, so error responses from any later layer carry the header too. Under
    ASGI, Django handles each request in its own task: the contextvar stays set while a
    streaming body is sent, and cannot leak into another request.
    """

    def handle(self, request: HttpRequest) -> HttpResponseBase:
        token = request_id_var.set(self._assign(request))
        try:
            return self._tag(request, self.get_response(request))
        finally:
            request_id_var.reset(token)

    async def ahandle(self, request: HttpRequest) -> HttpResponseBase:
        request_id_var.set(self._assign(request))
        return self._tag(request, await self.get_response(request))

    @staticmethod
    def _assign(request: HttpRequest) -> str:
        request.request_id = request_id_from_header(request.headers.get(REQUEST_ID_HEADER))
        return request.request_id

    @staticmethod
    def _tag(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        response[REQUEST_ID_HEADER] = request.request_id
        return response
