"""Deleting a voice through either API route: one service, each route's own answers.

DELETE /v1/audio/voices/{voice_id} takes any voice by id or name; DELETE
/v1/voice-cloning/voices/{voice_id} only cloned ones. Both name the voice `voice_id` in errors.
"""

import httpx
import pytest

from voices.models import Voice

pytestmark = pytest.mark.django_db(transaction=True)

ROUTES = ["/v1/audio/voices", "/v1/voice-cloning/voices"]


@pytest.fixture
def bobs_public_voice(bob) -> Voice:
    return Voice.objects.create(
        owner=bob,
        name="bobs-announcer",
        kind=Voice.Kind.CLONED,
        source=Voice.Source.UPLOAD,
        reference_audio="voices/bob/announcer.wav",
        is_public=True,
    )


def _error(status: int, message: str, code: str) -> dict:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": "voice_id",
            "code": code,
        },
        "status": status,
    }


def _answer(response: httpx.Response) -> dict:
    return {**response.json(), "status": response.status_code}


@pytest.mark.parametrize("route", ROUTES)
def test_it_deletes_the_callers_voice_by_id(api, route, private_voice):
    response = api.delete(f"{route}/{private_voice.id}")

    assert response.status_code == 200
    assert response.json() == {
        "id": str(private_voice.id),
        "object": "audio.voice.deleted",
        "deleted": True,
    }
    assert not Voice.objects.filter(id=private_voice.id).exists()


@pytest.mark.parametrize("route", ROUTES)
def test_an_unknown_voice_is_a_404_about_voice_id(api, route):
    response = api.delete(f"{route}/nobody")

    assert _answer(response) == _error(404, "No voice 'nobody'.", "voice_not_found")


@pytest.mark.parametrize("route", ROUTES)
def test_someone_elses_public_voice_is_a_403(api, route, bobs_public_voice):
    response = api.delete(f"{route}/{bobs_public_voice.id}")

    assert _answer(response) == _error(403, "Only the owner can delete this voice.", "not_owner")
    assert Voice.objects.filter(id=bobs_public_voice.id).exists()


def test_a_standard_voice_is_protected_where_standard_voices_are_listed(api):
    response = api.delete("/v1/audio/voices/alloy")

    assert _answer(response) == _error(400, "Standard voices cannot be deleted.", "voice_protected")


def test_a_standard_voice_is_no_cloned_voice(api):
    response = api.delete("/v1/voice-cloning/voices/alloy")

    assert _answer(response) == _error(404, "No voice 'alloy'.", "voice_not_found")


def test_previewing_an_unknown_voice_is_a_404_about_voice_id(api):
    response = api.post("/v1/voice-cloning/voices/nobody/preview", json={})

    assert _answer(response) == _error(404, "No voice 'nobody'.", "voice_not_found")


def test_looking_at_an_unknown_voice_is_a_404_about_voice_id(api):
    response = api.get("/v1/audio/voices/nobody")

    assert _answer(response) == _error(404, "No voice 'nobody'.", "voice_not_found")


def test_a_built_in_voice_belongs_to_no_caller_and_is_no_cloned_voice(api):
    # given a built-in voice (the server's, owned by nobody)
    builtin = Voice.objects.create(
        name="house-narrator", kind=Voice.Kind.BUILTIN, source=Voice.Source.GENERATED
    )

    # then the voices route refuses to delete it, and the cloning route does not know it
    refused = api.delete(f"/v1/audio/voices/{builtin.id}")
    unknown = api.delete(f"/v1/voice-cloning/voices/{builtin.id}")

    assert _answer(refused) == _error(403, "Only the owner can delete this voice.", "not_owner")
    assert _answer(unknown) == _error(404, f"No voice '{builtin.id}'.", "voice_not_found")
    assert Voice.objects.filter(id=builtin.id).exists()
