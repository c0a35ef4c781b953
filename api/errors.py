"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

Every API error goes through here, whether raised by the API (`ApiError`), by a domain app
(mapped by api/error_map.py), by DRF (validation, authentication, method not allowed) or by
Django (404, 500), so clients that read OpenAI's errors read ours, and no traceback or path
ever reaches a caller.
"""

import logging
import math
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import bad_request
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from api.error_codes import ErrorCode, ErrorType
from api.error_map import openai_error_of
from core.middleware import is_api_request

logger = logging.getLogger(__name__)

NO_KEY_MESSAGE = (
    "You didn't provide an API key. Provide it in an Authorization header using Bearer auth "
    "(Authorization: Bearer YOUR_KEY)."
)
SERVER_ERROR_MESSAGE = "The server had an error processing your request."

# DRF validation codes → the codes OpenAI uses for the same mistakes.
_VALIDATION_CODES = {
    "required": ErrorCode.MISSING_REQUIRED_PARAMETER,
    "null": ErrorCode.MISSING_REQUIRED_PARAMETER,
    "blank": ErrorCode.EMPTY_STRING,
    "max_length": ErrorCode.STRING_ABOVE_MAX_LENGTH,
    "min_length": ErrorCode.STRING_BELOW_MIN_LENGTH,
    "max_value": ErrorCode.NUMBER_ABOVE_MAX_VALUE,
    "min_value": ErrorCode.NUMBER_BELOW_MIN_VALUE,
    "invalid_choice": ErrorCode.INVALID_VALUE,
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = ErrorType.INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        # Plain strings: the error may be cached (idempotency) and read back elsewhere.
        self.type = str(type)
        self.param = param
        self.code = None if code is None else str(code)
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)

    def as_json_response(self) -> JsonResponse:
        response = JsonResponse(self.body(), status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def invalid_request(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def service_unavailable(message: str, *, code: str, retry_after: int | None) -> ApiError:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return ApiError(503, message, type=ErrorType.SERVER_ERROR, code=code, headers=headers)


def validation_error(detail: Any) -> ApiError:
    """The first problem in a DRF ValidationError, named by its parameter."""
    param, message, code = _first_problem(detail)
    text = f"Invalid value for '{param}': {message}" if param else message
    return invalid_request(
        text, param=param, code=_VALIDATION_CODES.get(code, ErrorCode.INVALID_VALUE)
    )


def _first_problem(detail: Any, prefix: str | None = None) -> tuple[str | None, str, str]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):
                # A list of items (many=True) reports its broken ones by index.
                return _first_problem(value, f"{prefix}[{key}]" if prefix else None)
            name = None if key == "non_field_errors" else str(key)
            if prefix and name:
                name = f"{prefix}.{name}"
            return _first_problem(value, name or prefix)
    if isinstance(detail, list) and detail:
        if isinstance(detail[0], dict | list):
            for index, item in enumerate(detail):
                if item:
                    return _first_problem(item, f"{prefix}[{index}]" if prefix else None)
        return _first_problem(detail[0], prefix)
    code = getattr(detail, "code", "invalid")
    return prefix, str(detail), str(code)


def openai_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler, answering in OpenAI's error shape.

    A view may rename params with `error_params` (domain field → the route's name for it):
    a route that names a voice in its path reports the path parameter, not the domain's field.
    """
    view = context.get("view")
    error = api_error_from(exc, params=getattr(view, "error_params", None))
    if error is None:
        logger.exception("unhandled error in %s", view)
        error = ApiError(500, SERVER_ERROR_MESSAGE, type=ErrorType.SERVER_ERROR)
    response = Response(error.body(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def rate_limited(message: str, *, code: str, retry_after: float) -> ApiError:
    return ApiError(
        429,
        message,
        type=ErrorType.REQUESTS,
        code=code,
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def api_error_from(exc: Exception, *, params: Mapping[str, str] | None = None) -> ApiError | None:
    """The API error `exc` answers as, its param renamed by `params`; None for an unexpected
    failure (a 500)."""
    error = _api_error_of(exc)
    if error is not None and params and error.param in params:
        error = ApiError(
            error.status,
            error.message,
            type=error.type,
            param=params[error.param],
            code=error.code,
            headers=error.headers,
        )
    return error


def _api_error_of(exc: Exception) -> ApiError | None:
    if isinstance(exc, ApiError):
        return exc
    domain = openai_error_of(exc)
    if domain is not None:
        headers = {} if domain.retry_after is None else {"Retry-After": str(domain.retry_after)}
        return ApiError(
            domain.status,
            domain.message,
            type=domain.type,
            param=domain.param,
            code=domain.code,
            headers=headers,
        )
    if isinstance(exc, RequestDataTooBig):
        return ApiError(413, "The request body is too large.", code=ErrorCode.REQUEST_TOO_LARGE)
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return too_many_fields(exc)
    if isinstance(exc, drf_exceptions.ValidationError):
        return validation_error(exc.detail)
    if isinstance(exc, drf_exceptions.ParseError):
        # The detail names the format: "JSON parse error - ..." or "Multipart form parse error".
        return invalid_request(f"We could not parse the body of your request: {exc.detail}")
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        return ApiError(
            401,
            NO_KEY_MESSAGE if isinstance(exc, drf_exceptions.NotAuthenticated) else str(exc.detail),
            code=ErrorCode.INVALID_API_KEY,
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    if isinstance(exc, drf_exceptions.Throttled):
        return rate_limited(
            "Rate limit reached for requests per minute. Retry after the time in Retry-After.",
            code=ErrorCode.RATE_LIMIT_EXCEEDED,
            retry_after=exc.wait or 1,
        )
    if isinstance(exc, drf_exceptions.APIException):
        return ApiError(exc.status_code, str(exc.detail), code=exc.default_code)
    return unavailable_service_error(exc)


def too_many_fields(exc: TooManyFieldsSent | TooManyFilesSent) -> ApiError:
    """Django refuses to parse more query parameters and form fields than
    DATA_UPLOAD_MAX_NUMBER_FIELDS, or more files than DATA_UPLOAD_MAX_NUMBER_FILES, wherever
    the request is first read; that is the client's mistake, not the server's."""
    if isinstance(exc, TooManyFilesSent):
        what, limit = "files", settings.DATA_UPLOAD_MAX_NUMBER_FILES
    else:
        what, limit = "query parameters and form fields", settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    return invalid_request(
        f"The request has too many {what}: at most {limit} are read.",
        code=ErrorCode.TOO_MANY_FIELDS,
    )


# Seconds to suggest before retrying while the database or the broker is unreachable.
SERVICE_RETRY_AFTER_SECONDS = 5


def unavailable_service_error(exc: BaseException) -> ApiError | None:
    """A 503 for a service the server needs that cannot be reached (database, broker); None for
    anything else. Nothing about the service (address, driver message) reaches the caller."""
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", exc)
        return service_unavailable(
            "The database is unavailable; retry shortly.",
            code=ErrorCode.DATABASE_UNAVAILABLE,
            retry_after=SERVICE_RETRY_AFTER_SECONDS,
        )
    if isinstance(exc, BrokerError | RedisConnectionError | RedisTimeoutError):
        logger.warning("queue unavailable: %s", exc)
        return service_unavailable(
            "The job queue is unavailable; retry shortly.",
            code=ErrorCode.QUEUE_UNAVAILABLE,
            retry_after=SERVICE_RETRY_AFTER_SECONDS,
        )
    return None


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's answer to a request it refused before or outside DRF (a SuspiciousOperation):
    too many fields in OpenAI's shape on the API, as DRF's views answer it; otherwise Django's
    own page."""
    if isinstance(exception, TooManyFieldsSent | TooManyFilesSent) and is_api_request(request):
        return too_many_fields(exception).as_json_response()
    return bad_request(request, exception)


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return ApiError(
        404, f"Unknown URL: {request.method} {request.path}", code=ErrorCode.UNKNOWN_URL
    ).as_json_response()


def handler500(request: HttpRequest) -> JsonResponse:
    return ApiError(500, SERVER_ERROR_MESSAGE, type=ErrorType.SERVER_ERROR).as_json_response()
