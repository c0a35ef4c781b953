"""OpenAI's voice consents (/v1/audio/voice_consents), through the openai SDK: stored with
their recording, listed, read, renamed, deleted, and private to their owner."""

import openai
import pytest

from tests.support.audio import sample_wav
from tests.support.cloning import consent_recording
from tests.support.storage import stored_files
from voices.models import VoiceConsent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]


def test_voice_consents_through_the_openai_sdk(openai_client, alice, media_root):
    # when alice uploads two consent recordings
    first = openai_client.audio.voice_consents.create(
        name="Alice", language="en-US", recording=consent_recording()
    )
    second = openai_client.audio.voice_consents.create(
        name="Alice again", language="en-GB", recording=consent_recording()
    )

    # then each is an OpenAI consent object, stored with its recording
    assert first.object == "audio.voice_consent"
    assert first.id.startswith("cons_")
    assert (first.name, first.language) == ("Alice", "en-US")
    assert stored_files(media_root) == sorted(
        [f"consents/{first.id}/recording", f"consents/{second.id}/recording"]
    )

    # and they can be listed (newest first, one page at a time), read, renamed and deleted
    page = openai_client.audio.voice_consents.list(limit=1)
    assert [c.id for c in page.data] == [second.id]
    assert page.has_more is True
    assert (page.first_id, page.last_id) == (second.id, second.id)
    everything = [c.id for c in openai_client.audio.voice_consents.list(limit=1)]
    assert everything == [second.id, first.id]

    assert openai_client.audio.voice_consents.retrieve(first.id).name == "Alice"
    renamed = openai_client.audio.voice_consents.update(first.id, name="Alice Smith")
    assert renamed.name == "Alice Smith"
    assert VoiceConsent.objects.get(id=first.id).name == "Alice Smith"

    deleted = openai_client.audio.voice_consents.delete(first.id)
    assert deleted.deleted is True
    assert not VoiceConsent.objects.filter(id=first.id).exists()
    assert stored_files(media_root) == [f"consents/{second.id}/recording"]
    with pytest.raises(openai.NotFoundError):
        openai_client.audio.voice_consents.retrieve(first.id)


def test_a_consent_recording_must_be_audio(openai_client, media_root):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.audio.voice_consents.create(
            name="Alice", language="en-US", recording=("consent.txt", b"I agree.", "text/plain")
        )

    assert caught.value.code == "unsupported_format"
    assert not VoiceConsent.objects.exists()
    assert stored_files(media_root) == []


def test_consents_are_private(openai_client, live_server_url, bob_key, media_root):
    mine = openai_client.audio.voice_consents.create(
        name="Alice", language="en-US", recording=consent_recording()
    )
    bobs_client = openai.OpenAI(
        base_url=f"{live_server_url}/v1", api_key=bob_key, max_retries=0, timeout=60
    )

    assert bobs_client.audio.voice_consents.list().data == []
    with pytest.raises(openai.NotFoundError):
        bobs_client.audio.voice_consents.retrieve(mine.id)
    # and bob cannot clone with alice's consent
    with pytest.raises(openai.BadRequestError) as caught:
        bobs_client.audio.voices.create(
            name="copy", audio_sample=("sample.wav", sample_wav(), "audio/wav"), consent=mine.id
        )
    assert caught.value.code == "consent_not_found"
