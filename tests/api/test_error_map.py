"""Domain errors reach callers as OpenAI's errors: one table gives each its status and type."""

import re
from pathlib import Path

import pytest

from api.error_codes import ErrorCode, ErrorType
from api.errors import api_error_from
from ingest.errors import IngestError, TranscriptionErrorCode
from speech.errors import EngineUnavailable, InvalidInput, SpeechErrorCode, UnknownModel
from speech.watermark import WatermarkUnavailable
from speech.watermark.service import DETECT_RETRY_AFTER_SECONDS
from voices.errors import NotVoiceOwner, VoiceErrorCode, VoiceNotFound, VoiceProtected

ROOT = Path(__file__).resolve().parents[2]

CASES = [
    # (domain error, status, type, code, param, Retry-After)
    (
        InvalidInput("No speech.", code=SpeechErrorCode.EMPTY_TEXT, field="input"),
        400,
        ErrorType.INVALID_REQUEST,
        "empty_string",
        "input",
        None,
    ),
    (
        InvalidInput("No voice.", code=SpeechErrorCode.VOICE_NOT_FOUND, field="voice"),
        400,
        ErrorType.INVALID_REQUEST,
        "voice_not_found",
        "voice",
        None,
    ),
    (
        UnknownModel("No model.", field="model"),
        404,
        ErrorType.INVALID_REQUEST,
        "model_not_found",
        "model",
        None,
    ),
    (
        EngineUnavailable("Loading.", loading=True, retry_after=10),
        503,
        ErrorType.SERVER_ERROR,
        "engine_loading",
        None,
        "10",
    ),
    (
        EngineUnavailable("Broken.", loading=False, retry_after=10),
        503,
        ErrorType.SERVER_ERROR,
        "engine_unavailable",
        None,
        None,
    ),
    (
        WatermarkUnavailable("Loading.", loading=True),
        503,
        ErrorType.SERVER_ERROR,
        "watermark_loading",
        None,
        str(DETECT_RETRY_AFTER_SECONDS),
    ),
    (
        WatermarkUnavailable("Off.", loading=False),
        503,
        ErrorType.SERVER_ERROR,
        "watermark_unavailable",
        None,
        None,
    ),
    (
        VoiceNotFound("nobody"),
        404,
        ErrorType.INVALID_REQUEST,
        "voice_not_found",
        "name_or_id",
        None,
    ),
    (VoiceProtected(), 400, ErrorType.INVALID_REQUEST, "voice_protected", "name_or_id", None),
    (NotVoiceOwner(), 403, ErrorType.INVALID_REQUEST, "not_owner", "name_or_id", None),
    (
        IngestError("Silent.", code="silent", param="audio_file"),
        400,
        ErrorType.INVALID_REQUEST,
        "silent",
        "audio_file",
        None,
    ),
]


@pytest.mark.parametrize(
    ("error", "status", "type_", "code", "param", "retry_after"),
    CASES,
    ids=[type(case[0]).__name__ + ":" + case[3] for case in CASES],
)
def test_it_maps_each_domain_error(error, status, type_, code, param, retry_after):
    # when the API answers a domain error
    answer = api_error_from(error)

    # then the table gives its status and type, and the error's own facts pass through
    assert answer is not None
    assert (answer.status, answer.type, answer.code, answer.param) == (status, type_, code, param)
    assert answer.message == error.message
    assert answer.headers.get("Retry-After") == retry_after
    assert answer.body() == {
        "error": {"message": error.message, "type": type_, "param": param, "code": code}
    }


def test_it_answers_with_plain_strings():
    answer = api_error_from(UnknownModel("No model.", field="model"))
    assert type(answer.code) is str
    assert type(answer.type) is str


def test_a_route_renames_a_domain_field_to_its_own_param():
    # given a route that names the voice in its path
    params = {"name_or_id": "voice_id"}

    # then the voice's errors report the path parameter, and other fields keep their names
    assert api_error_from(VoiceNotFound("x"), params=params).param == "voice_id"
    speech_error = InvalidInput("No voice.", code=SpeechErrorCode.VOICE_NOT_FOUND, field="voice")
    assert api_error_from(speech_error, params=params).param == "voice"


def test_an_error_that_is_not_a_domain_error_is_left_to_the_server_error_path():
    assert api_error_from(ValueError("a bug")) is None


def test_every_domain_code_is_an_api_error_code():
    api_codes = {str(code) for code in ErrorCode}
    domain_codes = {
        str(code) for code in [*SpeechErrorCode, *VoiceErrorCode, *TranscriptionErrorCode]
    }
    assert domain_codes <= api_codes


def test_every_code_the_cloning_checks_raise_is_an_api_error_code():
    # ingest names its codes where it raises them
    raised = set()
    for source in (ROOT / "ingest").rglob("*.py"):
        raised |= set(re.findall(r'\bcode="([a-z_]+)"', source.read_text()))
    assert raised, "no codes found: the scan is broken"
    assert raised <= {str(code) for code in ErrorCode}
