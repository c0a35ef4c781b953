"""Hostile text and hostile request bodies: a 400, or speech that ends, never a 5xx or a hang.

The cases live in hostile_cases.py (HOSTILE_TEXTS, HOSTILE_BODIES). Each answer must come
within the hang guard (generous: it only tells an answer from a hang) and be complete: a
streamed answer that starts with 200 must also end.
"""

import json
import unicodedata

import httpx
import pytest
from hostile_cases import HOSTILE_BODIES, HOSTILE_TEXTS, Body, Case

from speech.text import normalise_text

pytestmark = pytest.mark.django_db(transaction=True)

# Not a performance bound: long enough for any machine to answer, short enough to tell a hang.
HANG_GUARD_SECONDS = 120
# Generated speech is capped per request (SPEECH_MAX_AUDIO_SECONDS); a small cap keeps the
# suite quick while proving that even the longest text ends.
AUDIO_CAP_SECONDS = 20
PCM_BYTES_PER_SECOND = 24000 * 2


@pytest.fixture
def client(live_server_url, alice_key, settings):
    settings.SPEECH_MAX_AUDIO_SECONDS = AUDIO_CAP_SECONDS
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    with httpx.Client(
        base_url=live_server_url,
        headers={"Authorization": f"Bearer {alice_key}"},
        timeout=HANG_GUARD_SECONDS,
    ) as client:
        yield client


def _speak(client: httpx.Client, body: bytes, content_type: str) -> tuple[int, bytes]:
    response = client.post("/v1/audio/speech", content=body, headers={"Content-Type": content_type})
    return response.status_code, response.read()


@pytest.mark.parametrize("case", HOSTILE_TEXTS, ids=lambda case: case.name)
def test_hostile_text_is_refused_or_spoken_to_an_end(client, case: Case):
    # json.dumps escapes lone surrogates as "\ud800", as a hostile client would send them
    body = json.dumps({"model": "tts-1", "input": case.value, "response_format": "pcm"})

    status, audio = _speak(client, body.encode(), "application/json")

    assert status in {200, 400}, audio[:300]
    if status == 400:
        error = json.loads(audio)["error"]
        assert error["param"] == "input"
    else:
        assert len(audio) <= AUDIO_CAP_SECONDS * PCM_BYTES_PER_SECOND


@pytest.mark.parametrize("case", HOSTILE_TEXTS, ids=lambda case: case.name)
def test_text_clean_up_leaves_nothing_that_can_steer_an_engine(case: Case):
    cleaned = normalise_text(case.value)

    kinds = {unicodedata.category(char) for char in cleaned if char not in "\n\t"}
    assert not kinds & {"Cc", "Cf", "Cs", "Co", "Cn"}
    # No run of more than a few combining marks survives (Zalgo floods).
    run = longest = 0
    for char in cleaned:
        run = run + 1 if unicodedata.category(char).startswith("M") else 0
        longest = max(longest, run)
    assert longest <= 4
    # NFKC may expand a character (U+FDFA becomes 18), never more.
    assert len(cleaned) <= 18 * len(case.value)


@pytest.mark.parametrize("case", HOSTILE_BODIES, ids=lambda case: case.name)
def test_hostile_bodies_are_refused_as_client_errors(client, case: Body):
    status, answer = _speak(client, case.build(), case.content_type)

    assert 400 <= status < 500, answer[:300]
    error = json.loads(answer)["error"]
    assert set(error) == {"message", "type", "param", "code"}


# (Each was a 500 on PostgreSQL, which stores neither NUL nor lone surrogates, before the fix.)
UNSTORABLE_VOICES = ["a\x00b", "\ud800", "\udfff\ud800", {"id": "alloy\x00"}]
# Not a name at all (each was a 500: the field's error message broke DRF's formatting).
NOT_A_VOICE = [5, ["alloy"], {"name": "alloy"}, {"id": 5}, True, None]


def test_voice_names_the_database_cannot_hold_are_a_400_naming_the_field(client):
    for path, field in [("/v1/audio/speech", "voice"), ("/v1/voice-cloning/generate", "voice_id")]:
        for value in UNSTORABLE_VOICES:
            if field == "voice_id" and not isinstance(value, str):
                continue
            body = {"model": "tts-1", "input": "Hello.", "text": "Hello.", field: value}

            response = client.post(path, content=json.dumps(body), headers=_JSON)

            assert response.status_code == 400, (path, value, response.text)
            assert response.json()["error"]["param"] == field


def test_a_voice_that_is_not_a_name_is_a_400(client):
    for value in NOT_A_VOICE:
        body = {"model": "tts-1", "input": "Hello.", "voice": value}

        response = client.post("/v1/audio/speech", content=json.dumps(body), headers=_JSON)

        assert response.status_code == 400, (value, response.text)
        assert response.json()["error"]["param"] == "voice"


def test_a_consent_id_the_database_cannot_hold_is_a_400(client, media_root):
    for consent in ["cons_\x00", "\ud800"]:
        body = {
            "youtube_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "voice_name": "host",
            "consent": consent,
        }

        response = client.post(
            "/v1/voice-cloning/clone-from-youtube", content=json.dumps(body), headers=_JSON
        )

        assert response.status_code == 400, (consent, response.text)
        assert response.json()["error"]["param"] == "consent"


ID_ROUTES = [
    ("GET", "/v1/audio/voices/{ref}"),
    ("DELETE", "/v1/audio/voices/{ref}"),
    ("DELETE", "/v1/voice-cloning/voices/{ref}"),
    ("POST", "/v1/voice-cloning/voices/{ref}/preview"),
    ("GET", "/v1/voice-cloning/jobs/{ref}"),
    ("GET", "/v1/audio/voice_consents/{ref}"),
    ("POST", "/v1/audio/voice_consents/{ref}"),
    ("DELETE", "/v1/audio/voice_consents/{ref}"),
    ("GET", "/api/v1/audio/voices/{ref}"),
]
# Percent-encoded as they arrive in a path: NUL, a CESU-8 surrogate, a traversal.
PATH_REFS = ["a%00b", "%00", "%ED%A0%80", "..%2F..%2Fetc%2Fpasswd", "%2e%2e"]


def test_ids_in_paths_that_name_nothing_are_a_404(client):
    for method, path in ID_ROUTES:
        for ref in PATH_REFS:
            body = json.dumps({"name": "x"}) if method == "POST" else None

            response = client.request(method, path.format(ref=ref), content=body, headers=_JSON)

            assert response.status_code == 404, (method, path, ref, response.text)
            assert response.json()["error"]["code"] in {
                "voice_not_found",
                "job_not_found",
                "not_found",
                "unknown_url",
            }


_JSON = {"Content-Type": "application/json"}
