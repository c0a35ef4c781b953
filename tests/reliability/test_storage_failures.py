"""Storage and the database fail around a write: a file whose write failed leaves no row, a row
whose write failed leaves no file, and once storage works again the same request succeeds.

Covered elsewhere, and counted by `make reliability` with these: the database refusing a
voice's row after its file was written (tests/ingest/test_ingest_jobs.py), and
`reap_orphans` removing files that a crash left without a row (tests/ingest/test_reap_orphans.py).
"""

import errno

import pytest
from django.core.files.storage import FileSystemStorage

from ingest.models import IngestJob
from tests.support.audio import TRANSCRIPT, sample_wav
from tests.support.storage import stored_files
from voices.models import Voice, VoiceConsent

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _jobs_run_once_in_process(jobs_run_in_process, settings) -> None:
    """Jobs run in the server's process, without retries: each failure ends its job at once."""
    settings.INGEST_MAX_RETRIES = 0


@pytest.fixture
def full_disk(monkeypatch) -> list[str]:
    """Storage refuses every write under the given prefixes (the disk is full)."""
    refused: list[str] = []
    save = FileSystemStorage._save

    def failing_save(self, name, content):
        if any(name.startswith(prefix) for prefix in refused):
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(self, name, content)

    monkeypatch.setattr(FileSystemStorage, "_save", failing_save)
    return refused


def clone(api, name: str = "narrator"):
    return api.post(
        "/v1/voice-cloning/clone",
        data={"name": name, "transcript": TRANSCRIPT, "consent": "true"},
        files={"audio_file": ("sample.wav", sample_wav(), "audio/wav")},
    )


def assert_server_error(response) -> None:
    assert response.status_code in {500, 503}, response.text
    error = response.json()["error"]
    assert error["type"] == "server_error"
    assert "space" not in error["message"]


def test_a_voice_whose_reference_cannot_be_written_leaves_no_row(api, media_root, full_disk):
    # given storage that cannot take the voice's reference
    full_disk.append("voices/")

    # when a clone gets to storing its voice
    response = clone(api)

    # then it fails as a server error, with no voice row and no file
    assert_server_error(response)
    assert not Voice.objects.exists()
    assert IngestJob.objects.get().status == IngestJob.Status.FAILED
    assert stored_files(media_root) == []

    # and once storage works again, the same clone succeeds
    full_disk.clear()
    response = clone(api)
    assert response.status_code == 200, response.text
    assert stored_files(media_root) == [f"voices/{response.json()['id']}/reference.wav"]


def test_an_upload_that_cannot_be_written_starts_no_job(api, media_root, full_disk):
    full_disk.append("ingest/")

    assert_server_error(clone(api))

    assert not IngestJob.objects.exists()
    assert stored_files(media_root) == []


def consent(api):
    return api.post(
        "/v1/audio/voice_consents",
        data={"name": "Alice", "language": "en-US"},
        files={"recording": ("consent.wav", sample_wav(), "audio/wav")},
    )


def test_a_consent_whose_recording_cannot_be_written_leaves_no_row(api, media_root, full_disk):
    full_disk.append("consents/")

    assert_server_error(consent(api))

    assert not VoiceConsent.objects.exists()
    assert stored_files(media_root) == []


def test_a_consent_whose_row_cannot_be_written_leaves_no_file(api, media_root, monkeypatch):
    # given the database refuses the row after the recording was written
    def refuse(self, *args, **kwargs):
        assert stored_files(media_root), "the recording was not written first"
        raise RuntimeError("the database went away")

    monkeypatch.setattr(VoiceConsent, "save", refuse)

    assert_server_error(consent(api))

    assert stored_files(media_root) == []
    monkeypatch.undo()
    assert consent(api).status_code == 200
