"""Voice files in an S3-compatible object store instead of on local disk.

The store is a real S3 API over HTTP on loopback: moto's ThreadedMotoServer (the `moto` package
with Flask), spoken to by boto3 through django-storages' S3Storage, configured by the settings
from the environment exactly as a deployment does (STORAGE_BACKEND / AWS_* variables). A voice
is cloned through the API, its audio is read back by every path that reads it (the web UI's
ranged player, the waveform, the admin's player, CSM's reference), it is deleted and its object
goes; uploads of failed jobs go too; and `reap_orphans` works on the bucket.
"""

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.urls import reverse

from ingest.models import IngestJob
from speech.audio.decode import decode_audio
from tests.support.audio import RATE, sample_wav
from tests.support.cloning import clone
from tests.support.processes import run_python
from voices.models import Voice, VoiceConsent
from voices.services import voice_store
from web.media import voice_waveform

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]

ROOT = Path(__file__).resolve().parents[2]
STORAGE_VARIABLES = [
    "STORAGE_BACKEND",
    "AWS_STORAGE_BUCKET_NAME",
    "AWS_S3_ENDPOINT_URL",
    "AWS_S3_REGION_NAME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_LOCATION",
    "AWS_S3_ADDRESSING_STYLE",
]
# What a deployment puts in its environment (the bucket and endpoint are filled in per test).
S3_ENVIRONMENT = {
    "AWS_S3_REGION_NAME": "us-east-1",
    "AWS_ACCESS_KEY_ID": "test-access-key",
    "AWS_SECRET_ACCESS_KEY": "test-secret-key",
    "AWS_S3_ADDRESSING_STYLE": "path",
}


# --- The store and the settings ------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API server on a free loopback port, for this module's tests."""
    # Deferred: moto loads only when the S3 tests run.
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def settings_from(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Load csmsite.settings in a fresh process with only `env` set of the settings' variables
    (nothing of this test run's own DATABASE_URL, REDIS_URL, ...); print STORAGES["default"]."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "STORAGE_", "DATABASE_", "REDIS_", "MEDIA_"))
    }
    # Empty means the default, and keeps a developer's .env (which fills only variables that
    # are not set at all) out of it.
    clean.update(dict.fromkeys(STORAGE_VARIABLES, ""))
    script = "import json, csmsite.settings as s; print(json.dumps(s.STORAGES['default']))"
    return run_python("-c", script, env={**clean, **env})


def default_storage_from(env: dict[str, str]) -> dict:
    result = settings_from(env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def s3_storage_setting(s3_endpoint, tmp_path_factory) -> dict:
    """STORAGES["default"] as the settings make it from a deployment's environment."""
    return default_storage_from(
        {
            **S3_ENVIRONMENT,
            "VAR_DIR": str(tmp_path_factory.mktemp("var")),
            "AWS_STORAGE_BUCKET_NAME": "csm-media",
            "AWS_S3_ENDPOINT_URL": s3_endpoint,
        }
    )


class Bucket:
    def __init__(self, endpoint: str, name: str, location: str = "") -> None:
        # Deferred: boto3 loads only when the S3 tests run.
        import boto3

        self.name = name
        self.prefix = f"{location}/" if location else ""
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=S3_ENVIRONMENT["AWS_S3_REGION_NAME"],
            aws_access_key_id=S3_ENVIRONMENT["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"],
        )
        self.client.create_bucket(Bucket=name)

    def keys(self) -> list[str]:
        """Every object's key in the bucket (whole keys, location prefix included)."""
        listing = self.client.list_objects_v2(Bucket=self.name)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def put(self, key: str, data: bytes = b"RIFF") -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=data)


def use_bucket(settings, storage_setting: dict, endpoint: str, *, location: str = "") -> Bucket:
    """A fresh bucket of this test's own, made the default storage (as the settings made it)."""
    bucket = Bucket(endpoint, f"csm-{uuid.uuid4().hex[:12]}", location)
    options = {**storage_setting["OPTIONS"], "bucket_name": bucket.name, "location": location}
    settings.STORAGES = {**settings.STORAGES, "default": {**storage_setting, "OPTIONS": options}}
    return bucket


@pytest.fixture
def bucket(settings, s3_storage_setting, s3_endpoint, media_root) -> Iterator[Bucket]:
    bucket = use_bucket(settings, s3_storage_setting, s3_endpoint)
    yield bucket
    # Nothing was ever written to local disk.
    assert not media_root.exists() or not any(media_root.rglob("*"))


# --- The settings --------------------------------------------------------------------------------


def test_the_settings_switch_the_default_storage_to_s3(tmp_path):
    # when a deployment names a bucket, an endpoint and credentials (the secret from a file)
    secret_file = tmp_path / "secret"
    secret_file.write_text("secret-from-file\n")
    env = {
        "VAR_DIR": str(tmp_path),
        "AWS_STORAGE_BUCKET_NAME": "voices-bucket",
        "AWS_S3_ENDPOINT_URL": "http://minio:9000",
        "AWS_S3_REGION_NAME": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "key-id",
        "AWS_SECRET_ACCESS_KEY_FILE": str(secret_file),
        "AWS_LOCATION": "/install-a/",
        "AWS_S3_ADDRESSING_STYLE": "path",
    }
    storage = default_storage_from(env)

    # then files go to that bucket through django-storages, privately
    assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
    options = storage["OPTIONS"]
    assert options["bucket_name"] == "voices-bucket"
    assert options["endpoint_url"] == "http://minio:9000"
    assert options["region_name"] == "eu-west-1"
    assert (options["access_key"], options["secret_key"]) == ("key-id", "secret-from-file")
    assert options["location"] == "install-a"
    assert options["addressing_style"] == "path"
    assert options["default_acl"] is None
    assert options["querystring_auth"] is True
    assert options["file_overwrite"] is False

    # and without a bucket, or with STORAGE_BACKEND=filesystem, they stay on local disk
    local = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    assert default_storage_from({"VAR_DIR": str(tmp_path)}) == local
    assert default_storage_from({**env, "STORAGE_BACKEND": "filesystem"}) == local


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"STORAGE_BACKEND": "s3"}, "AWS_STORAGE_BUCKET_NAME"),
        ({"STORAGE_BACKEND": "gcs"}, "STORAGE_BACKEND"),
        (
            {"AWS_STORAGE_BUCKET_NAME": "b", "AWS_S3_ENDPOINT_URL": "minio:9000"},
            "AWS_S3_ENDPOINT_URL",
        ),
        ({"AWS_STORAGE_BUCKET_NAME": "b", "AWS_S3_ADDRESSING_STYLE": "dns"}, "AWS_S3_ADDRESSING"),
    ],
)
def test_bad_storage_settings_stop_start_up_naming_the_variable(tmp_path, env, named):
    result = settings_from({"VAR_DIR": str(tmp_path), **env})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr.strip().splitlines()[-1]


# --- A voice's life in the bucket ----------------------------------------------------------------


def test_a_cloned_voice_lives_in_the_bucket_is_heard_from_it_and_goes_with_the_voice(
    bucket, api, client, alice, admin_user, short_speech
):
    # when alice clones a voice
    response = clone(api)

    # then its reference is an object in the bucket, and the upload that waited for the job is
    # gone from it
    assert response.status_code == 200, response.text
    body = response.json()
    voice = Voice.objects.get(id=body["id"])
    key = f"voices/{voice.id}/reference.wav"
    assert voice.reference_audio.name == key
    assert bucket.keys() == [key]
    stored = bucket.get(key)
    assert decode_audio(stored, sample_rate=RATE, max_seconds=60).size == body["sample_count"]
    assert IngestJob.objects.get().input_audio.name == ""

    # and the web UI's player gets it from the bucket, whole and in byte ranges
    client.force_login(alice)
    url = f"/voice-cloning/voices/{voice.id}/audio"
    whole = client.get(url)
    assert whole.status_code == 200
    assert whole.content == stored
    part = client.get(url, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.content == stored[100:1100]
    assert part["Content-Range"] == f"bytes 100-1099/{len(stored)}"

    # and its waveform is drawn from it
    assert voice_waveform(voice).startswith("M")

    # and staff hear it in the admin
    client.force_login(admin_user)
    admin_audio = client.get(reverse("admin:voices_voice_audio", args=[voice.id]))
    assert admin_audio.status_code == 200
    assert b"".join(admin_audio.streaming_content) == stored

    # and CSM reads it as the voice's reference: speech in the cloned voice comes back
    speech = api.post(
        "/v1/audio/speech",
        json={
            "model": "csm-1b",
            "voice": body["id"],
            "input": "Good evening.",
            "seed": 1,
            "response_format": "wav",
        },
    )
    assert speech.status_code == 200, speech.text
    assert decode_audio(speech.content, sample_rate=RATE, max_seconds=60).size > 0
    preview = api.post(f"/v1/voice-cloning/voices/{voice.id}/preview", json={"text": "Hello."})
    assert preview.status_code == 200, preview.text

    # when alice deletes the voice
    deleted = api.delete(f"/v1/voice-cloning/voices/{voice.id}")

    # then its object is gone from the bucket
    assert deleted.status_code == 200, deleted.text
    assert bucket.keys() == []


def test_the_upload_of_a_failed_job_is_removed_from_the_bucket(bucket, api, whisper_model):
    # when alice clones without a transcript, and Whisper (the tiny random checkpoint) hears no
    # usable speech in the audio that the job read back from the bucket
    response = clone(api, transcript=None)

    # then the job failed, and neither its upload nor any voice is left in the bucket
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "no_usable_speech"
    assert IngestJob.objects.get().status == IngestJob.Status.FAILED
    assert bucket.keys() == []


def test_a_consent_recording_is_stored_in_the_bucket_and_deleted_with_its_row(bucket, api):
    created = api.post(
        "/v1/audio/voice_consents",
        data={"name": "Alice", "language": "en-US"},
        files={"recording": ("consent.wav", sample_wav(), "audio/wav")},
    )
    assert created.status_code == 200, created.text
    consent = VoiceConsent.objects.get(id=created.json()["id"])
    assert bucket.keys() == [consent.recording.name]
    assert bucket.get(consent.recording.name) == sample_wav()

    deleted = api.delete(f"/v1/audio/voice_consents/{consent.id}")
    assert deleted.status_code == 200, deleted.text
    assert bucket.keys() == []


# --- reap_orphans on the bucket ------------------------------------------------------------------


def _reap(*args: str) -> str:
    out = StringIO()
    call_command("reap_orphans", *args, stdout=out)
    return out.getvalue()


def test_reap_orphans_works_on_the_bucket(settings, s3_storage_setting, s3_endpoint, alice):
    # given a bucket shared with another install (this one's keys under its AWS_LOCATION), a
    # stored voice, a row whose object is gone, and objects no row points at
    bucket = use_bucket(settings, s3_storage_setting, s3_endpoint, location="install-a")
    kept = voice_store(
        voice=Voice(owner=alice, name="kept", kind=Voice.Kind.CLONED, source=Voice.Source.UPLOAD),
        reference_wav=sample_wav(),
    )
    lost = Voice.objects.create(
        owner=alice,
        name="lost",
        kind=Voice.Kind.CLONED,
        source=Voice.Source.UPLOAD,
        reference_audio=f"voices/{uuid.uuid4()}/reference.wav",
    )
    orphans = [
        f"install-a/voices/{uuid.uuid4()}/reference.wav",
        f"install-a/voices/{uuid.uuid4()}/original",
        "install-a/consents/cons_gone/recording",
        f"install-a/ingest/{uuid.uuid4()}/input",
    ]
    for key in orphans:
        bucket.put(key, b"x" * 10)
    others = ["install-a/elsewhere/file.bin", "install-b/voices/someone/reference.wav"]
    for key in others:
        bucket.put(key)
    kept_key = f"install-a/{kept.reference_audio.name}"
    assert bucket.keys() == sorted([kept_key, *orphans, *others])

    # when the reaper runs with the usual grace period, the fresh orphans are only counted
    output = _reap()
    assert "0 orphan file(s) removed" in output
    assert "4 younger than 3600 s kept" in output
    assert bucket.keys() == sorted([kept_key, *orphans, *others])

    # when it runs without one (a dry run first)
    dry = _reap("--dry-run", "--grace-seconds", "0")
    assert "4 orphan file(s) would be removed (40 bytes)" in dry
    assert len(bucket.keys()) == 1 + len(orphans) + len(others)
    output = _reap("--grace-seconds", "0")

    # then exactly the orphans are gone, the row without its object is reported, and nothing
    # outside this install's folders is touched
    assert "4 orphan file(s) removed (40 bytes)" in output
    assert f"missing file for Voice {lost.pk} reference_audio" in output
    assert "1 row(s) with a missing file" in output
    assert bucket.keys() == sorted([kept_key, *others])
    assert default_storage.exists(kept.reference_audio.name)
