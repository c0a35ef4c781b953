from typing import Any

from django.conf import settings
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

from api.error_codes import ErrorCode


class RequestTooLarge(APIException):
    status_code = 413
    default_code = ErrorCode.REQUEST_TOO_LARGE


class BoundedJSONParser(JSONParser):
    """JSON bodies up to API_MAX_BODY_BYTES; larger ones are refused before parsing."""

    limit_setting = "API_MAX_BODY_BYTES"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        request = (parser_context or {}).get("request")
        length = request.META.get("CONTENT_LENGTH") if request is not None else None
        limit = getattr(settings, self.limit_setting)
        if length and length.isdigit() and int(length) > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            # Thousands of nested arrays: Python's decoder gives up before the stack does.
            raise ParseError("JSON parse error - the body is nested too deeply.") from exc


class ConversationJSONParser(BoundedJSONParser):
    """Conversation bodies carry base64 audio: they may be larger."""

    limit_setting = "CONVERSATION_MAX_BODY_BYTES"
