"""OpenAI's voice creation (POST /v1/audio/voices), through the openai SDK: a sample and a
consent recording make a voice that speaks; an unknown consent or a file that is not audio is
refused before any job."""

import openai
import pytest

from ingest.models import IngestJob
from tests.support.audio import decoded, sample_wav
from tests.support.cloning import consent_recording
from tests.support.storage import stored_files
from voices.models import Voice

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]


def test_voices_create_through_the_openai_sdk_makes_a_voice_that_speaks(
    openai_client, alice, media_root, short_speech, stand_in_whisper
):
    """OpenAI's route has no transcript field: the sample is transcribed (by the stand-in)."""
    # given a consent recording
    consent = openai_client.audio.voice_consents.create(
        name="Alice", language="en-US", recording=consent_recording()
    )

    # when alice creates a voice from a sample with OpenAI's API
    voice = openai_client.audio.voices.create(
        name="alice-sample",
        audio_sample=("sample.wav", sample_wav(), "audio/wav"),
        consent=consent.id,
    )

    # then she gets OpenAI's voice object, linked to the consent
    assert voice.object == "audio.voice"
    assert voice.name == "alice-sample"
    assert isinstance(voice.created_at, int)
    stored = Voice.objects.get(id=voice.id)
    assert stored.consent_method == "consent_recording"
    assert stored.consent_recording_id == consent.id
    assert stored.consent_by == alice

    # and the id works as a voice for speech, as OpenAI's {"id": ...}
    speech = openai_client.audio.speech.create(
        model="csm-1b", voice={"id": voice.id}, input="Hello.", response_format="wav"
    )
    assert decoded(speech.content).size > 0


def test_voices_create_with_an_unknown_consent_is_refused(openai_client, media_root):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.audio.voices.create(
            name="nobody",
            audio_sample=("sample.wav", sample_wav(), "audio/wav"),
            consent="cons_doesnotexist",
        )

    assert caught.value.code == "consent_not_found"
    assert caught.value.param == "consent"
    assert IngestJob.objects.count() == 0
    assert stored_files(media_root) == []


def test_voices_create_refuses_a_text_file_naming_its_field(openai_client, media_root):
    consent = openai_client.audio.voice_consents.create(
        name="Alice", language="en-US", recording=consent_recording()
    )
    files_before = stored_files(media_root)

    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.audio.voices.create(
            name="notes",
            audio_sample=("notes.txt", b"not audio at all " * 10, "text/plain"),
            consent=consent.id,
        )

    assert caught.value.code == "unsupported_format"
    assert caught.value.param == "audio_sample"
    assert IngestJob.objects.count() == 0
    assert stored_files(media_root) == files_before
