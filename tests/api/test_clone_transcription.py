"""POST /v1/voice-cloning/clone without a transcript: the recording is transcribed.

Transcription uses the tiny random Whisper checkpoint: it hears nothing sensible (one 20 ms
segment of gibberish), so the transcribed path is checked for what it does with such a model
(no usable speech) and, with a stand-in transcriber that returns real timestamps, for which
windows it keeps.
"""

import pytest

from tests.support.audio import RATE, SENTENCES, encoded, recording
from tests.support.cloning import assert_failed_in_job, clone
from voices.models import Voice

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]


def test_without_a_transcript_the_tiny_model_finds_no_usable_speech(api, media_root, whisper_model):
    """The random checkpoint "hears" one 20 ms segment, too short to keep as a reference: the
    job gets through transcription and fails with a message the caller can act on."""
    response = clone(api, transcript=None)

    error = assert_failed_in_job(response, "no_usable_speech", media_root)
    assert "transcribed" in error["message"]


def test_without_a_transcript_and_without_whisper_the_caller_is_told_to_send_one(
    api, media_root, settings, tmp_path
):
    # given a WHISPER_MODEL that cannot be loaded
    settings.WHISPER_MODEL = str(tmp_path / "missing-whisper.pt")
    from ingest.transcribe import transcriber_reset

    transcriber_reset()

    # when a recording comes without its transcript
    response = clone(api, transcript=None)

    # then the job fails saying what to do, without the server's paths
    error = assert_failed_in_job(response, "transcription_unavailable", media_root)
    assert "transcript with the upload" in error["message"]
    assert str(tmp_path) not in error["message"]


def test_without_a_transcript_the_transcribed_windows_become_the_reference(
    api, media_root, settings, stand_in_whisper
):
    # given a reference limit shorter than the recording's speech
    settings.VOICE_REFERENCE_SECONDS = 5.0
    sentences = (*SENTENCES, "She counted seven small boats before the sun went down.")

    # when the recording comes without a transcript
    response = clone(api, audio=encoded(recording(sentences)), transcript=None)

    # then the cleaned recording was transcribed, and the reference is a run of whole
    # segments, in order, that fits the limit, with exactly those segments' text
    assert response.status_code == 200, response.text
    (heard,) = stand_in_whisper
    assert heard.size / RATE > 5.0
    voice = Voice.objects.get(id=response.json()["id"])
    labels = voice.reference_text.split()
    assert labels
    indexes = [int(label.removeprefix("w")) for label in labels]
    assert indexes == list(range(indexes[0], indexes[0] + len(indexes)))
    assert len(labels) * 2.0 <= 5.0
    assert voice.duration_seconds == pytest.approx(len(labels) * 2.0, abs=0.01)
    assert response.json()["audio_duration"] == pytest.approx(voice.duration_seconds, abs=0.001)
