"""A voice consent that voices were made with is their evidence: it cannot be deleted while they
exist (409 consent_in_use, naming them), by the API, the ORM or the admin; the owner's deletion
still takes both. An unused consent deletes as before."""

import openai
import pytest
from django.db.models import RestrictedError
from django.urls import reverse

from ingest.models import IngestJob
from tests.support.cloning import consent_recording, error_of
from tests.support.storage import stored_files
from voices.models import Voice, VoiceConsent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]


@pytest.fixture(autouse=True)
def _no_rate_limit(settings) -> None:
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0


@pytest.fixture
def consent(api, media_root) -> VoiceConsent:
    response = api.post(
        "/v1/audio/voice_consents",
        data={"name": "Alice", "language": "en"},
        files={"recording": consent_recording()},
    )
    assert response.status_code == 200, response.text
    return VoiceConsent.objects.get(id=response.json()["id"])


def _voice_with(consent: VoiceConsent, name: str) -> Voice:
    """A voice made with `consent`, as a finished job links it."""
    return Voice.objects.create(
        owner=consent.owner,
        name=name,
        kind=Voice.Kind.CLONED,
        source=Voice.Source.UPLOAD,
        consent_method="consent_recording",
        consent_recording=consent,
    )


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
def test_a_consent_in_use_is_not_deleted_and_the_refusal_names_its_voices(
    api, consent, media_root, prefix
):
    voices = [_voice_with(consent, "narrator"), _voice_with(consent, "announcer")]
    files = stored_files(media_root)

    response = api.delete(f"{prefix}/audio/voice_consents/{consent.id}")

    assert response.status_code == 409, response.text
    error = error_of(response)
    assert (error["code"], error["param"]) == ("consent_in_use", "consent_id")
    for voice in voices:
        assert voice.name in error["message"] and str(voice.id) in error["message"]
    # the consent, its recording and the voices' link to it are all still there
    assert VoiceConsent.objects.filter(id=consent.id).exists()
    assert stored_files(media_root) == files == [f"consents/{consent.id}/recording"]
    for voice in voices:
        voice.refresh_from_db()
        assert voice.consent_recording_id == consent.id


def test_the_openai_sdk_gets_a_conflict(openai_client, consent):
    _voice_with(consent, "narrator")

    with pytest.raises(openai.ConflictError) as caught:
        openai_client.audio.voice_consents.delete(consent.id)

    assert "narrator" in str(caught.value)
    assert VoiceConsent.objects.filter(id=consent.id).exists()


def test_once_its_voices_are_gone_the_consent_deletes(api, consent, media_root):
    voice = _voice_with(consent, "narrator")
    assert api.delete(f"/v1/audio/voice_consents/{consent.id}").status_code == 409

    assert api.delete(f"/v1/audio/voices/{voice.id}").status_code == 200
    response = api.delete(f"/v1/audio/voice_consents/{consent.id}")

    assert response.status_code == 200, response.text
    assert response.json() == {"id": consent.id, "object": "audio.voice_consent", "deleted": True}
    assert not VoiceConsent.objects.filter(id=consent.id).exists()
    assert stored_files(media_root) == []


def test_an_unused_consent_deletes_as_before(api, consent, alice, media_root):
    _voice_with(consent, "narrator")
    unused = VoiceConsent.objects.create(id="cons_unused", owner=alice, name="B", language="en")

    response = api.delete(f"/v1/audio/voice_consents/{unused.id}")

    assert response.status_code == 200, response.text
    assert not VoiceConsent.objects.filter(id=unused.id).exists()


def test_no_other_path_orphans_a_voice(consent, media_root):
    voice = _voice_with(consent, "narrator")

    # the ORM (and so any admin, action or shell) is refused by the foreign key
    with pytest.raises(RestrictedError):
        consent.delete()
    with pytest.raises(RestrictedError):
        VoiceConsent.objects.filter(id=consent.id).delete()
    voice.refresh_from_db()
    assert voice.consent_recording_id == consent.id
    assert stored_files(media_root) == [f"consents/{consent.id}/recording"]


def test_deleting_the_owner_takes_their_voices_and_consents(consent, alice, media_root):
    _voice_with(consent, "narrator")

    alice.delete()

    assert not Voice.objects.exists()
    assert not VoiceConsent.objects.exists()
    assert stored_files(media_root) == []


def test_the_admin_deletes_a_user_with_their_voices_and_consents(admin_client, bob):
    # (bob has no API key, which the admin would refuse to delete)
    consent = VoiceConsent.objects.create(id="cons_bob", owner=bob, name="Bob", language="en")
    _voice_with(consent, "narrator")
    url = reverse(f"admin:{bob._meta.app_label}_{bob._meta.model_name}_delete", args=[bob.pk])

    page = admin_client.get(url)
    assert page.status_code == 200
    assert b"protected" not in page.content.lower()
    response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert not Voice.objects.exists()
    assert not VoiceConsent.objects.exists()


def test_a_consent_a_job_is_still_using_is_not_deleted(api, consent, alice):
    job = IngestJob.objects.create(
        owner=alice,
        kind=IngestJob.Kind.UPLOAD,
        request={
            "name": "in the making",
            "consent": {"method": "consent_recording", "recording": consent.id},
        },
    )

    response = api.delete(f"/v1/audio/voice_consents/{consent.id}")

    assert response.status_code == 409, response.text
    assert "in the making" in error_of(response)["message"]
    assert str(job.id) in error_of(response)["message"]
    assert VoiceConsent.objects.filter(id=consent.id).exists()

    IngestJob.objects.filter(id=job.id).update(status=IngestJob.Status.FAILED)
    assert api.delete(f"/v1/audio/voice_consents/{consent.id}").status_code == 200
