"""What the session endpoints answer when something is wrong: the API's error shape, which the
page's script reads, with the page's own field names as `param`."""

from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import NON_FIELD_ERRORS

from accounts.limits import request_budget_take
from api.error_codes import ErrorCode
from api.errors import ApiError, api_error_from, invalid_request, rate_limited
from ingest.errors import IngestError
from ingest.jobs import YOUTUBE_NAME_PARAM
from speech.errors import SpeechError
from voices.errors import VoiceError

# The errors of the services the pages call, each answered as the API answers it.
DOMAIN_ERRORS = (IngestError, SpeechError, VoiceError)

# A form check's code → the code the API gives the same mistake.
_API_CODES = {
    "required": ErrorCode.MISSING_REQUIRED_PARAMETER,
    "blank": ErrorCode.EMPTY_STRING,
    "max_length": ErrorCode.STRING_ABOVE_MAX_LENGTH,
    "max_value": ErrorCode.NUMBER_ABOVE_MAX_VALUE,
    "min_value": ErrorCode.NUMBER_BELOW_MIN_VALUE,
}
# Where a service names a field differently from the page's form.
_PAGE_FIELDS = {YOUTUBE_NAME_PARAM: "name"}


def form_error(form: forms.Form) -> ApiError:
    """The form's first problem, named by its field. A check's message reads as the API's for
    the same mistake; a message without a code is the page's own, said as it is."""
    field, errors = next(iter(form.errors.as_data().items()))
    error = errors[0]
    param = None if field == NON_FIELD_ERRORS else field
    message = next(iter(error))
    if error.code is None:
        return invalid_request(message, param=param)
    text = f"Invalid value for '{param}': {message}" if param else message
    return invalid_request(
        text, param=param, code=_API_CODES.get(error.code, ErrorCode.INVALID_VALUE)
    )


def domain_error(exc: Exception) -> ApiError:
    """A service's error (one of DOMAIN_ERRORS) as the API answers it, about the page's field."""
    error = api_error_from(exc)
    if error is None:
        raise TypeError(f"not an error a page answers: {exc!r}")
    error.param = _PAGE_FIELDS.get(error.param, error.param)
    return error


def request_budget_check(user: AbstractBaseUser) -> None:
    """The API's per-minute request limit, on the same counter as the user's keyless calls."""
    state = request_budget_take(user=user, api_key=None)
    if state is not None and not state.allowed:
        raise rate_limited(
            "Too many requests this minute: wait a moment and try again.",
            code=ErrorCode.RATE_LIMIT_EXCEEDED,
            retry_after=state.reset_seconds,
        )
