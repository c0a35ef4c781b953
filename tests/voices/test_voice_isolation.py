"""The isolation matrix: alice owns a voice, bob is another user, carol is staff.

Another user's private voice must behave exactly like a voice that does not exist, on every
route that takes a voice id or name.
"""

import uuid

import httpx
import pytest

from voices.models import Voice

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def public_voice(alice) -> Voice:
    return Voice.objects.create(
        owner=alice,
        name="alices-announcer",
        kind=Voice.Kind.CLONED,
        source=Voice.Source.UPLOAD,
        reference_audio="voices/alice/announcer.wav",
        is_public=True,
    )


def _client(url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def _speech_error(client: httpx.Client, voice: str) -> dict:
    response = client.post(
        "/v1/audio/speech", json={"model": "tts-1", "input": "Hello.", "voice": voice}
    )
    assert response.status_code == 400
    return response.json()["error"]


def _as_unknown(body: dict, name: str) -> dict:
    """An error body with the voice's own name replaced, to compare with an unknown voice's."""
    return {**body, "message": body["message"].replace(name, "<voice>")}


@pytest.mark.parametrize("reference", ["id", "name"])
def test_other_users_see_a_private_voice_as_nonexistent(
    live_server_url, private_voice, bob_key, carol_key, reference
):
    ref = str(private_voice.id) if reference == "id" else private_voice.name
    unknown = str(uuid.uuid4()) if reference == "id" else "no-such-voice"
    for key in (bob_key, carol_key, None):
        with _client(live_server_url, key) as client:
            # GET detail: the same 404 as a voice that does not exist
            found = client.get(f"/v1/audio/voices/{ref}")
            missing = client.get(f"/v1/audio/voices/{unknown}")
            assert found.status_code == missing.status_code == 404
            assert _as_unknown(found.json()["error"], ref) == _as_unknown(
                missing.json()["error"], unknown
            )
            # list: absent
            listed = client.get("/v1/audio/voices").json()["voices"]
            assert private_voice.name not in {voice["name"] for voice in listed}
            if key is None:
                continue
            # speech: the same 400 as an unknown voice
            assert _as_unknown(_speech_error(client, ref), ref) == _as_unknown(
                _speech_error(client, unknown), unknown
            )
            # delete: the same 404, and the voice survives
            assert client.delete(f"/v1/audio/voices/{ref}").status_code == 404
    assert Voice.objects.filter(id=private_voice.id).exists()


@pytest.mark.parametrize("reference", ["id", "name"])
def test_the_owner_sees_and_uses_a_private_voice(
    live_server_url, private_voice, alice_key, reference
):
    ref = str(private_voice.id) if reference == "id" else private_voice.name
    with _client(live_server_url, alice_key) as client:
        detail = client.get(f"/v1/audio/voices/{ref}")
        assert detail.status_code == 200
        assert detail.json()["owned"] is True
        assert detail.json()["reference_text"] == "Hello from alice."
        listed = {voice["name"]: voice for voice in client.get("/v1/audio/voices").json()["voices"]}
        assert listed[private_voice.name]["owned"] is True
        # The voice is found; eSpeak simply cannot speak a cloned voice.
        assert _speech_error(client, ref)["code"] == "voice_not_supported"


def test_only_the_owner_deletes_a_voice(live_server_url, private_voice, alice_key, bob_key):
    with _client(live_server_url, bob_key) as bob:
        assert bob.delete(f"/v1/audio/voices/{private_voice.id}").status_code == 404
    with _client(live_server_url, alice_key) as alice:
        response = alice.delete(f"/v1/audio/voices/{private_voice.id}")
        assert response.status_code == 200
        assert response.json() == {
            "id": str(private_voice.id),
            "object": "audio.voice.deleted",
            "deleted": True,
        }
        assert alice.get(f"/v1/audio/voices/{private_voice.id}").status_code == 404
    assert not Voice.objects.filter(id=private_voice.id).exists()


def test_a_public_voice_is_visible_and_usable_but_not_deletable_by_others(
    live_server_url, public_voice, bob_key
):
    with _client(live_server_url, bob_key) as bob:
        detail = bob.get(f"/v1/audio/voices/{public_voice.name}")
        assert detail.status_code == 200
        assert detail.json()["owned"] is False
        assert _speech_error(bob, public_voice.name)["code"] == "voice_not_supported"
        refused = bob.delete(f"/v1/audio/voices/{public_voice.id}")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "not_owner"
    with _client(live_server_url, None) as anonymous:
        assert anonymous.get(f"/v1/audio/voices/{public_voice.id}").status_code == 200
    assert Voice.objects.filter(id=public_voice.id).exists()


def test_deleting_needs_a_key(live_server_url, private_voice):
    with _client(live_server_url, None) as anonymous:
        response = anonymous.delete(f"/v1/audio/voices/{private_voice.id}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_standard_voices_are_described_and_protected(live_server_url, alice_key):
    with _client(live_server_url, alice_key) as client:
        detail = client.get("/v1/audio/voices/alloy")
        assert detail.status_code == 200
        assert detail.json()["kind"] == "standard"
        refused = client.delete("/v1/audio/voices/alloy")
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "voice_protected"
