"""The pages: the root, /voice-cloning with its tabs, and the Connect page.

What the voice cloning page does (clone, delete, generate) goes through session endpoints
(web/cloning.py, web/voices.py, web/speech.py): the API under /v1 takes Bearer keys and skips
sessions and CSRF (core/middleware.py), so a browser cannot call it with its login.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from api.serializers.speech import MAX_INPUT_CHARS
from api.voices import voice_list_body
from ingest.jobs import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_TRANSCRIPT_CHARS
from ingest.transcription import OPENAI_MODEL
from speech.audio.formats import DEFAULT_FORMAT
from speech.engines.registry import engine_default_name
from speech.models_catalog import model_ids
from voices.models import Voice
from voices.selectors import voices_visible_to
from voices.standard import DEFAULT_VOICE, STANDARD_VOICES
from web.forms import PLAYABLE_FORMATS
from web.media import WAVE_BARS, WAVE_HEIGHT, voice_waveform

TABS = ("clone", "voices", "generate")


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("voice-cloning")
    return redirect_to_login(reverse("voice-cloning"))


@dataclass(frozen=True)
class VoiceCard:
    voice: Voice
    owned: bool
    # An SVG path of the reference recording's peaks; empty when it cannot be drawn.
    waveform: str


@login_required
@require_GET
def voice_cloning(request: HttpRequest) -> HttpResponse:
    # Deferred: the engine module brings in torch, which the other pages do not need.
    from speech.engines.csm.engine import DEFAULT_TEMPERATURE

    user = request.user
    cloned = voices_visible_to(user).filter(kind=Voice.Kind.CLONED).order_by("name", "created")
    cards = [VoiceCard(v, v.owner_id == user.pk, voice_waveform(v)) for v in cloned]
    tab = request.GET.get("tab")
    context = {
        "tab": tab if tab in TABS else TABS[0],
        "own_voices": [card for card in cards if card.owned],
        "public_voices": [card for card in cards if not card.owned],
        # Every account's: played as speech the engine makes, never changed nor deleted.
        "standard_voices": STANDARD_VOICES,
        "voice_groups": _voice_groups(user),
        # Every model, those that cannot speak now included: a cloned voice picks CSM, and the
        # page then says why CSM cannot speak rather than leaving the choice empty.
        "models": model_ids(),
        "default_model": "tts-1",
        "default_engine": engine_default_name(),
        "formats": PLAYABLE_FORMATS,
        "default_format": DEFAULT_FORMAT,
        "default_temperature": DEFAULT_TEMPERATURE,
        "consent_required": settings.VOICE_REQUIRE_CONSENT,
        "max_upload_mb": settings.VOICE_UPLOAD_MAX_BYTES // (1024 * 1024),
        "youtube_max_seconds": int(settings.YOUTUBE_MAX_DURATION_SECONDS),
        "max_name_chars": MAX_NAME_CHARS,
        "max_description_chars": MAX_DESCRIPTION_CHARS,
        "max_transcript_chars": MAX_TRANSCRIPT_CHARS,
        "max_input_chars": MAX_INPUT_CHARS,
        "wave_bars": WAVE_BARS,
        "wave_height": WAVE_HEIGHT,
    }
    return render(request, "voice_cloning/page.html", context)


def _voice_groups(user: AbstractBaseUser) -> list[tuple[str, list[dict[str, Any]]]]:
    """Every voice the user may speak with, grouped for the Generate tab's picker."""
    groups: dict[str, list[dict[str, Any]]] = {"standard": [], "own": [], "public": []}
    for voice in voice_list_body(user)["voices"]:
        group = "standard" if voice["kind"] == "standard" else "own" if voice["owned"] else "public"
        groups[group].append(voice)
    labels = {"standard": "Standard voices", "own": "Your voices", "public": "Public voices"}
    return [(labels[key], voices) for key, voices in groups.items() if voices]


# Home Assistant's OpenAI TTS integration offers these voices in its list; others are typed.
HOME_ASSISTANT_TTS_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
)


@login_required
@require_GET
def connect(request: HttpRequest) -> HttpResponse:
    """Each client's settings as tests/clients/test_client_replays.py replays what it sends."""
    # The address the browser reached this server by: what a client on the same network uses.
    base_url = request.build_absolute_uri("/v1")
    typed_voices = [name for name in STANDARD_VOICES if name not in HOME_ASSISTANT_TTS_VOICES]
    context = {
        "base_url": base_url,
        "speech_url": f"{base_url}/audio/speech",
        "model": "tts-1",
        "voice": DEFAULT_VOICE,
        "voices": ",".join(STANDARD_VOICES),
        "stt_model": OPENAI_MODEL,
        # Home Assistant's own OpenAI integration offers OpenAI's names, all standard here.
        "core_tts_model": "gpt-4o-mini-tts",
        "home_assistant_typed_voices": typed_voices,
    }
    return render(request, "connect.html", context)
