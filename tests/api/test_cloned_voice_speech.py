"""Speech in a cloned voice: POST /v1/voice-cloning/generate and POST /v1/audio/speech, over
plain HTTP and through the openai SDK.

CSM is the tiny random checkpoint: the tests check that a cloned voice is accepted wherever
voices are and that audio comes back, not how it sounds.
"""

import pytest

from tests.support.audio import decoded
from tests.support.cloning import error_of

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]


def test_cloned_voice_speaks_through_the_speech_api_and_the_openai_sdk(
    api, openai_client, cloned, short_speech
):
    # when alice asks for speech in her cloned voice, by id, over plain HTTP
    response = api.post(
        "/v1/audio/speech",
        json={
            "model": "csm-1b",
            "voice": cloned["id"],
            "input": "Good evening.",
            "response_format": "wav",
            "seed": 1,
        },
    )

    # then audio comes back
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert decoded(response.content).size > 0

    # and the official SDK can name the voice as {"id": ...} and as a plain id
    for voice in ({"id": cloned["id"]}, cloned["id"]):
        speech = openai_client.audio.speech.create(
            model="csm-1b", voice=voice, input="Good evening.", response_format="wav"
        )
        assert decoded(speech.content).size > 0


def test_espeak_cannot_speak_a_cloned_voice(api, cloned):
    response = api.post(
        "/v1/audio/speech", json={"model": "espeak", "voice": cloned["id"], "input": "Hello."}
    )

    assert response.status_code == 400, response.text
    assert (error_of(response)["param"], error_of(response)["code"]) == (
        "voice",
        "voice_not_supported",
    )


def test_generate_speaks_a_text_in_the_cloned_voice(api, cloned, short_speech):
    # when alice generates speech with the original server's route and its field names
    response = api.post(
        "/v1/voice-cloning/generate",
        json={
            "voice_id": cloned["id"],
            "text": "The meeting starts at nine.",
            "response_format": "flac",
            "temperature": 0.7,
        },
    )

    # then the audio comes back in that format
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/flac"
    assert decoded(response.content).size > 0
