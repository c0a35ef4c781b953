"""Hooks that shape the published OpenAPI schema."""

from typing import Any


def canonical_paths_only(endpoints: list[tuple[str, Any, str, Any]], **kwargs) -> list:
    """Document the API once, under /v1; /api/v1 is the same API under the original prefix."""
    return [endpoint for endpoint in endpoints if not endpoint[0].startswith("/api/")]


# Errors are not declared view by view: every route answers them in OpenAI's one shape, and
# the statuses follow from what a route takes (a key, a body, a path parameter) and does.
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": "string", "nullable": True},
                "code": {"type": "string", "nullable": True},
            },
            "required": ["message", "type", "param", "code"],
        }
    },
    "required": ["error"],
}
_ERROR_DESCRIPTIONS = {
    400: "Invalid request: the message names what to change, `param` the field.",
    401: "No API key, or a malformed, unknown, revoked or expired one.",
    403: "Only the owner may do this.",
    404: "Not found (another user's private voice or job answers the same).",
    409: (
        "A request with the same Idempotency-Key is still running; a storage quota is full "
        "(`quota_exceeded`); or a consent is still in use by voices (`consent_in_use`)."
    ),
    413: "The request body is too large.",
    415: "Unsupported Content-Type.",
    422: "The Idempotency-Key was used with another request.",
    429: "A rate limit was reached; see Retry-After.",
    500: "The job failed because of a server error (no details).",
    503: "The engine or a service is loading, unavailable or busy; see Retry-After.",
}
# Statuses beyond those that follow from a route's shape, by operation.
_SPEAKS = (404, 429, 503)
_CREATES = (409, 422, 429, 500, 503)
_OPERATION_ERRORS: dict[str, tuple[int, ...]] = {
    "createSpeech": _SPEAKS,
    "createConversationSpeech": _SPEAKS,
    "previewClonedVoice": _SPEAKS,
    "generateWithClonedVoice": _SPEAKS,
    "detectWatermark": (429, 503),
    "createTranscription": _SPEAKS,
    "createTranslation": _SPEAKS,
    "cloneVoice": _CREATES,
    "cloneVoiceFromYoutube": _CREATES,
    "createVoice": _CREATES,
    "createVoiceConsent": (409, 422, 429),
    "updateVoiceConsent": (429,),
    "deleteVoiceConsent": (409, 429),
    "deleteVoice": (403, 429),
    "deleteClonedVoice": (403, 429),
}


def error_responses(result: dict[str, Any], **kwargs) -> dict[str, Any]:
    """Declare the OpenAI-shaped error answers of every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            parameters = operation.get("parameters", [])
            statuses = {401, *_OPERATION_ERRORS.get(operation.get("operationId"), ())}
            if parameters or "requestBody" in operation:
                statuses.add(400)
            if any(parameter["in"] == "path" for parameter in parameters):
                statuses.add(404)
            if "requestBody" in operation:
                statuses |= {413, 415}
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                response = responses.setdefault(
                    str(status), {"description": _ERROR_DESCRIPTIONS[status]}
                )
                response.setdefault("content", {"application/json": {"schema": reference}})
    return result
