"""POST /v1/voice-cloning/clone: a voice from an uploaded recording, in the original server's
shape; the consent it needs; what is refused before any job exists, and what fails in its job.

The recordings are made here (tests/support/audio.py): eSpeak NG speech at 24 kHz with pauses,
leading and trailing silence and a little noise, encoded to the formats callers upload. The
clones that must end in a voice give their transcript.
"""

import datetime

import httpx
import pytest

from ingest.models import IngestJob
from tests.support.audio import (
    RATE,
    TRANSCRIPT,
    UPLOAD_FORMATS,
    decoded,
    encoded,
    recording,
    sample_wav,
    silence,
    spoken,
)
from tests.support.cloning import (
    CLONED_VOICE_KEYS,
    assert_failed_in_job,
    assert_refused_before_any_job,
    clone,
    error_of,
    loopback_http_server,
)
from tests.support.storage import stored_files
from voices.models import Voice

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]


@pytest.mark.parametrize("fmt", list(UPLOAD_FORMATS))
def test_clone_answers_with_the_voice_in_the_original_servers_shape(
    api, alice, media_root, settings, fmt
):
    # given a recording in a format callers upload
    filename, content_type, _ = UPLOAD_FORMATS[fmt]
    audio = encoded(recording(), fmt)

    # when alice clones it with a transcript
    response = clone(api, audio=audio, filename=filename, content_type=content_type)

    # then the voice comes back with exactly the original server's fields
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == CLONED_VOICE_KEYS
    assert body["name"] == "narrator"
    assert body["description"] == "Reads the evening news."
    created = datetime.datetime.fromisoformat(body["created_at"])
    assert created.tzinfo is not None
    assert isinstance(body["speaker_id"], int)
    # The reference is the cleaned speech: shorter than the recording, within the limit.
    seconds = recording().size / RATE
    assert 3.0 <= body["audio_duration"] < seconds
    assert body["audio_duration"] <= settings.VOICE_REFERENCE_SECONDS
    assert body["sample_count"] == pytest.approx(body["audio_duration"] * RATE, abs=1)

    # and the voice is stored with its reference, transcript and the job that made it
    voice = Voice.objects.get(id=body["id"])
    assert voice.owner == alice
    assert voice.kind == Voice.Kind.CLONED
    assert voice.source == Voice.Source.UPLOAD
    assert voice.reference_text == TRANSCRIPT
    assert not voice.is_public
    assert stored_files(media_root) == [f"voices/{voice.id}/reference.wav"]
    reference = decoded((media_root / voice.reference_audio.name).read_bytes())
    assert reference.size == body["sample_count"]
    job = IngestJob.objects.get()
    assert (job.status, job.stage, job.progress, job.voice_id) == (
        "succeeded",
        "done",
        100,
        voice.id,
    )
    assert job.kind == IngestJob.Kind.UPLOAD
    assert not job.input_audio


def test_clone_records_who_attested_consent_and_when(api, alice, cloned):
    # given alice cloned a voice with consent=true (the fixture)
    voice = Voice.objects.get(id=cloned["id"])
    job = IngestJob.objects.get()

    # then the voice says who attested the right to clone it, when and how
    assert voice.consent_by == alice
    assert voice.consent_at == job.created
    assert voice.consent_method == "attested"
    assert voice.consent_recording is None


def test_keeping_originals_stores_the_upload_beside_the_reference(api, media_root, settings):
    # given the server keeps originals
    settings.VOICE_KEEP_ORIGINALS = True

    # when a voice is cloned
    response = clone(api)

    # then the upload is kept, byte for byte, under the voice's own key
    assert response.status_code == 200, response.text
    voice_id = response.json()["id"]
    assert stored_files(media_root) == [
        f"voices/{voice_id}/original",
        f"voices/{voice_id}/reference.wav",
    ]
    assert (media_root / f"voices/{voice_id}/original").read_bytes() == sample_wav()


@pytest.mark.parametrize("consent", [None, "", "false"])
def test_clone_without_consent_is_refused(api, media_root, consent):
    # when alice clones without attesting consent
    response = clone(api, consent=consent)

    # then nothing happens and she is told what to send
    error = assert_refused_before_any_job(response, "consent_required", media_root)
    assert error["param"] == "consent"
    assert "consent=true" in error["message"]


def test_consent_can_be_relaxed_for_single_user_installs(api, settings, media_root):
    # given an install that does not ask for consent
    settings.VOICE_REQUIRE_CONSENT = False

    # when a voice is cloned without it
    response = clone(api, consent=None)

    # then the voice is made, and says that consent was not required
    assert response.status_code == 200, response.text
    voice = Voice.objects.get(id=response.json()["id"])
    assert voice.consent_method == "not_required"


def test_an_unknown_consent_id_is_refused(api, media_root):
    response = clone(api, consent="cons_0000000000000000")

    error = assert_refused_before_any_job(response, "consent_not_found", media_root)
    assert error["param"] == "consent"
    assert "cons_0000000000000000" in error["message"]


PLAYLIST = b"#EXTM3U\n#EXTINF:10,clip\nhttp://127.0.0.1:9/clip.wav\n"


HLS = (
    b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
    b"#EXTINF:10.0,\nhttp://169.254.169.254/latest/meta-data/\n#EXT-X-ENDLIST\n"
)


CONCAT = b"ffconcat version 1.0\nfile '/etc/passwd'\n"


@pytest.mark.parametrize(
    ("filename", "content", "content_type", "code"),
    [
        (
            "notes.txt",
            b"These are my notes, not a recording.\n" * 20,
            "text/plain",
            "unsupported_format",
        ),
        ("sample.wav", b"", "audio/wav", "empty_file"),
        ("list.m3u", PLAYLIST, "audio/x-mpegurl", "unsupported_format"),
        ("stream.m3u8", HLS, "application/vnd.apple.mpegurl", "unsupported_format"),
        ("concat.wav", CONCAT, "audio/wav", "unsupported_format"),
        ("page.html", b"<!doctype html><title>x</title>", "text/html", "unsupported_format"),
    ],
    ids=["text", "empty", "m3u-playlist", "hls-playlist", "ffconcat-script", "html"],
)
def test_files_that_are_not_audio_are_refused_before_any_job(
    api, media_root, filename, content, content_type, code
):
    # when alice uploads something that is not a recording
    response = clone(api, audio=content, filename=filename, content_type=content_type)

    # then she is told at once, and nothing is stored or queued
    error = assert_refused_before_any_job(response, code, media_root)
    assert error["param"] == "audio_file"


def test_a_playlist_is_never_followed(api, media_root):
    """The playlist points at a loopback server: refusing it must not fetch anything."""
    requests: list[str] = []
    with loopback_http_server(requests) as base:
        playlist = f"#EXTM3U\n#EXTINF:5,clip\n{base}/clip.wav\n".encode()
        response = clone(api, audio=playlist, filename="clip.m3u", content_type="audio/x-mpegurl")

    assert_refused_before_any_job(response, "unsupported_format", media_root)
    assert requests == []


def test_an_oversize_upload_is_refused_before_any_job(api, media_root, settings):
    # given a small upload limit
    settings.VOICE_UPLOAD_MAX_BYTES = 64 * 1024
    assert len(sample_wav()) > settings.VOICE_UPLOAD_MAX_BYTES

    # when alice uploads a larger recording
    response = clone(api)

    # then it is refused with the limit in the message
    error = assert_refused_before_any_job(response, "file_too_large", media_root)
    assert error["param"] == "audio_file"
    assert "larger than" in error["message"]


def test_a_truncated_recording_fails_its_job_with_a_clear_message(api, media_root):
    # given a FLAC file cut off after a third of its bytes
    whole = encoded(recording(), "flac")
    truncated = whole[: len(whole) // 3]

    # when alice uploads it
    response = clone(api, audio=truncated, filename="sample.flac", content_type="audio/flac")

    # then the job that tried to decode it failed, and says so
    error = assert_failed_in_job(response, "invalid_audio", media_root)
    assert "damaged or truncated" in error["message"]
    assert error["param"] == "audio_file"


def test_a_silent_recording_fails_its_job(api, media_root):
    # given five seconds of digital silence, a valid WAV file
    response = clone(api, audio=encoded(silence(5.0)))

    # then the job fails with "silent", and no voice or file is left
    error = assert_failed_in_job(response, "silent", media_root)
    assert "silent" in error["message"]


def test_a_recording_with_too_little_speech_fails_its_job(api, media_root, settings):
    # given about a second of speech in four seconds of recording
    audio = recording(("Hello there.",), lead=1.5)
    assert spoken("Hello there.").size < settings.VOICE_MIN_SPEECH_SECONDS * RATE

    # when it is uploaded
    response = clone(api, audio=encoded(audio), transcript="Hello there.")

    # then the caller learns how much speech was found and how much is needed
    error = assert_failed_in_job(response, "too_little_speech", media_root)
    assert f"at least {settings.VOICE_MIN_SPEECH_SECONDS:g} seconds" in error["message"]


def test_a_transcript_with_more_audio_than_a_reference_holds_is_refused(api, media_root, settings):
    # given a limit on the reference shorter than the recording's speech
    settings.VOICE_REFERENCE_SECONDS = 3.0

    # when the recording comes with its transcript (which cannot be cut to fit)
    response = clone(api)

    # then the caller is told to send less audio or no transcript
    error = assert_failed_in_job(response, "transcript_audio_too_long", media_root)
    assert error["param"] == "transcript"
    assert "leave the transcript out" in error["message"]


def test_a_taken_name_is_refused_before_any_job(api, cloned, media_root):
    # given alice has a voice named "narrator" (the fixture)
    files_before = stored_files(media_root)

    # when she clones another voice with the same name
    response = clone(api, name="narrator")

    # then she is told at once, and nothing new is queued or stored
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["code"], error["param"]) == ("name_taken", "name")
    assert IngestJob.objects.count() == 1
    assert Voice.objects.filter(kind=Voice.Kind.CLONED).count() == 1
    assert stored_files(media_root) == files_before


def test_another_user_may_use_the_same_name(api, cloned, live_server_url, bob_key, media_root):
    with httpx.Client(
        base_url=live_server_url, headers={"Authorization": f"Bearer {bob_key}"}, timeout=60
    ) as as_bob:
        response = clone(as_bob, name="narrator")

    assert response.status_code == 200, response.text
    assert response.json()["id"] != cloned["id"]


@pytest.mark.parametrize(
    ("name", "code"),
    [("", "empty_string"), ("   ", "empty_string"), ("x" * 65, "string_above_max_length")],
)
def test_a_name_is_required_and_bounded(api, media_root, name, code):
    response = clone(api, name=name)

    assert response.status_code == 400, response.text
    assert (error_of(response)["param"], error_of(response)["code"]) == ("name", code)
    assert IngestJob.objects.count() == 0
    assert stored_files(media_root) == []


def test_a_clone_without_a_file_names_the_missing_field(api, media_root):
    response = api.post("/v1/voice-cloning/clone", data={"name": "narrator", "consent": "true"})

    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["param"], error["code"]) == ("audio_file", "missing_required_parameter")
    assert IngestJob.objects.count() == 0


def test_cloning_needs_an_api_key(live_server_url, media_root):
    with httpx.Client(base_url=live_server_url, timeout=60) as anonymous:
        response = clone(anonymous)

    assert response.status_code == 401, response.text
    assert IngestJob.objects.count() == 0
    assert stored_files(media_root) == []
