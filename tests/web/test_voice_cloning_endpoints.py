"""The web UI's session endpoints, through Django's test client: the rules they share with the
API (login, CSRF, consent, ownership, visibility, request limits), byte ranges on stored audio,
and the Connect page. The browser tests drive the same endpoints through the page.
"""

import re

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse

from ingest.models import IngestJob
from tests.support.audio import sample_wav
from tests.support.voices import cloned_voice as stored_voice
from voices.models import Voice
from web.media import waveform_svg_path

# Transactional: the cloning endpoint starts its job on a thread of its own.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def as_alice(client: Client, alice) -> Client:
    client.force_login(alice)
    return client


def clone_form(**fields) -> dict:
    form = {
        "source": "upload",
        "name": "narrator",
        "transcript": "The quick brown fox jumps over the lazy dog.",
        "consent": "on",
    }
    form.update(fields)
    return {key: value for key, value in form.items() if value is not None}


def upload() -> object:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("sample.wav", sample_wav(), content_type="audio/wav")


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


# --- Getting in -----------------------------------------------------------------------------------


def test_the_root_sends_visitors_to_log_in_and_users_to_voice_cloning(client, alice):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/voice-cloning"

    client.force_login(alice)
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/voice-cloning"


@pytest.mark.parametrize(
    ("method", "name", "args"),
    [
        ("get", "voice-cloning", []),
        ("get", "connect", []),
        ("post", "ui-clone", []),
        ("get", "ui-job", ["00000000-0000-0000-0000-000000000000"]),
        ("get", "ui-voice-audio", ["00000000-0000-0000-0000-000000000000"]),
        ("post", "ui-voice-delete", ["00000000-0000-0000-0000-000000000000"]),
        ("post", "ui-speech", []),
        ("get", "ui-speech-audio", ["token"]),
    ],
)
def test_every_page_and_endpoint_needs_a_login(client, method, name, args):
    url = reverse(name, args=args)
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_posts_without_a_csrf_token_are_refused(alice):
    voice = stored_voice(alice, "narrator")
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    for url, data in (
        (reverse("ui-voice-delete", args=[voice.id]), {}),
        (reverse("ui-speech"), {"model": "tts-1", "voice": "alloy", "input": "Hi."}),
        (reverse("ui-clone"), clone_form(audio_file=upload())),
    ):
        assert client.post(url, data).status_code == 403, url

    assert Voice.objects.filter(id=voice.id).exists()
    assert IngestJob.objects.count() == 0


# --- Cloning --------------------------------------------------------------------------------------


def test_cloning_an_upload_answers_with_the_job(as_alice, alice):
    response = as_alice.post(reverse("ui-clone"), clone_form(audio_file=upload()))

    assert response.status_code == 202, response.content
    job = response.json()
    assert job["object"] == "ingest.job"
    # Jobs run in-process here: done by the time the answer comes.
    assert job["status"] == "succeeded"
    voice = Voice.objects.get(id=job["voice_id"])
    assert (voice.owner, voice.name, voice.consent_method) == (alice, "narrator", "attested")
    assert as_alice.get(reverse("ui-job", args=[job["id"]])).json() == job


def test_cloning_without_consent_is_refused_before_any_job(as_alice):
    response = as_alice.post(reverse("ui-clone"), clone_form(audio_file=upload(), consent=None))

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "consent_required"
    assert error["message"].startswith("Tick the consent box")
    assert IngestJob.objects.count() == 0


def test_consent_can_be_relaxed_for_single_user_installs(as_alice, settings):
    settings.VOICE_REQUIRE_CONSENT = False

    response = as_alice.post(reverse("ui-clone"), clone_form(audio_file=upload(), consent=None))

    assert response.status_code == 202, response.content
    assert Voice.objects.get().consent_method == "not_required"


def test_cloning_without_a_file_says_so(as_alice):
    response = as_alice.post(reverse("ui-clone"), clone_form())

    assert response.status_code == 400
    assert error_of(response) == {
        "message": "Choose an audio file to upload.",
        "type": "invalid_request_error",
        "param": "audio_file",
        "code": None,
    }


def test_a_youtube_clip_is_checked_and_its_errors_name_the_form_fields(as_alice):
    url_refused = as_alice.post(
        reverse("ui-clone"),
        clone_form(source="youtube", youtube_url="https://example.org/video", duration=""),
    )
    assert url_refused.status_code == 400
    assert error_of(url_refused)["param"] == "youtube_url"

    unnamed = as_alice.post(
        reverse("ui-clone"),
        clone_form(source="youtube", youtube_url="https://www.youtube.com/watch?v=x", name=""),
    )
    assert unnamed.status_code == 400
    assert error_of(unnamed)["param"] == "name"
    assert IngestJob.objects.count() == 0


def test_cloning_counts_against_the_users_request_limit(as_alice, settings):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 1

    first = as_alice.post(reverse("ui-clone"), clone_form())
    second = as_alice.post(reverse("ui-clone"), clone_form())

    assert first.status_code == 400
    assert second.status_code == 429
    assert error_of(second)["code"] == "rate_limit_exceeded"
    assert int(second["Retry-After"]) >= 1


def test_another_users_job_is_not_found(as_alice, bob):
    response = as_alice.post(reverse("ui-clone"), clone_form(audio_file=upload()))
    job_id = response.json()["id"]
    as_bob = Client()
    as_bob.force_login(bob)

    assert as_bob.get(reverse("ui-job", args=[job_id])).status_code == 404


# --- Voices ---------------------------------------------------------------------------------------


def test_only_the_owner_deletes_a_voice_and_a_private_one_is_not_found(as_alice, alice, bob):
    own = stored_voice(alice, "narrator")
    secret = stored_voice(bob, "bob's secret")
    shared = stored_voice(bob, "bob's public", public=True)

    def delete(voice: Voice):
        return as_alice.post(reverse("ui-voice-delete", args=[voice.id]))

    assert delete(secret).status_code == 404
    assert error_of(delete(shared))["code"] == "not_owner"
    assert delete(shared).status_code == 403
    assert delete(own).json() == {"id": str(own.id), "deleted": True}
    assert as_alice.get(reverse("ui-voice-delete", args=[shared.id])).status_code == 405
    assert list(Voice.objects.order_by("name").values_list("name", flat=True)) == [
        "bob's public",
        "bob's secret",
    ]


def test_the_page_lists_own_and_public_voices_but_not_other_private_ones(as_alice, alice, bob):
    stored_voice(alice, "narrator")
    stored_voice(bob, "bob's secret")
    stored_voice(bob, "bob's public", public=True)

    html = as_alice.get(reverse("voice-cloning")).content.decode()

    assert "narrator" in html
    assert "bob&#x27;s public" in html
    assert "secret" not in html


def test_a_name_with_markup_is_escaped_in_the_page(as_alice, alice):
    stored_voice(alice, "<img src=x onerror=alert(1)>")

    html = as_alice.get(reverse("voice-cloning")).content.decode()

    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_reference_audio_is_served_whole_and_in_byte_ranges(as_alice, alice):
    voice = stored_voice(alice, "narrator")
    url = reverse("ui-voice-audio", args=[voice.id])
    data = sample_wav()
    size = len(data)

    whole = as_alice.get(url)
    assert whole.status_code == 200
    assert whole["Accept-Ranges"] == "bytes"
    assert whole["Content-Type"] == "audio/wav"
    assert whole.content == data

    def ranged(header: str):
        return as_alice.get(url, headers={"Range": header})

    head = ranged("bytes=0-99")
    assert head.status_code == 206
    assert head["Content-Range"] == f"bytes 0-99/{size}"
    assert head.content == data[:100]
    rest = ranged("bytes=100-")
    assert (rest.status_code, rest.content) == (206, data[100:])
    tail = ranged("bytes=-10")
    assert tail["Content-Range"] == f"bytes {size - 10}-{size - 1}/{size}"
    assert tail.content == data[-10:]
    past_the_end = ranged(f"bytes={size}-")
    assert past_the_end.status_code == 416
    assert past_the_end["Content-Range"] == f"bytes */{size}"
    # Several ranges, or a malformed header, get the whole file.
    assert ranged("bytes=0-1,5-6").content == data
    assert ranged("bytes=9-3").status_code == 200


def test_reference_audio_follows_voice_visibility(as_alice, bob):
    secret = stored_voice(bob, "bob's secret")
    shared = stored_voice(bob, "bob's public", public=True)

    assert as_alice.get(reverse("ui-voice-audio", args=[secret.id])).status_code == 404
    assert as_alice.get(reverse("ui-voice-audio", args=[shared.id])).status_code == 200


# --- Generating speech ----------------------------------------------------------------------------


def test_preparing_speech_hands_back_a_streaming_url_and_the_seed(as_alice):
    response = as_alice.post(
        reverse("ui-speech"),
        {"model": "tts-1", "voice": "alloy", "input": "Hello.", "response_format": "opus"},
    )

    assert response.status_code == 200, response.content
    ticket = response.json()
    assert re.fullmatch(r"/voice-cloning/speech/[\w-]+", ticket["url"])
    assert ticket["download_url"] == f"{ticket['url']}?download=1"
    assert ticket["filename"] == "speech.opus"
    assert 0 <= ticket["seed"] < 2**32

    chosen = as_alice.post(
        reverse("ui-speech"), {"model": "tts-1", "voice": "alloy", "input": "Hi.", "seed": "7"}
    )
    assert chosen.json()["seed"] == 7


def test_a_prepared_speech_url_is_its_owners_only(as_alice, bob):
    url = as_alice.post(
        reverse("ui-speech"), {"model": "tts-1", "voice": "alloy", "input": "Hello."}
    ).json()["url"]
    as_bob = Client()
    as_bob.force_login(bob)

    assert as_bob.get(url).status_code == 404
    assert as_alice.get("/voice-cloning/speech/unknown-token").status_code == 404


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"input": "Hello.", "voice": "nobody"}, "voice", "voice_not_found"),
        ({"input": "Hello.", "response_format": "pcm"}, "response_format", None),
        ({"input": "Hello.", "speed": "9"}, "speed", "number_above_max_value"),
        ({"input": "Hello.", "model": "gpt-9"}, "model", "model_not_found"),
        ({"input": ""}, "input", "empty_string"),
    ],
)
def test_speech_that_cannot_be_made_is_refused_at_once(as_alice, fields, param, code):
    response = as_alice.post(reverse("ui-speech"), {"model": "tts-1", "voice": "alloy", **fields})

    assert response.status_code in {400, 404}
    error = error_of(response)
    assert (error["param"], error["code"]) == (param, code)
    assert error["message"]


def test_another_users_private_voice_cannot_speak(as_alice, bob):
    secret = stored_voice(bob, "bob's secret")

    response = as_alice.post(
        reverse("ui-speech"), {"model": "tts-1", "voice": str(secret.id), "input": "Hello."}
    )

    assert response.status_code == 400
    assert error_of(response)["code"] == "voice_not_found"


# --- Connect and the waveform ---------------------------------------------------------------------


def test_connect_shows_this_servers_base_url(as_alice):
    html = as_alice.get(reverse("connect")).content.decode()

    assert "http://testserver/v1" in html
    assert "http://testserver/v1/audio/speech" in html
    assert "tts-1" in html
    # LibreChat's librechat.yaml: this server's address, and the standard voices as a list
    assert 'url: "http://testserver/v1/audio/speech"' in html
    assert 'allowedAddresses: ["testserver"]' in html
    assert "voices: [alloy,ash," in html


def test_the_waveform_has_one_bar_per_slice_as_tall_as_its_peak():
    samples = np.concatenate([np.full(100, 0.5), np.zeros(100), np.full(100, -1.0)])

    path = waveform_svg_path(samples.astype(np.float32), bars=3, height=32)

    bars = re.findall(r"M([\d.]+) ([\d.]+)h0\.7v([\d.]+)h-0\.7z", path)
    assert [(float(x), float(y), float(h)) for x, y, h in bars] == [
        (0.15, 8.5, 15.0),
        (1.15, 15.5, 1.0),  # silence still shows as a thin line
        (2.15, 1.0, 30.0),
    ]
    assert waveform_svg_path(np.zeros(0, dtype=np.float32), bars=3, height=32) == ""
