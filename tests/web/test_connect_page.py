"""The Connect page: each client's settings, as tests/clients/test_client_replays.py replays what
those clients send, with this server's address filled in."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from voices.standard import STANDARD_VOICES

pytestmark = pytest.mark.django_db


@pytest.fixture
def connect_html(client: Client, alice, settings) -> str:
    # The address a client on the same network reaches this server by.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "speech.example.lan"]
    client.force_login(alice)
    return client.get(reverse("connect"), HTTP_HOST="speech.example.lan:8000").content.decode()


def section(html: str, client_id: str) -> str:
    found = re.search(rf'<section class="card client" id="{client_id}">(.*?)</section>', html, re.S)
    assert found, client_id
    return found.group(1)


def test_openwebui_gets_speech_and_speech_to_text_settings(connect_html):
    openwebui = section(connect_html, "openwebui")

    # text to speech, then speech to text, both at this server's /v1
    assert (
        openwebui.count("<dt>API Base URL</dt><dd><code>http://speech.example.lan:8000/v1</code>")
        == 2
    )
    assert "<dt>Speech-to-Text Engine</dt><dd>OpenAI</dd>" in openwebui
    assert "<dt>STT Model</dt><dd><code>whisper-1</code></dd>" in openwebui
    assert "http://speech.example.lan:8000/v1/audio/transcriptions" in openwebui


def test_home_assistants_custom_integration_asks_for_mp3_and_lists_no_voices(connect_html):
    integration = section(connect_html, "home-assistant-openai-tts")

    assert "<code>http://speech.example.lan:8000/v1/audio/speech</code>" in integration
    assert "It asks for MP3, also when it streams." in integration
    assert "Opus" not in integration
    # the standard voices its fixed list lacks are the ones to type
    assert (
        "type <code>verse</code>, <code>marin</code>, <code>cedar</code>, or a voice" in integration
    )


def test_home_assistant_core_speaks_through_openai_base_url(connect_html):
    core = section(connect_html, "home-assistant-core")

    assert "<code>OPENAI_BASE_URL=http://speech.example.lan:8000/v1</code>" in core
    assert "<code>gpt-4o-mini-tts</code> (its default)" in core
    assert "its default, <code>gpt-4o-mini-transcribe</code>, or <code>whisper-1</code>" in core


def test_sillytavern_and_librechat_keep_their_settings(connect_html):
    sillytavern = section(connect_html, "sillytavern")
    librechat = section(connect_html, "librechat")

    assert f"<code>{','.join(STANDARD_VOICES)}</code>" in sillytavern
    assert 'url: "http://speech.example.lan:8000/v1/audio/speech"' in librechat
    assert 'allowedAddresses: ["speech.example.lan:8000"]' in librechat
