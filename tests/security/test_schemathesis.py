"""Schemathesis against the served OpenAPI schema (/v1/openapi.json): every operation, with data
that fits the schema and data that does not, sent with a valid key, an unknown key and no key.
No answer is a 5xx, and every answer's status, content type and body are the ones the schema
documents.

Schemathesis's own pytest integration (`from_fixture`) does not run under this pytest, so each
operation's Hypothesis strategy drives a plain `@given` here. Examples are few and derandomized
(the same on every run): the test is a conformance check that fits a CI budget, not a long fuzz.
Generated speech is capped at two seconds of audio and CSM is the tiny random checkpoint, so the
speaking routes answer for real.
"""

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.keys import key_generate

pytestmark = pytest.mark.django_db(transaction=True)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION_AND_MODE = 25
# A hang guard for one request, not a performance bound.
REQUEST_TIMEOUT_SECONDS = 60


def _is_public(operation: Any) -> bool:
    """Whether the schema lets the operation be called without a key."""
    return {} in operation.definition.raw.get("security", [])


def _check_operation(operation: Any, mode: GenerationMode, base_url: str, key: str) -> int:
    """Run the operation's examples in `mode`; return how many requests were sent."""
    unknown = {"Authorization": f"Bearer {key_generate()}"}
    sent = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def examples(case) -> None:
        nonlocal sent
        call = {"base_url": base_url, "checks": CHECKS, "timeout": REQUEST_TIMEOUT_SECONDS}
        case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, **call)
        # An unknown key is refused on every route, public ones included.
        refused = case.call_and_validate(headers=unknown, **call)
        assert refused.status_code == 401, refused.text
        # Without a key, only the public routes answer anything but 401.
        anonymous = case.call_and_validate(headers={"Authorization": ""}, **call)
        if not _is_public(operation):
            assert anonymous.status_code == 401, anonymous.text
        sent += 3

    try:
        examples()
    except Unsatisfiable:
        # Nothing in the operation can be made invalid (no parameters, no body).
        pass
    return sent


def test_every_operation_answers_as_the_schema_says(
    live_server_url, alice_key, csm_engine, media_root, settings
):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    settings.SPEECH_MAX_AUDIO_SECONDS = 2
    schema = schemathesis.openapi.from_url(f"{live_server_url}/v1/openapi.json")
    failures: list[str] = []
    sent = 0

    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                sent += _check_operation(operation, mode, live_server_url, alice_key)
            except (Exception, BaseExceptionGroup) as failure:
                failures.append(f"{operation.label} ({mode.value}): {failure}")

    assert not failures, "\n\n".join(failures)
    # Every operation of the API was tried, and each with many requests.
    assert len(operations) >= 20
    assert sent > len(operations) * 3
