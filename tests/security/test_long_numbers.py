"""Text that folds to a run of digits longer than int() converts (4,300) speaks, never a 500.

Each text below was a 500 from the verbaliser, through every route that speaks text: the
speech route, a conversation's next turn, a cloned voice's preview and the page's form. The
texts stay within the 4,096 characters a request may send by folding to more digits than
they have characters ("\u2473", circled twenty, is "20" after NFKC).
"""

import json

import httpx
import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.support.voices import cloned_voice

pytestmark = pytest.mark.django_db(transaction=True)

CIRCLED = "\u2473" * 2200  # 4,400 digits after NFKC
LONG_TEXTS = [
    CIRCLED + "/2",
    "2/" + CIRCLED,
    "$" + CIRCLED,
    "-$" + CIRCLED,
    "$" + CIRCLED + ".50",
    "\u00a3" + CIRCLED,
    CIRCLED + "\u20ac",
    CIRCLED + "\u2044" + "3",
    "It costs $" + "\u3251" * 2200 + " today.",  # circled 21
    "\u00a5" + "\u32bf" * 2200,  # circled 50
    "$" + "\uff17" * 2 + "\u2473" * 2190,  # fullwidth digits, then circled twenties
]
CAP_SECONDS = 0.5


@pytest.fixture
def short_audio(settings) -> None:
    settings.SPEECH_MAX_AUDIO_SECONDS = CAP_SECONDS
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0


def _assert_spoken(response: httpx.Response, text: str) -> None:
    assert response.status_code == 200, (text[:8], text[-8:], response.text[:300])


def test_long_digit_runs_are_spoken_by_the_speech_route(api, short_audio):
    for text in LONG_TEXTS:
        for path in ("/v1/audio/speech", "/api/v1/audio/speech"):
            body = {"model": "tts-1", "input": text, "voice": "alloy", "response_format": "wav"}

            _assert_spoken(api.post(path, json=body), text)


def test_long_digit_runs_are_spoken_as_a_conversation_turn(api, short_audio, csm_engine):
    for text in LONG_TEXTS[:4]:
        body = {"model": "csm-1b", "text": text, "seed": 1, "max_audio_length_ms": 200}
        context = [{"speaker": 0, "text": text, "audio": ""}]

        _assert_spoken(api.post("/v1/audio/conversation", json=body), text)
        # A context turn's text is verbalised too; its empty audio is refused, not a 500.
        with_context = api.post("/v1/audio/conversation", json={**body, "context": context})
        assert with_context.status_code in {200, 400}, with_context.text[:300]


def test_long_digit_runs_are_spoken_by_a_voice_preview(
    api, alice, short_audio, csm_engine, media_root
):
    voice = cloned_voice(alice, "narrator")
    for text in LONG_TEXTS[:4]:
        response = api.post(
            f"/v1/voice-cloning/voices/{voice.id}/preview",
            json={"text": text, "response_format": "wav"},
        )

        _assert_spoken(response, text)


def test_long_digit_runs_are_accepted_by_the_pages_speech_form(live_server_url, alice, short_audio):
    browser = Client()
    browser.force_login(alice)
    session = browser.cookies[django_settings.SESSION_COOKIE_NAME].value
    with httpx.Client(
        base_url=live_server_url,
        cookies={django_settings.SESSION_COOKIE_NAME: session},
        timeout=60,
    ) as client:
        assert client.get("/voice-cloning").status_code == 200
        token = client.cookies[django_settings.CSRF_COOKIE_NAME]
        for text in LONG_TEXTS:
            fields = {"model": "tts-1", "input": text, "voice": "alloy", "response_format": "wav"}

            prepared = client.post(
                "/voice-cloning/speech", data=fields, headers={"X-CSRFToken": token}
            )

            _assert_spoken(prepared, text)
            _assert_spoken(client.get(json.loads(prepared.content)["url"]), text)
