"""Stored files get server-chosen keys: a client's file name or voice name never becomes part
of a path, so `../`, NUL, absolute paths and very long names cannot escape or collide."""

import re
from pathlib import Path

import httpx
import pytest
from django.core.files.storage import FileSystemStorage
from django.test import Client
from hostile_cases import HOSTILE_NAMES, Case

from ingest.models import IngestJob, job_input_key
from tests.support.audio import encoded, tone
from voices.models import (
    Voice,
    VoiceConsent,
    consent_recording_key,
    original_audio_key,
    reference_audio_key,
)

pytestmark = pytest.mark.django_db(transaction=True)

SERVER_KEY = re.compile(
    r"(ingest/[0-9a-f-]{36}/input"
    r"|voices/[0-9a-f-]{36}/(reference\.wav|original)"
    r"|consents/cons_[0-9a-f]{32}/recording)"
)


def _tone_wav() -> bytes:
    """A second's tone: real audio that decodes (and is too little speech for a voice)."""
    return encoded(tone(1.0))


def _sendable(text: str) -> str:
    """`text` as a multipart header can carry it: no NUL, no lone surrogate."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


@pytest.fixture
def saved_keys(monkeypatch, media_root) -> list[str]:
    """Every key handed to file storage while the test runs."""
    keys: list[str] = []
    save = FileSystemStorage.save

    def recording_save(self, name, content, max_length=None):
        saved = save(self, name, content, max_length=max_length)
        keys.append(saved)
        return saved

    monkeypatch.setattr(FileSystemStorage, "save", recording_save)
    return keys


def _assert_only_server_keys(keys: list[str], media_root: Path) -> None:
    assert keys, "nothing was stored"
    root = media_root.resolve()
    for key in keys:
        assert SERVER_KEY.fullmatch(key), key
        assert (media_root / key).resolve().is_relative_to(root)
    # Nothing at all was written outside the media root's server-chosen folders.
    for path in media_root.rglob("*"):
        relative = path.relative_to(media_root).as_posix()
        assert relative.split("/")[0] in {"ingest", "voices", "consents"}, relative


@pytest.mark.parametrize("case", HOSTILE_NAMES, ids=lambda case: case.name)
def test_key_functions_ignore_the_clients_file_name(case: Case):
    voice = Voice(name=case.value)
    consent = VoiceConsent(id="cons_" + "0" * 32, name=case.value)
    job = IngestJob()

    keys = [
        reference_audio_key(voice, case.value),
        original_audio_key(voice, case.value),
        consent_recording_key(consent, case.value),
        job_input_key(job, case.value),
    ]

    for key in keys:
        assert SERVER_KEY.fullmatch(key), key


def test_hostile_names_of_uploads_never_become_paths(
    live_server_url, alice_key, media_root, saved_keys, settings
):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    with httpx.Client(
        base_url=live_server_url, headers={"Authorization": f"Bearer {alice_key}"}, timeout=60
    ) as api:
        for index, case in enumerate(HOSTILE_NAMES):
            # (a multipart header holds 1024 bytes: longer ones are a parse error, tried below)
            filename = _sendable(case.value)[:200]
            # the clone route: the file name, and the voice name, are the client's
            clone = api.post(
                "/v1/voice-cloning/clone",
                data={"name": filename, "consent": "true"},
                files={"audio_file": (filename, _tone_wav(), "audio/wav")},
            )
            # the consent route stores its recording at once
            consent = api.post(
                "/v1/audio/voice_consents",
                data={"name": f"consent {index}", "language": "en"},
                files={"recording": (filename, _tone_wav(), "audio/wav")},
            )

            # refused as a name, or by the job: a tone is not speech
            assert clone.status_code == 400, clone.text
            error = clone.json()["error"]
            # (a name that is nothing once cleaned, "..", leaves no file)
            refused_form = error["param"] in {"name", "audio_file"}
            assert refused_form or error["code"] == "too_little_speech", error
            no_file = consent.status_code == 400 and consent.json()["error"]["param"] == "recording"
            assert consent.status_code == 200 or no_file, consent.text
    _assert_only_server_keys(saved_keys, media_root)


def _multipart(fields: dict[str, str], filename: str, data: bytes) -> bytes:
    """A multipart body made by hand: test clients refuse some of the names a browser sends."""
    parts = [
        f'--x\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        b'--x\r\nContent-Disposition: form-data; name="audio_file"; filename="'
        + filename.encode()
        + b'"\r\nContent-Type: audio/wav\r\n\r\n'
        + data
        + b"\r\n"
    )
    return b"".join(parts) + b"--x--\r\n"


def test_hostile_names_in_the_web_form_never_become_paths(alice, media_root, saved_keys):
    browser = Client()
    browser.force_login(alice)
    for index, case in enumerate(HOSTILE_NAMES):
        fields = {"source": "upload", "name": f"voice {index}", "consent": "on"}
        body = _multipart(fields, _sendable(case.value)[:200], _tone_wav())

        response = browser.post(
            "/voice-cloning/clone", body, content_type="multipart/form-data; boundary=x"
        )

        # Django drops a file whose name is nothing once cleaned (".."): then there is no file
        no_file = response.status_code == 400 and response.json()["error"]["param"] == "audio_file"
        assert response.status_code == 202 or no_file, (case.name, response.content)
    _assert_only_server_keys(saved_keys, media_root)
