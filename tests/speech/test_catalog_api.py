"""The read-only endpoints clients use to discover the server: models, voices, formats, health."""

import httpx
import pytest

from voices.models import Voice
from voices.standard import STANDARD_VOICES

pytestmark = pytest.mark.django_db(transaction=True)


def test_models_list_in_openai_shape(openai_client):
    # eSpeak NG speaks; CSM has no checkpoint here, so neither of its names is listed; Whisper's
    # names follow the speech models
    ids = [model.id for model in openai_client.models.list()]
    assert ids == [
        "tts-1",
        "tts-1-1106",
        "tts-1-hd",
        "tts-1-hd-1106",
        "gpt-4o-mini-tts",
        "gpt-4o-mini-tts-2025-03-20",
        "gpt-4o-mini-tts-2025-12-15",
        "espeak",
        "whisper-1",
        "gpt-4o-transcribe",
        "gpt-4o-mini-transcribe",
        "gpt-4o-mini-transcribe-2025-03-20",
        "gpt-4o-mini-transcribe-2025-12-15",
    ]


def test_models_list_needs_no_key(live_server_url):
    response = httpx.get(f"{live_server_url}/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert set(body["data"][0]) == {"id", "object", "created", "owned_by"}


def test_audio_models_in_the_shape_openwebui_reads(live_server_url):
    response = httpx.get(f"{live_server_url}/v1/audio/models")
    assert response.status_code == 200
    assert {"id": "tts-1"} in response.json()["models"]


def test_voices_list_the_standard_voices(live_server_url):
    response = httpx.get(f"{live_server_url}/v1/audio/voices")
    assert response.status_code == 200
    voices = response.json()["voices"]
    assert [voice["id"] for voice in voices] == list(STANDARD_VOICES)
    assert all({"id", "name"} <= set(voice) for voice in voices)


def test_voices_list_own_and_public_voices_but_not_others_private(api, alice, bob):
    # given a voice of the caller's, a public one of bob's and a private one of bob's
    mine = Voice.objects.create(
        owner=alice, name="mine", kind=Voice.Kind.CLONED, source=Voice.Source.UPLOAD
    )
    shared = Voice.objects.create(
        owner=bob, name="shared", kind=Voice.Kind.CLONED, source="upload", is_public=True
    )
    Voice.objects.create(owner=bob, name="bobs-secret", kind=Voice.Kind.CLONED, source="upload")
    # when
    voices = api.get("/v1/audio/voices").json()["voices"]
    # then
    stored = {voice["name"]: voice for voice in voices if voice["kind"] != "standard"}
    assert set(stored) == {"mine", "shared"}
    assert stored["mine"] == {
        "id": str(mine.id),
        "name": "mine",
        "kind": "cloned",
        "public": False,
        "owned": True,
    }
    assert stored["shared"]["id"] == str(shared.id)
    assert stored["shared"]["owned"] is False


def test_response_formats_are_listed_with_content_types(live_server_url):
    response = httpx.get(f"{live_server_url}/v1/audio/speech/response-formats")
    formats = {item["id"]: item["content_type"] for item in response.json()["response_formats"]}
    assert formats == {
        "mp3": "audio/mpeg",
        "opus": "audio/opus",
        "aac": "audio/aac",
        "flac": "audio/flac",
        "wav": "audio/wav",
        "pcm": "audio/pcm",
    }


def test_the_same_routes_answer_under_the_original_prefix(live_server_url):
    paths = ("models", "models/tts-1", "audio/models", "audio/voices")
    for path in (*paths, "audio/speech/response-formats"):
        assert httpx.get(f"{live_server_url}/api/v1/{path}").status_code == 200


def test_healthz_answers(live_server_url):
    response = httpx.get(f"{live_server_url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_engines(live_server_url):
    response = httpx.get(f"{live_server_url}/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["database"] == "ok"
    assert body["default_engine"] == "espeak"
    assert body["engines"]["espeak"] == {"state": "ready", "reason": ""}


def test_the_openapi_schema_describes_the_speech_endpoint(live_server_url):
    response = httpx.get(f"{live_server_url}/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    operation = schema["paths"]["/v1/audio/speech"]["post"]
    assert set(operation["responses"]["200"]["content"]) >= {"audio/mpeg", "text/event-stream"}
    request_schema = schema["components"]["schemas"]["SpeechRequest"]
    assert request_schema["properties"]["input"]["maxLength"] == 4096
    assert set(request_schema["required"]) == {"model", "input"}


def test_the_api_docs_page_is_served_without_external_assets(live_server_url):
    response = httpx.get(f"{live_server_url}/v1/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()
    assert "cdn.jsdelivr" not in response.text


def test_voices_list_without_a_key_shows_public_voices_only(live_server_url, alice):
    Voice.objects.create(owner=alice, name="private", kind=Voice.Kind.CLONED, source="upload")
    Voice.objects.create(
        owner=alice, name="published", kind=Voice.Kind.CLONED, source="upload", is_public=True
    )
    voices = httpx.get(f"{live_server_url}/v1/audio/voices").json()["voices"]
    stored = {voice["name"] for voice in voices if voice["kind"] != "standard"}
    assert stored == {"published"}
