"""The /v1 routes that take bodies larger than a speech request's JSON, told to the body guard
in front of Django (core/body_limit.py) when the app is ready. They are read off the routes
themselves (api/urls.py) and their views' parsers, so each route and limit is declared once."""

from django.conf import settings
from django.urls import URLPattern
from rest_framework.parsers import BaseParser, MultiPartParser

from api import transcriptions, watermark
from api.parsers import BoundedJSONParser
from api.urls import urlpatterns
from core.body_limit import Limit, register_json_route, register_upload_route


def _voice_upload_bytes() -> int:
    # Voice and consent recordings: ingest/audio.py holds an upload to the same setting.
    return settings.VOICE_UPLOAD_MAX_BYTES


def _watermark_upload_bytes() -> int:
    return watermark.MAX_UPLOAD_BYTES


def _setting(name: str) -> Limit:
    return lambda: getattr(settings, name)


def _parsers(pattern: URLPattern) -> list[type[BaseParser]]:
    return list(pattern.callback.view_class.parser_classes)


def register_body_limits() -> None:
    for pattern in urlpatterns:
        route = str(pattern.pattern)
        if "<" in route:
            # The guard compares whole paths, which a route with parameters never equals.
            continue
        parsers = _parsers(pattern)
        if watermark.BoundedMultiPartParser in parsers:
            register_upload_route(route, _watermark_upload_bytes)
        elif transcriptions.TranscriptionMultiPartParser in parsers:
            register_upload_route(route, _setting("STT_MAX_BYTES"))
        elif any(issubclass(parser, MultiPartParser) for parser in parsers):
            register_upload_route(route, _voice_upload_bytes)
        for parser in parsers:
            if (
                issubclass(parser, BoundedJSONParser)
                and parser.limit_setting != BoundedJSONParser.limit_setting
            ):
                register_json_route(route, _setting(parser.limit_setting))
