"""What one user may store: consent recordings bounded in bytes and seconds, and quotas of
voices, consents and bytes per user, over the live server. A full quota is 409 quota_exceeded,
refused before any job or file exists; deleting something makes room again."""

import httpx
import numpy as np
import pytest
from django.test import Client

from ingest.models import IngestJob
from tests.security.hostile_cases import opus_hours
from tests.support.audio import encoded, recording, tone
from tests.support.cloning import clone, consent_recording, error_of
from tests.support.storage import stored_files
from tests.support.voices import cloned_voice
from voices.models import Voice, VoiceConsent
from voices.selectors import storage_used

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]


@pytest.fixture(autouse=True)
def _no_rate_limit(settings) -> None:
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0


def _consent(api: httpx.Client, recording_file=None, prefix: str = "/v1") -> httpx.Response:
    return api.post(
        f"{prefix}/audio/voice_consents",
        data={"name": "Alice", "language": "en"},
        files={"recording": recording_file or consent_recording()},
    )


def _assert_quota_refusal(response: httpx.Response, *, words: str) -> dict:
    assert response.status_code == 409, response.text
    error = error_of(response)
    assert error["code"] == "quota_exceeded"
    assert error["type"] == "invalid_request_error"
    assert words in error["message"]
    return error


# --- Consent recordings are short ----------------------------------------------------------------


def _wav(seconds: float) -> tuple[str, bytes, str]:
    return ("consent.wav", encoded(tone(seconds)), "audio/wav")


@pytest.mark.parametrize(
    "long_recording",
    [
        pytest.param(lambda: _wav(12.0), id="wav-just-over"),
        pytest.param(lambda: _wav(45.0), id="wav-long"),
        pytest.param(lambda: ("consent.ogg", opus_hours(0.5), "audio/ogg"), id="opus-half-hour"),
        pytest.param(
            lambda: ("c.mp3", encoded(np.tile(recording(), 3), "mp3"), "audio/mpeg"), id="mp3"
        ),
    ],
)
def test_a_consent_recording_longer_than_the_limit_is_refused(
    api, settings, media_root, alice, long_recording
):
    settings.VOICE_CONSENT_MAX_SECONDS = 10.0

    response = _consent(api, long_recording())

    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["code"], error["param"]) == ("recording_too_long", "recording")
    assert "10 seconds" in error["message"]
    assert not VoiceConsent.objects.exists()
    assert stored_files(media_root) == []


def test_a_consent_recording_within_the_limit_is_kept_whole(api, settings, media_root):
    settings.VOICE_CONSENT_MAX_SECONDS = 10.0
    name, data, kind = _wav(9.0)

    response = _consent(api, (name, data, kind))

    assert response.status_code == 200, response.text
    consent = VoiceConsent.objects.get(id=response.json()["id"])
    assert consent.recording.read() == data


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
def test_a_consent_recording_larger_than_the_limit_is_refused(api, settings, media_root, prefix):
    name, data, kind = _wav(5.0)  # 240 kB
    settings.VOICE_CONSENT_MAX_BYTES = len(data) - 1

    response = _consent(api, (name, data, kind), prefix=prefix)

    assert response.status_code == 400, response.text
    assert (error_of(response)["code"], error_of(response)["param"]) == (
        "file_too_large",
        "recording",
    )
    assert not VoiceConsent.objects.exists()
    assert stored_files(media_root) == []


# --- Quotas: voices ------------------------------------------------------------------------------


@pytest.fixture
def full_of_voices(settings, alice, media_root) -> list[Voice]:
    settings.VOICE_QUOTA_VOICES = 2
    return [cloned_voice(alice, "one"), cloned_voice(alice, "two")]


def _assert_nothing_new(media_root, files_before: list[str]) -> None:
    assert IngestJob.objects.count() == 0
    assert Voice.objects.count() == 2
    assert stored_files(media_root) == files_before


def test_the_next_clone_past_the_voice_quota_is_refused(api, full_of_voices, media_root):
    files = stored_files(media_root)

    _assert_quota_refusal(clone(api, name="three"), words="2 voices")
    _assert_quota_refusal(clone(api, name="three", prefix="/api/v1"), words="2 voices")

    _assert_nothing_new(media_root, files)


def test_openai_voice_creation_past_the_quota_is_refused(api, full_of_voices, alice, media_root):
    consent = _consent(api).json()["id"]
    files = stored_files(media_root)

    response = api.post(
        "/v1/audio/voices",
        data={"name": "three", "consent": consent},
        files={"audio_sample": consent_recording()},
    )

    _assert_quota_refusal(response, words="2 voices")
    _assert_nothing_new(media_root, files)


def test_a_youtube_clone_past_the_quota_is_refused_before_the_link_is_looked_at(
    api, full_of_voices, media_root
):
    files = stored_files(media_root)
    body = {
        "youtube_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "voice_name": "three",
        "consent": True,
    }

    _assert_quota_refusal(api.post("/v1/voice-cloning/clone-from-youtube", json=body), words="2")
    _assert_quota_refusal(api.post("/v1/audio/speech/voice-cloning/youtube", json=body), words="2")
    _assert_nothing_new(media_root, files)


def test_the_page_refuses_a_clone_past_the_quota(full_of_voices, alice, media_root):
    from django.core.files.uploadedfile import SimpleUploadedFile

    browser = Client()
    browser.force_login(alice)
    files = stored_files(media_root)
    form = {
        "source": "upload",
        "name": "three",
        "transcript": "Hello.",
        "consent": "on",
        "audio_file": SimpleUploadedFile("s.wav", consent_recording()[1], "audio/wav"),
    }

    response = browser.post("/voice-cloning/clone", form)

    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "quota_exceeded"
    _assert_nothing_new(media_root, files)


def test_jobs_in_flight_count_against_the_voice_quota(api, settings, alice, media_root):
    settings.VOICE_QUOTA_VOICES = 2
    cloned_voice(alice, "one")
    IngestJob.objects.create(owner=alice, kind=IngestJob.Kind.UPLOAD, request={"name": "two"})

    _assert_quota_refusal(clone(api, name="three"), words="still being made")


def test_another_users_voices_do_not_count(api, settings, bob, media_root):
    settings.VOICE_QUOTA_VOICES = 1
    cloned_voice(bob, "bobs")
    assert storage_used(bob).voices == 1
    # alice's clone is not refused for bob's voice (it goes on to be checked as a recording)
    assert clone(api, name="alices", audio=b"not audio").status_code == 400


# --- Quotas: consents and bytes ------------------------------------------------------------------


def test_the_next_consent_past_the_consent_quota_is_refused(api, settings, media_root):
    settings.VOICE_QUOTA_CONSENTS = 2
    kept = [_consent(api).json()["id"] for _ in range(2)]
    files = stored_files(media_root)

    _assert_quota_refusal(_consent(api), words="2 voice consents")
    _assert_quota_refusal(_consent(api, prefix="/api/v1"), words="2 voice consents")
    assert sorted(VoiceConsent.objects.values_list("id", flat=True)) == sorted(kept)
    assert stored_files(media_root) == files

    # deleting one makes room for the next
    assert api.delete(f"/v1/audio/voice_consents/{kept[0]}").status_code == 200
    assert _consent(api).status_code == 200


def test_the_byte_quota_refuses_the_consent_that_would_pass_it(api, settings, alice, media_root):
    voice = cloned_voice(alice, "one")
    used = storage_used(alice).bytes
    assert used == voice.reference_audio.size
    recording_file = consent_recording()
    settings.VOICE_QUOTA_BYTES = used + len(recording_file[1]) - 1
    files = stored_files(media_root)

    _assert_quota_refusal(_consent(api, recording_file), words="MB")
    assert not VoiceConsent.objects.exists()
    assert stored_files(media_root) == files

    settings.VOICE_QUOTA_BYTES = used + len(recording_file[1])
    assert _consent(api, recording_file).status_code == 200


def test_the_byte_quota_refuses_the_clone_that_would_pass_it(api, settings, alice, media_root):
    cloned_voice(alice, "one")
    settings.VOICE_QUOTA_BYTES = storage_used(alice).bytes + 1000
    files = stored_files(media_root)

    _assert_quota_refusal(clone(api, name="two"), words="MB")
    assert IngestJob.objects.count() == 0
    assert stored_files(media_root) == files


def test_zero_means_no_quota(api, settings, alice, media_root):
    settings.VOICE_QUOTA_CONSENTS = 0
    settings.VOICE_QUOTA_BYTES = 0
    for _ in range(3):
        assert _consent(api).status_code == 200
