"""`Idempotency-Key` on the routes that create voices and consents, through the live server:
a retried request never makes a second voice."""

import hashlib

import pytest

# Idempotency records live in the limits store, apart from the rest of the cache.
from core.cache import limits_cache as cache
from tests.support.audio import encoded, recording, sample_wav
from tests.support.cloning import clone, consent_recording, error_of
from voices.models import Voice, VoiceConsent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]


def _key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def _clone_with_key(api, key: str, **kwargs):
    api.headers.update(_key(key))
    try:
        return clone(api, **kwargs)
    finally:
        del api.headers["Idempotency-Key"]


def test_a_retried_clone_replays_the_first_answer_and_makes_one_voice(api, media_root):
    first = _clone_with_key(api, "retry-1")
    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers

    # The same name again would be refused as taken: the retry gets the first answer instead.
    second = _clone_with_key(api, "retry-1")
    assert second.status_code == 200, second.text
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Voice.objects.filter(kind=Voice.Kind.CLONED).count() == 1


def test_the_same_key_on_a_different_request_is_refused(api, media_root):
    assert _clone_with_key(api, "retry-2").status_code == 200
    other_field = _clone_with_key(api, "retry-2", description="Something else.")
    assert other_field.status_code == 422
    assert error_of(other_field)["code"] == "idempotency_key_reused"
    # Uploaded files count by their contents, not only their names.
    other_audio = _clone_with_key(api, "retry-2", audio=encoded(recording(seed=7)))
    assert other_audio.status_code == 422
    assert Voice.objects.filter(kind=Voice.Kind.CLONED).count() == 1


def test_without_a_key_every_request_runs(api, media_root):
    assert clone(api, name="first").status_code == 200
    assert clone(api, name="second").status_code == 200
    taken = clone(api, name="second")
    assert taken.status_code == 400
    assert Voice.objects.filter(kind=Voice.Kind.CLONED).count() == 2


def test_keys_belong_to_one_user(api, bob_key, media_root):
    assert _clone_with_key(api, "shared", name="alices").status_code == 200
    api.headers.update({"Authorization": f"Bearer {bob_key}", **_key("shared")})
    bobs = clone(api, name="bobs")
    assert bobs.status_code == 200, bobs.text
    assert "Idempotent-Replayed" not in bobs.headers
    assert bobs.json()["name"] == "bobs"


def test_a_refusal_is_replayed_too(api, media_root):
    body = {"youtube_url": "https://example.com/watch?v=x", "voice_name": "yt", "consent": True}
    first = api.post("/v1/voice-cloning/clone-from-youtube", json=body, headers=_key("yt-1"))
    assert first.status_code == 400, first.text
    again = api.post("/v1/voice-cloning/clone-from-youtube", json=body, headers=_key("yt-1"))
    assert again.status_code == 400
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_an_overlong_key_is_refused(api, media_root):
    response = _clone_with_key(api, "k" * 256)
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_idempotency_key"
    assert not Voice.objects.filter(kind=Voice.Kind.CLONED).exists()


def test_a_duplicate_while_the_first_is_running_is_told_to_wait(api, alice, monkeypatch):
    # The first request has claimed the key and not yet answered.
    monkeypatch.setattr("api.idempotency.fingerprint", lambda request: "the-request")
    digest = hashlib.sha256(b"busy").hexdigest()
    cache.set(
        f"idempotency:{alice.pk}:{digest}", {"state": "pending", "fingerprint": "the-request"}
    )
    response = _clone_with_key(api, "busy")
    assert response.status_code == 409
    assert error_of(response)["code"] == "idempotency_key_in_progress"
    assert response.headers["Retry-After"]


@pytest.mark.usefixtures("stand_in_whisper")
def test_consent_and_openai_voice_creation_are_idempotent(api, media_root):
    form = {"name": "Alice", "language": "en-US"}
    files = {"recording": consent_recording()}
    first = api.post("/v1/audio/voice_consents", data=form, files=files, headers=_key("c-1"))
    assert first.status_code == 200, first.text
    second = api.post("/v1/audio/voice_consents", data=form, files=files, headers=_key("c-1"))
    assert second.json() == first.json()
    assert VoiceConsent.objects.count() == 1

    voice_form = {"name": "openai-voice", "consent": first.json()["id"]}
    voice_files = {"audio_sample": ("sample.wav", sample_wav(), "audio/wav")}
    made = [
        api.post("/v1/audio/voices", data=voice_form, files=voice_files, headers=_key("v-1"))
        for _ in range(2)
    ]
    assert made[0].status_code == 200, made[0].text
    assert made[1].json() == made[0].json()
    assert made[1].headers["Idempotent-Replayed"] == "true"
    assert Voice.objects.filter(kind=Voice.Kind.CLONED).count() == 1
