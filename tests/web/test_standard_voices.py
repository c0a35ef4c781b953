"""My Voices lists the standard voices beside the user's own and the public ones, each with a
preview that the engine speaks when it is played (a standard voice has no recording to play).
The API's preview route speaks standard voices too. The page's markup through Django's test
client; the previews through the live server, as a browser fetches them; and in a real browser,
a click on a standard voice's play button.
"""

import io
import re
from typing import Any

import av
import httpx
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from playwright.sync_api import expect

from api.cloning import standard_preview_text
from speech.audio.decode import decode_audio
from speech.audio.formats import SAMPLE_RATE
from speech.engines.base import SynthesisParams, VoiceSpec
from speech.engines.espeak import EspeakEngine
from tests.support.voices import cloned_voice as stored_voice
from voices.standard import STANDARD_VOICES

pytestmark = pytest.mark.django_db(transaction=True)

STANDARD_CARD = re.compile(
    r'<li class="card voice standard" data-voice-id="([^"]+)">(.*?)</li>', re.S
)


@pytest.fixture
def as_alice(client: Client, alice) -> Client:
    client.force_login(alice)
    return client


@pytest.fixture
def spoken(monkeypatch) -> list[tuple[tuple[str, ...], VoiceSpec]]:
    """What eSpeak NG is asked to say, request by request: the text chunks and the voice."""
    calls = []
    synthesize = EspeakEngine.synthesize

    def recorded(self, chunks, voice: VoiceSpec, params: SynthesisParams):
        calls.append((tuple(chunks), voice))
        return synthesize(self, calls[-1][0], voice, params)

    monkeypatch.setattr(EspeakEngine, "synthesize", recorded)
    return calls


def as_browser(live_server_url: str, client: Client) -> httpx.Client:
    """An HTTP client for the live server carrying `client`'s login, as the page's <audio> does."""
    name = settings.SESSION_COOKIE_NAME
    return httpx.Client(
        base_url=live_server_url, cookies={name: client.cookies[name].value}, timeout=60
    )


def decoded_seconds(body: bytes) -> float:
    with av.open(io.BytesIO(body)) as container:
        assert container.format.name == "mp3"
    return decode_audio(body, sample_rate=SAMPLE_RATE, max_seconds=60).size / SAMPLE_RATE


# --- The page -------------------------------------------------------------------------------------


def test_my_voices_lists_every_standard_voice_with_its_preview(as_alice, alice):
    stored_voice(alice, "narrator")

    html = as_alice.get(reverse("voice-cloning") + "?tab=voices").content.decode()

    cards = STANDARD_CARD.findall(html)
    assert [name for name, _ in cards] == list(STANDARD_VOICES)
    assert len(cards) == 13
    for name, card in cards:
        preview = reverse("ui-standard-voice-preview", args=[name])
        assert f'<audio controls preload="none" src="{preview}"' in card
        assert f'data-use-voice="{name}"' in card
        # Nobody's to change: no Delete button on a standard voice.
        assert "data-delete-url" not in card
    # beside the user's own voice, which stays deletable
    assert 'id="own-voices"' in html
    assert "narrator" in html
    assert html.count("data-delete-url") == 1


def test_the_empty_public_list_no_longer_says_no_voice_exists(as_alice, bob):
    html = as_alice.get(reverse("voice-cloning")).content.decode()

    assert "No one has published a voice yet" not in html
    assert "No one else has published a cloned voice yet." in html

    stored_voice(bob, "bob's public", public=True)
    html = as_alice.get(reverse("voice-cloning")).content.decode()

    assert "No one else has published" not in html
    assert 'id="public-voices"' in html


# --- The preview ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alloy", "cedar"])
def test_a_standard_voice_preview_is_speech_the_engine_makes(
    as_alice, live_server_url, spoken, name
):
    with as_browser(live_server_url, as_alice) as browser:
        response = browser.get(reverse("ui-standard-voice-preview", args=[name]))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/mpeg"
    assert response.headers["content-disposition"] == f'inline; filename="{name}-preview.mp3"'
    # streamed as it is made, and never kept by a cache
    assert "content-length" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert decoded_seconds(response.content) > 1.0
    # the engine said the preview text, in this voice
    [(chunks, voice)] = spoken
    assert " ".join(chunks) == standard_preview_text(name)
    assert (voice.name, voice.standard) == (name, name)


@pytest.mark.parametrize("name", ["nobody", "Alloy", "alloy "])
def test_only_a_standard_voice_has_a_standard_preview(as_alice, live_server_url, spoken, name):
    with as_browser(live_server_url, as_alice) as browser:
        response = browser.get(reverse("ui-standard-voice-preview", args=[name]))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "voice_not_found"
    assert spoken == []


def test_a_preview_needs_a_login(client):
    response = client.get(reverse("ui-standard-voice-preview", args=["alloy"]))

    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_a_preview_counts_against_the_users_request_limit(
    as_alice, live_server_url, settings, spoken
):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 1
    url = reverse("ui-standard-voice-preview", args=["alloy"])

    with as_browser(live_server_url, as_alice) as browser:
        first = browser.get(url)
        second = browser.get(url)

    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(spoken) == 1


# --- The API's preview route ----------------------------------------------------------------------


def test_the_api_previews_a_standard_voice_through_the_default_engine(api, spoken):
    default = api.post("/v1/voice-cloning/voices/nova/preview", json={})
    chosen = api.post(
        "/v1/voice-cloning/voices/Nova/preview",
        json={"text": "Chosen words.", "response_format": "wav"},
    )

    assert default.status_code == 200, default.text
    assert default.headers["content-type"] == "audio/mpeg"
    assert decoded_seconds(default.content) > 1.0
    assert chosen.status_code == 200, chosen.text
    assert chosen.headers["content-type"] == "audio/wav"
    assert decode_audio(chosen.content, sample_rate=SAMPLE_RATE, max_seconds=60).size > 0
    [(default_chunks, default_voice), (chosen_chunks, chosen_voice)] = spoken
    assert " ".join(default_chunks) == standard_preview_text("nova")
    assert " ".join(chosen_chunks) == "Chosen words."
    assert default_voice.standard == chosen_voice.standard == "nova"


def test_the_api_preview_still_refuses_a_name_that_is_no_voice(api, spoken):
    response = api.post("/v1/voice-cloning/voices/nobody/preview", json={})

    assert response.status_code == 404
    assert response.json()["error"]["param"] == "voice_id"
    assert spoken == []


# --- In a browser ---------------------------------------------------------------------------------

# Chromium's own controls: the play button sits at the left end of the control bar.
PLAY_BUTTON = {"x": 20, "y": 27}


@pytest.mark.system
def test_clicking_a_standard_voices_play_button_plays_its_preview(browse, alice, spoken):
    def steps(page: Any) -> dict:
        page.goto("/voice-cloning?tab=voices")
        card = page.locator("#standard-voices .voice", has_text="shimmer")
        expect(card.locator(".badge")).to_have_text("standard")
        expect(card.get_by_role("button", name="Delete")).to_have_count(0)
        audio = card.locator("audio")
        audio.scroll_into_view_if_needed()
        with page.expect_response(lambda r: "/standard/shimmer/preview" in r.url) as preview:
            audio.click(position=PLAY_BUTTON)
        page.wait_for_function("audio => audio.ended", arg=audio.element_handle())
        return {
            "status": preview.value.status,
            "type": preview.value.header_value("content-type"),
            "duration": audio.evaluate("a => a.duration"),
            "played": audio.evaluate("a => a.played.length && a.played.end(0)"),
        }

    seen = browse(steps)

    assert (seen["status"], seen["type"]) == (200, "audio/mpeg")
    assert seen["duration"] > 1.0
    assert seen["played"] > 1.0
    [(chunks, voice)] = spoken
    assert " ".join(chunks) == standard_preview_text("shimmer")
    assert voice.standard == "shimmer"
