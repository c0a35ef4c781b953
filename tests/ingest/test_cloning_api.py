"""Voice cloning end to end, through the live server: real recordings in, voices that speak out.

The recordings are made here: eSpeak NG speech at 24 kHz with pauses, leading and trailing
silence and a little noise, encoded to the formats callers upload. Transcription uses the tiny
random Whisper checkpoint: it hears nothing sensible (one 20 ms segment of gibberish), so the
tests that must end in a voice give the transcript, and the transcribed path is checked for
what it does with such a model (no usable speech) and, with a stand-in transcriber that returns
real timestamps, for which windows it keeps. CSM is the tiny random checkpoint: the tests
check that a cloned voice is accepted wherever voices are and that audio comes back, not how it
sounds.
"""

import contextlib
import datetime
import functools
import http.server
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import openai
import pytest
from scipy.signal import resample_poly

from ingest.models import IngestJob
from speech.audio.decode import decode_audio
from speech.audio.encoder import StreamingEncoder
from speech.audio.formats import FORMATS
from speech.engines.base import SynthesisParams, VoiceSpec
from speech.engines.registry import engine_get
from voices.models import Voice, VoiceConsent

pytestmark = pytest.mark.django_db(transaction=True)

RATE = 24000
ESPEAK_RATE = 22050
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A gentle breeze moved slowly through the tall grass by the river.",
)
TRANSCRIPT = " ".join(SENTENCES)
CLONED_VOICE_KEYS = {
    "id",
    "name",
    "description",
    "created_at",
    "audio_duration",
    "sample_count",
    "speaker_id",
}
# Upload formats: the file extension and MIME type a client would send, and the encoder.
UPLOAD_FORMATS = {
    "wav": ("sample.wav", "audio/wav", "wav"),
    "mp3": ("sample.mp3", "audio/mpeg", "mp3"),
    "flac": ("sample.flac", "audio/flac", "flac"),
    "ogg": ("sample.ogg", "audio/ogg", "opus"),
}


# --- Making recordings ----------------------------------------------------------------------------


@functools.cache
def _spoken(text: str) -> np.ndarray:
    chunks = engine_get("espeak").synthesize(
        [text], VoiceSpec(name="alloy", standard="alloy"), SynthesisParams()
    )
    speech = np.concatenate(list(chunks))
    return resample_poly(speech, 160, 147).astype(np.float32)  # 22050 Hz → 24000 Hz


def spoken(text: str) -> np.ndarray:
    """eSpeak NG saying `text`, mono float32 at 24 kHz."""
    return _spoken(text).copy()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.float32)


def recording(
    sentences: tuple[str, ...] = SENTENCES,
    *,
    lead: float = 1.0,
    pause: float = 0.6,
    noise: float = 0.003,
    seed: int = 0,
) -> np.ndarray:
    """Sentences with silence before, between and after them, and steady background noise."""
    pieces = [silence(lead)]
    for sentence in sentences:
        pieces += [spoken(sentence), silence(pause)]
    pieces.append(silence(lead))
    audio = np.concatenate(pieces)
    rng = np.random.default_rng(seed)
    audio += (noise * rng.standard_normal(audio.size)).astype(np.float32)
    return audio


def encoded(samples: np.ndarray, fmt: str = "wav") -> bytes:
    encoder = StreamingEncoder(FORMATS[UPLOAD_FORMATS.get(fmt, (None, None, fmt))[2]], RATE)
    try:
        return encoder.encode(samples) + encoder.finish()
    finally:
        encoder.close()


@functools.cache
def sample_wav() -> bytes:
    """The usual clean sample: two sentences, about six seconds of speech."""
    return encoded(recording())


# --- Talking to the server ------------------------------------------------------------------------


def clone(
    client: httpx.Client,
    *,
    name: str = "narrator",
    audio: bytes | None = None,
    filename: str = "sample.wav",
    content_type: str = "audio/wav",
    transcript: str | None = TRANSCRIPT,
    description: str = "Reads the evening news.",
    consent: str | None = "true",
    prefix: str = "/v1",
) -> httpx.Response:
    data = {"name": name, "description": description}
    if transcript is not None:
        data["transcript"] = transcript
    if consent is not None:
        data["consent"] = consent
    files = {"audio_file": (filename, sample_wav() if audio is None else audio, content_type)}
    return client.post(f"{prefix}/voice-cloning/clone", data=data, files=files)


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def stored_files(root: Path) -> list[str]:
    """Every file in storage, relative to MEDIA_ROOT."""
    if not root.exists():
        return []
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def decoded(data: bytes) -> np.ndarray:
    return decode_audio(data, sample_rate=RATE, max_seconds=60)


def assert_refused_before_any_job(response: httpx.Response, code: str, media_root: Path) -> dict:
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == code
    assert error["message"]
    assert IngestJob.objects.count() == 0
    assert not Voice.objects.filter(kind=Voice.Kind.CLONED).exists()
    assert stored_files(media_root) == []
    return error


def assert_failed_in_job(response: httpx.Response, code: str, media_root: Path) -> dict:
    """A 400 from a job that ran and failed: the job says why, nothing else is left."""
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == code
    job = IngestJob.objects.get()
    assert job.status == IngestJob.Status.FAILED
    assert job.error_code == code
    assert job.error == error["message"]
    assert job.voice is None
    assert not Voice.objects.filter(kind=Voice.Kind.CLONED).exists()
    # The waiting upload went with the failed job.
    assert stored_files(media_root) == []
    return error


@pytest.fixture(autouse=True)
def jobs_run_in_process(monkeypatch) -> None:
    """Jobs run in the server's process, as in the embedded default (CI sets REDIS_URL, which
    otherwise sends them to a broker that no worker reads here)."""
    from csmsite.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


@pytest.fixture
def cloned(api, media_root) -> dict:
    """Alice's voice "narrator", cloned through the API from the usual sample."""
    response = clone(api)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def short_speech(settings, csm_engine) -> None:
    """CSM answers with at most half a second of audio (the preview route has no length field)."""
    settings.SPEECH_MAX_AUDIO_SECONDS = 0.5


# --- Cloning from an upload -----------------------------------------------------------------------


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


def test_cloned_voice_speaks_through_the_speech_api_and_the_openai_sdk(
    api, openai_client, cloned, short_speech
):
    # when alice asks for speech in her cloned voice, by id, over plain HTTP
    response = api.post(
        "/v1/audio/speech",
        json={
            "model": "csm-1b",
            "voice": cloned["id"],
            "input": "Good evening.",
            "response_format": "wav",
            "seed": 1,
        },
    )

    # then audio comes back
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert decoded(response.content).size > 0

    # and the official SDK can name the voice as {"id": ...} and as a plain id
    for voice in ({"id": cloned["id"]}, cloned["id"]):
        speech = openai_client.audio.speech.create(
            model="csm-1b", voice=voice, input="Good evening.", response_format="wav"
        )
        assert decoded(speech.content).size > 0


def test_espeak_cannot_speak_a_cloned_voice(api, cloned):
    response = api.post(
        "/v1/audio/speech", json={"model": "espeak", "voice": cloned["id"], "input": "Hello."}
    )

    assert response.status_code == 400, response.text
    assert (error_of(response)["param"], error_of(response)["code"]) == (
        "voice",
        "voice_not_supported",
    )


def test_cloned_voice_is_listed_by_both_voice_lists(api, cloned):
    # when alice lists her cloned voices, and all voices
    cloning = api.get("/v1/voice-cloning/voices")
    everything = api.get("/v1/audio/voices")

    # then the cloned voice is in both, in each list's own shape
    assert cloning.status_code == 200, cloning.text
    assert cloning.json() == {"voices": [cloned]}
    assert everything.status_code == 200, everything.text
    listed = [voice for voice in everything.json()["voices"] if voice["id"] == cloned["id"]]
    assert listed == [
        {"id": cloned["id"], "name": "narrator", "kind": "cloned", "public": False, "owned": True}
    ]


@pytest.mark.parametrize("response_format", ["wav", "mp3"])
def test_preview_speaks_in_the_cloned_voice(api, cloned, short_speech, response_format):
    # when alice previews her voice
    response = api.post(
        f"/v1/voice-cloning/voices/{cloned['id']}/preview",
        json={"text": "This is what I sound like.", "response_format": response_format},
    )

    # then she hears it in the format she asked for
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == FORMATS[response_format].content_type
    assert decoded(response.content).size > 0


def test_preview_without_a_body_uses_the_default_text(api, cloned, short_speech):
    response = api.post(f"/v1/voice-cloning/voices/{cloned['id']}/preview")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/mpeg"


def test_generate_speaks_a_text_in_the_cloned_voice(api, cloned, short_speech):
    # when alice generates speech with the original server's route and its field names
    response = api.post(
        "/v1/voice-cloning/generate",
        json={
            "voice_id": cloned["id"],
            "text": "The meeting starts at nine.",
            "response_format": "flac",
            "temperature": 0.7,
        },
    )

    # then the audio comes back in that format
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/flac"
    assert decoded(response.content).size > 0


def test_deleting_a_cloned_voice_removes_its_row_and_its_file(api, cloned, media_root):
    # given the voice's reference is in storage
    assert stored_files(media_root) == [f"voices/{cloned['id']}/reference.wav"]

    # when alice deletes it
    response = api.delete(f"/v1/voice-cloning/voices/{cloned['id']}")

    # then it is gone: the row, the file, and from the list
    assert response.status_code == 200, response.text
    assert response.json() == {"id": cloned["id"], "object": "audio.voice.deleted", "deleted": True}
    assert not Voice.objects.filter(id=cloned["id"]).exists()
    assert stored_files(media_root) == []
    assert api.get("/v1/voice-cloning/voices").json() == {"voices": []}
    again = api.delete(f"/v1/voice-cloning/voices/{cloned['id']}")
    assert again.status_code == 404
    assert error_of(again)["code"] == "voice_not_found"


def test_the_api_v1_prefix_serves_every_cloning_route(api, media_root, short_speech):
    # when alice clones, lists, previews, generates with and deletes a voice under /api/v1
    made = clone(api, prefix="/api/v1")
    assert made.status_code == 200, made.text
    voice = made.json()
    assert set(voice) == CLONED_VOICE_KEYS

    listed = api.get("/api/v1/voice-cloning/voices")
    preview = api.post(
        f"/api/v1/voice-cloning/voices/{voice['id']}/preview", json={"response_format": "wav"}
    )
    generated = api.post(
        "/api/v1/voice-cloning/generate",
        json={"voice_id": voice["id"], "text": "Hello there.", "response_format": "wav"},
    )
    job = IngestJob.objects.get()
    job_state = api.get(f"/api/v1/voice-cloning/jobs/{job.id}")
    deleted = api.delete(f"/api/v1/voice-cloning/voices/{voice['id']}")

    # then every route answers as under /v1
    assert listed.json() == {"voices": [voice]}
    assert preview.status_code == 200, preview.text
    assert decoded(preview.content).size > 0
    assert generated.status_code == 200, generated.text
    assert decoded(generated.content).size > 0
    assert job_state.status_code == 200, job_state.text
    assert job_state.json()["voice_id"] == voice["id"]
    assert deleted.status_code == 200, deleted.text
    assert not Voice.objects.filter(id=voice["id"]).exists()
    assert stored_files(media_root) == []


# --- Consent --------------------------------------------------------------------------------------


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


# --- Refusals -------------------------------------------------------------------------------------

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


# --- Transcription --------------------------------------------------------------------------------


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


@pytest.fixture
def stand_in_whisper(monkeypatch) -> list[np.ndarray]:
    """A stand-in for a real Whisper model, which the tests cannot have: it reports the audio
    it is given as consecutive two-second segments labelled w0, w1, ... (the reference text
    then says which windows were kept). Returns the audio it was asked to transcribe."""
    from ingest import transcribe as transcribe_module
    from ingest.reference import TranscriptSegment

    heard: list[np.ndarray] = []

    def transcribe(samples: np.ndarray, sample_rate: int = RATE):
        heard.append(samples)
        step = 2 * sample_rate
        starts = range(0, max(samples.size - sample_rate, 1), step)
        segments = [
            TranscriptSegment(
                start=start / sample_rate,
                end=min(start + step, samples.size) / sample_rate,
                text=f"w{index}",
            )
            for index, start in enumerate(starts)
        ]
        return transcribe_module.Transcript(
            text=" ".join(s.text for s in segments), segments=segments, language="en"
        )

    monkeypatch.setattr(transcribe_module, "transcribe", transcribe)
    return heard


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


# --- Other users ----------------------------------------------------------------------------------


@pytest.fixture
def as_bob(live_server_url, bob_key) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=live_server_url, headers={"Authorization": f"Bearer {bob_key}"}, timeout=60
    ) as client:
        yield client


def test_another_user_cannot_see_or_use_a_private_cloned_voice(
    api, cloned, as_bob, short_speech, media_root
):
    missing = str(uuid.uuid4())

    def attempts(voice_id: str) -> list[httpx.Response]:
        return [
            as_bob.post(f"/v1/voice-cloning/voices/{voice_id}/preview", json={}),
            as_bob.post(
                "/v1/voice-cloning/generate", json={"voice_id": voice_id, "text": "Hello."}
            ),
            as_bob.post(
                "/v1/audio/speech",
                json={"model": "csm-1b", "voice": voice_id, "input": "Hello."},
            ),
            as_bob.delete(f"/v1/voice-cloning/voices/{voice_id}"),
        ]

    # when bob tries alice's voice, and a voice that does not exist
    hers = attempts(cloned["id"])
    nobodys = attempts(missing)

    # then alice's voice is indistinguishable from no voice at all (404 on the voice's own
    # routes; the routes that speak answer an unknown voice with 400, as OpenAI's speech does)
    assert [r.status_code for r in hers] == [404, 400, 400, 404], [r.text for r in hers]
    for her, nobody in zip(hers, nobodys, strict=True):
        assert her.status_code == nobody.status_code, her.text
        assert error_of(her)["code"] == error_of(nobody)["code"]
        assert error_of(her)["message"] == error_of(nobody)["message"].replace(
            missing, cloned["id"]
        )
    assert as_bob.get("/v1/voice-cloning/voices").json() == {"voices": []}
    assert cloned["id"] not in {v["id"] for v in as_bob.get("/v1/audio/voices").json()["voices"]}
    # and it is still there for alice
    assert Voice.objects.filter(id=cloned["id"]).exists()
    assert stored_files(media_root) == [f"voices/{cloned['id']}/reference.wav"]


def test_another_user_cannot_read_a_job(api, cloned, as_bob):
    job = IngestJob.objects.get()

    mine = api.get(f"/v1/voice-cloning/jobs/{job.id}")
    theirs = as_bob.get(f"/v1/voice-cloning/jobs/{job.id}")
    nobodys = as_bob.get(f"/v1/voice-cloning/jobs/{uuid.uuid4()}")

    assert mine.status_code == 200, mine.text
    assert theirs.status_code == nobodys.status_code == 404
    assert error_of(theirs)["code"] == error_of(nobodys)["code"] == "job_not_found"


def test_job_state_has_the_documented_shape(api, cloned):
    job = IngestJob.objects.get()

    response = api.get(f"/v1/voice-cloning/jobs/{job.id}")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": str(job.id),
        "object": "ingest.job",
        "kind": "upload",
        "status": "succeeded",
        "stage": "done",
        "progress": 100,
        "error": None,
        "voice_id": cloned["id"],
        "created_at": int(job.created.timestamp()),
    }
    assert api.get("/v1/voice-cloning/jobs/not-a-uuid").status_code == 404


# --- YouTube --------------------------------------------------------------------------------------


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str]
    body: bytes = b""
    content_type: str = "text/plain"

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def loopback_http_server(
    requests: list[str], *, body: bytes = b"", content_type: str = "text/plain"
) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that records the paths it is asked for; yields its base URL."""
    handler = type(
        "Handler",
        (_RecordingHandler,),
        {"requests": requests, "body": body, "content_type": content_type},
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


YOUTUBE_ROUTES = ["/v1/voice-cloning/clone-from-youtube", "/v1/audio/speech/voice-cloning/youtube"]
REFUSED_URLS = [
    "http://127.0.0.1/x",
    "http://169.254.169.254/",
    "file:///etc/passwd",
    "https://youtube.com.evil.com/watch?v=x",
    "http://localhost/watch?v=x",
    "http://[::1]/x",
    "http://2130706433/x",
    "http://0x7f.1/x",
    "http://10.0.0.1/watch?v=x",
    "gopher://youtube.com/x",
    "https://user:pass@youtube.com/watch?v=x",
    "https://www.youtube.com:8443/watch?v=x",
]


@pytest.mark.parametrize("route", YOUTUBE_ROUTES)
@pytest.mark.parametrize("url", REFUSED_URLS)
def test_refused_links_are_answered_at_once_and_nothing_is_fetched(
    api, media_root, monkeypatch, route, url
):
    # given yt-dlp must never be started
    from ingest import download

    def no_download(*args, **kwargs):
        raise AssertionError("yt-dlp was started for a refused link")

    monkeypatch.setattr(download, "_GuardedYoutubeDL", no_download)

    # when alice asks for a clip from a link that is not an allowed public host
    response = api.post(
        route, json={"youtube_url": url, "voice_name": "clip", "consent": True, "duration": 30}
    )

    # then it is refused before any job exists
    error = assert_refused_before_any_job(response, "url_not_allowed", media_root)
    assert error["param"] == "youtube_url"


@pytest.mark.parametrize("route", YOUTUBE_ROUTES)
def test_a_refused_loopback_link_reaches_no_server(api, media_root, route):
    # given a server on loopback, which the link points at
    requests: list[str] = []
    with loopback_http_server(requests) as base:
        response = api.post(
            route,
            json={"youtube_url": f"{base}/watch?v=x", "voice_name": "clip", "consent": True},
        )

    # then the link is refused and the server never hears of it
    assert_refused_before_any_job(response, "url_not_allowed", media_root)
    assert requests == []


@pytest.mark.parametrize("route", YOUTUBE_ROUTES)
def test_a_clip_longer_than_ten_minutes_is_refused(api, media_root, route):
    response = api.post(
        route,
        json={
            "youtube_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "voice_name": "clip",
            "consent": True,
            "duration": 601,
        },
    )

    error = assert_refused_before_any_job(response, "duration_too_long", media_root)
    assert error["param"] == "duration"


def test_a_clip_longer_than_the_configured_limit_is_refused(api, media_root, settings):
    settings.YOUTUBE_MAX_DURATION_SECONDS = 60.0

    response = api.post(
        "/v1/voice-cloning/clone-from-youtube",
        json={
            "youtube_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "voice_name": "clip",
            "consent": True,
            "duration": 120,
        },
    )

    error = assert_refused_before_any_job(response, "duration_too_long", media_root)
    assert "60 seconds" in error["message"]


def test_a_youtube_clip_without_consent_is_refused(api, media_root):
    response = api.post(
        "/v1/voice-cloning/clone-from-youtube",
        json={"youtube_url": "https://www.youtube.com/watch?v=x", "voice_name": "clip"},
    )

    assert_refused_before_any_job(response, "consent_required", media_root)


# A whole YouTube clone, with real yt-dlp, against a video page on a loopback server. The server
# is reached as "media.test" through a resolver that maps that name to it, with the settings
# that tests/ingest/test_download.py widens: that host allowed, yt-dlp's generic extractor,
# loopback addresses. Everything else (no IP literals, no ports, the guard) is as in production.
MEDIA_HOST = "media.test"


def m4a(samples: np.ndarray, path: Path) -> bytes:
    """AAC in an MP4 container, one of the formats YouTube serves audio in."""
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("aac", rate=RATE, layout="mono")
        size = stream.codec_context.frame_size or 1024
        for offset in range(0, samples.size, size):
            chunk = np.pad(
                samples[offset : offset + size], (0, max(0, offset + size - samples.size))
            )
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = RATE
            frame.pts = offset
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path.read_bytes()


def video_page(seconds: float) -> bytes:
    """A page that describes its video in schema.org terms, as yt-dlp's generic extractor
    reads them (the duration reaches the download's checks, as YouTube's would)."""
    video = {
        "@context": "https://schema.org",
        "@type": "VideoObject",
        "name": "clip",
        "description": "someone speaking",
        "uploadDate": "2024-01-01",
        "thumbnailUrl": f"http://{MEDIA_HOST}/thumb.jpg",
        "contentUrl": f"http://{MEDIA_HOST}/clip.m4a",
        "encodingFormat": "audio/mp4",
        "duration": f"PT{round(seconds)}S",
    }
    script = f'<script type="application/ld+json">{json.dumps(video)}</script>'
    page = f"<!doctype html><html><head><title>clip</title></head><body>{script}</body></html>"
    return page.encode()


class _VideoSite(http.server.BaseHTTPRequestHandler):
    files: dict[str, tuple[bytes, str]]
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path not in self.files:
            self.send_error(404)
            return
        body, kind = self.files[self.path]
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def video_site(settings, monkeypatch, tmp_path) -> Iterator[list[str]]:
    """http://media.test/ serves /watch (a page for a speech recording) and /long (a page for
    a five-hour video); yields the paths the site was asked for."""
    from ingest import download

    audio = recording()
    requests: list[str] = []
    files = {
        "/watch": (video_page(audio.size / RATE), "text/html"),
        "/long": (video_page(5 * 3600), "text/html"),
        "/clip.m4a": (m4a(audio, tmp_path / "clip.m4a"), "audio/mp4"),
    }
    handler = type("Site", (_VideoSite,), {"files": files, "requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def resolve(host: str, service: int, family: int = 0, kind: int = 0, *rest: int) -> list:
        if host == MEDIA_HOST:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return socket.getaddrinfo(host, service, family, kind, 0, socket.AI_NUMERICHOST)

    validate, fetch = download.validate_source_url, download.download_audio
    monkeypatch.setattr(
        download, "validate_source_url", lambda url, resolver=None: validate(url, resolver=resolve)
    )
    monkeypatch.setattr(
        download, "download_audio", lambda url, **kwargs: fetch(url, **kwargs, resolver=resolve)
    )
    settings.YOUTUBE_ALLOWED_HOSTS = [MEDIA_HOST]
    settings.YOUTUBE_ALLOWED_EXTRACTORS = ["generic"]
    settings.YOUTUBE_ALLOW_LOOPBACK_FOR_TESTS = True
    try:
        yield requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_youtube_clip_becomes_a_voice(api, media_root, video_site):
    # when alice clones from a section of a video, through the documented alias
    response = api.post(
        "/v1/audio/speech/voice-cloning/youtube",
        json={
            "youtube_url": f"http://{MEDIA_HOST}/watch",
            "voice_name": "from-video",
            "start_time": 0,
            "duration": 60,
            "description": "From a video.",
            "transcript": TRANSCRIPT,
            "consent": True,
        },
    )

    # then the page and the audio were fetched, and the voice came back in the route's shape
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "voice_id",
        "name",
        "description",
        "created_at",
        "audio_duration",
        "sample_count",
    }
    assert (body["name"], body["description"]) == ("from-video", "From a video.")
    assert 3.0 <= body["audio_duration"] <= recording().size / RATE
    assert video_site[0] == "/watch"
    assert "/clip.m4a" in video_site
    voice = Voice.objects.get(id=body["voice_id"])
    assert voice.source == Voice.Source.YOUTUBE
    assert voice.source_url == f"http://{MEDIA_HOST}/watch"
    assert voice.reference_text == TRANSCRIPT
    job = IngestJob.objects.get()
    assert (job.kind, job.status) == ("youtube", "succeeded")
    # nothing but the reference is kept: the download lived in a temporary folder
    assert stored_files(media_root) == [f"voices/{voice.id}/reference.wav"]


@pytest.mark.parametrize(
    ("path", "start_time", "code", "words"),
    [
        ("/watch", 500, "start_after_end", "after the end"),
        ("/long", 0, "video_too_long", "the limit is 10800 seconds"),
        ("/missing", 0, "download_failed", "HTTP error 404"),
    ],
)
def test_a_youtube_clip_that_cannot_be_used_fails_its_job(
    api, media_root, video_site, path, start_time, code, words
):
    response = api.post(
        "/v1/voice-cloning/clone-from-youtube",
        json={
            "youtube_url": f"http://{MEDIA_HOST}{path}",
            "voice_name": "from-video",
            "start_time": start_time,
            "duration": 30,
            "transcript": TRANSCRIPT,
            "consent": True,
        },
    )

    error = assert_failed_in_job(response, code, media_root)
    assert words in error["message"]
    assert "/tmp" not in error["message"]
    # the video's checks come before its audio is fetched
    assert "/clip.m4a" not in video_site


# --- OpenAI's custom voices -----------------------------------------------------------------------


def consent_recording() -> tuple[str, bytes, str]:
    audio = recording(("I agree to have my voice cloned.",), lead=0.5)
    return ("consent.wav", encoded(audio), "audio/wav")


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
