"""The body guard's limit for each route, as declared by the app that serves the route."""

import pytest

from api.watermark import MAX_UPLOAD_BYTES as WATERMARK_UPLOAD_BYTES
from core.body_limit import FORM_OVERHEAD_BYTES, body_limit

UPLOAD_ROUTES = ["voice-cloning/clone", "audio/voices", "audio/voice_consents"]


@pytest.mark.parametrize("prefix", ["/v1/", "/api/v1/"])
def test_it_gives_each_api_route_the_limit_its_owner_declares(settings, prefix):
    # given voice uploads larger than the watermark detector's
    settings.VOICE_UPLOAD_MAX_BYTES = WATERMARK_UPLOAD_BYTES * 2
    upload = settings.VOICE_UPLOAD_MAX_BYTES + FORM_OVERHEAD_BYTES

    # then conversations take their own limit, uploads the largest upload and its form
    assert body_limit(f"{prefix}audio/conversation") == settings.CONVERSATION_MAX_BODY_BYTES
    for route in [*UPLOAD_ROUTES, "audio/watermark/detect"]:
        assert body_limit(f"{prefix}{route}") == upload, route
    # and every other route, with or without parameters, a speech request's JSON
    for route in ["audio/speech", "voice-cloning/clone-from-youtube", "audio/voices/v1"]:
        assert body_limit(f"{prefix}{route}") == settings.API_MAX_BODY_BYTES, route


def test_it_never_refuses_an_upload_its_route_accepts(settings):
    # given voice uploads smaller than the watermark detector's
    settings.VOICE_UPLOAD_MAX_BYTES = 1024 * 1024

    # then every upload route, and the pages, take the detector's uploads with their form
    for route in [*UPLOAD_ROUTES, "audio/watermark/detect"]:
        assert body_limit(f"/v1/{route}") == WATERMARK_UPLOAD_BYTES + FORM_OVERHEAD_BYTES
    assert body_limit("/voice-cloning/") == WATERMARK_UPLOAD_BYTES + FORM_OVERHEAD_BYTES


def test_the_pages_take_the_largest_upload(settings):
    settings.API_MAX_BODY_BYTES = 16 * 1024
    expected = settings.VOICE_UPLOAD_MAX_BYTES + FORM_OVERHEAD_BYTES
    assert body_limit("/voice-cloning/") == expected
    assert body_limit("/login/") == expected
