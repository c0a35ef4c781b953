"""A cloned voice's own routes: the lists it is in, its preview and its deletion, under both
/v1 and /api/v1, and what another user sees of it.

CSM is the tiny random checkpoint: the tests check that audio comes back, not how it sounds.
"""

import uuid

import httpx
import pytest

from ingest.models import IngestJob
from speech.audio.formats import FORMATS
from tests.support.audio import decoded
from tests.support.cloning import CLONED_VOICE_KEYS, clone, error_of
from tests.support.storage import stored_files
from voices.models import Voice

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]


def test_cloned_voice_is_listed_by_both_voice_lists(api, cloned):
    # when alice lists her cloned voices, and all voices
    cloning = api.get("/v1/voice-cloning/voices")
    everything = api.get("/v1/audio/voices")

    # then the cloned voice is in both, in each list's own shape
    assert cloning.status_code == 200, cloning.text
    assert cloning.json() == {"voices": [cloned]}
    assert everything.status_code == 200, everything.text
    listed = [voice for voice in everything.json()["voices"] if voice["id"] == cloned["id"]]
    assert listed == [
        {"id": cloned["id"], "name": "narrator", "kind": "cloned", "public": False, "owned": True}
    ]


@pytest.mark.parametrize("response_format", ["wav", "mp3"])
def test_preview_speaks_in_the_cloned_voice(api, cloned, short_speech, response_format):
    # when alice previews her voice
    response = api.post(
        f"/v1/voice-cloning/voices/{cloned['id']}/preview",
        json={"text": "This is what I sound like.", "response_format": response_format},
    )

    # then she hears it in the format she asked for
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == FORMATS[response_format].content_type
    assert decoded(response.content).size > 0


def test_preview_without_a_body_uses_the_default_text(api, cloned, short_speech):
    response = api.post(f"/v1/voice-cloning/voices/{cloned['id']}/preview")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/mpeg"


def test_deleting_a_cloned_voice_removes_its_row_and_its_file(api, cloned, media_root):
    # given the voice's reference is in storage
    assert stored_files(media_root) == [f"voices/{cloned['id']}/reference.wav"]

    # when alice deletes it
    response = api.delete(f"/v1/voice-cloning/voices/{cloned['id']}")

    # then it is gone: the row, the file, and from the list
    assert response.status_code == 200, response.text
    assert response.json() == {"id": cloned["id"], "object": "audio.voice.deleted", "deleted": True}
    assert not Voice.objects.filter(id=cloned["id"]).exists()
    assert stored_files(media_root) == []
    assert api.get("/v1/voice-cloning/voices").json() == {"voices": []}
    again = api.delete(f"/v1/voice-cloning/voices/{cloned['id']}")
    assert again.status_code == 404
    assert error_of(again)["code"] == "voice_not_found"


def test_the_api_v1_prefix_serves_every_cloning_route(api, media_root, short_speech):
    # when alice clones, lists, previews, generates with and deletes a voice under /api/v1
    made = clone(api, prefix="/api/v1")
    assert made.status_code == 200, made.text
    voice = made.json()
    assert set(voice) == CLONED_VOICE_KEYS

    listed = api.get("/api/v1/voice-cloning/voices")
    preview = api.post(
        f"/api/v1/voice-cloning/voices/{voice['id']}/preview", json={"response_format": "wav"}
    )
    generated = api.post(
        "/api/v1/voice-cloning/generate",
        json={"voice_id": voice["id"], "text": "Hello there.", "response_format": "wav"},
    )
    job = IngestJob.objects.get()
    job_state = api.get(f"/api/v1/voice-cloning/jobs/{job.id}")
    deleted = api.delete(f"/api/v1/voice-cloning/voices/{voice['id']}")

    # then every route answers as under /v1
    assert listed.json() == {"voices": [voice]}
    assert preview.status_code == 200, preview.text
    assert decoded(preview.content).size > 0
    assert generated.status_code == 200, generated.text
    assert decoded(generated.content).size > 0
    assert job_state.status_code == 200, job_state.text
    assert job_state.json()["voice_id"] == voice["id"]
    assert deleted.status_code == 200, deleted.text
    assert not Voice.objects.filter(id=voice["id"]).exists()
    assert stored_files(media_root) == []


def test_another_user_cannot_see_or_use_a_private_cloned_voice(
    api, cloned, as_bob, short_speech, media_root
):
    missing = str(uuid.uuid4())

    def attempts(voice_id: str) -> list[httpx.Response]:
        return [
            as_bob.post(f"/v1/voice-cloning/voices/{voice_id}/preview", json={}),
            as_bob.post(
                "/v1/voice-cloning/generate", json={"voice_id": voice_id, "text": "Hello."}
            ),
            as_bob.post(
                "/v1/audio/speech",
                json={"model": "csm-1b", "voice": voice_id, "input": "Hello."},
            ),
            as_bob.delete(f"/v1/voice-cloning/voices/{voice_id}"),
        ]

    # when bob tries alice's voice, and a voice that does not exist
    hers = attempts(cloned["id"])
    nobodys = attempts(missing)

    # then alice's voice is indistinguishable from no voice at all (404 on the voice's own
    # routes; the routes that speak answer an unknown voice with 400, as OpenAI's speech does)
    assert [r.status_code for r in hers] == [404, 400, 400, 404], [r.text for r in hers]
    for her, nobody in zip(hers, nobodys, strict=True):
        assert her.status_code == nobody.status_code, her.text
        assert error_of(her)["code"] == error_of(nobody)["code"]
        assert error_of(her)["message"] == error_of(nobody)["message"].replace(
            missing, cloned["id"]
        )
    assert as_bob.get("/v1/voice-cloning/voices").json() == {"voices": []}
    assert cloned["id"] not in {v["id"] for v in as_bob.get("/v1/audio/voices").json()["voices"]}
    # and it is still there for alice
    assert Voice.objects.filter(id=cloned["id"]).exists()
    assert stored_files(media_root) == [f"voices/{cloned['id']}/reference.wav"]
