"""The web UI: the /voice-cloning page with its tabs, the Connect page, and the session
endpoints the page calls.

The API under /v1 takes Bearer keys and skips sessions and CSRF (core/middleware.py), so a
browser cannot call it with its login. These endpoints take the session, need a CSRF token on
every write, and call the same services under the same rules: consent, ownership, voice
visibility (another user's private voice is a 404), the per-user request limit and the
generation slots.
"""

import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from rest_framework.request import Request

from accounts.limits import request_budget_take
from api.errors import (
    ApiError,
    invalid_request,
    rate_limited,
    unavailable_service_error,
    validation_error,
)
from api.serializers.cloning import CloneUploadSerializer, CloneYoutubeSerializer
from api.serializers.speech import MAX_INPUT_CHARS, SpeechRequestSerializer
from api.streaming import speech_response
from api.voices import voice_list_body
from ingest.errors import IngestError
from ingest.models import IngestJob
from ingest.progress import job_event
from ingest.services import (
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    MAX_TRANSCRIPT_CHARS,
    job_start_upload,
    job_start_youtube,
)
from speech.audio.formats import DEFAULT_FORMAT
from speech.engines.registry import engine_default_name
from speech.models_catalog import model_ids
from speech.services import speech_plan
from speech.synthesis import SpeechStream
from voices.models import Voice
from voices.selectors import voices_visible_to
from voices.services import voice_delete
from voices.standard import DEFAULT_VOICE, STANDARD_VOICES
from web.media import WAVE_BARS, WAVE_HEIGHT, ranged_file_response, voice_waveform

TABS = ("clone", "voices", "generate")
# What a browser's <audio> element plays (raw pcm has no header to play it by).
UI_FORMATS = ("mp3", "wav", "opus", "aac", "flac")
_SPEECH_FIELDS = ("model", "input", "voice", "response_format", "speed", "temperature", "seed")
_OPTIONAL_NUMBERS = ("speed", "temperature", "seed")
# A prepared generation can be played, and downloaded, for this long.
_SPEECH_TICKET_SECONDS = 15 * 60
_MAX_SEED = 2**32
# The UI's form names the voice "name"; the YouTube service and serializer call it voice_name.
_FORM_PARAMS = {"voice_name": "name"}


# --- Pages --------------------------------------------------------------------------------------


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
    # Imported here: the engine module brings in torch, which the other pages do not need.
    from speech.engines.csm.engine import DEFAULT_TEMPERATURE

    user = request.user
    cloned = voices_visible_to(user).filter(kind=Voice.Kind.CLONED).order_by("name", "created")
    cards = [VoiceCard(v, v.owner_id == user.pk, voice_waveform(v)) for v in cloned]
    tab = request.GET.get("tab")
    context = {
        "tab": tab if tab in TABS else TABS[0],
        "own_voices": [card for card in cards if card.owned],
        "public_voices": [card for card in cards if not card.owned],
        "voice_groups": _voice_groups(user),
        "models": model_ids(),
        "default_model": "tts-1",
        "default_engine": engine_default_name(),
        "formats": UI_FORMATS,
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


@login_required
@require_GET
def connect(request: HttpRequest) -> HttpResponse:
    # The address the browser reached this server by: what a client on the same network uses.
    base_url = request.build_absolute_uri("/v1")
    context = {
        "base_url": base_url,
        "speech_url": f"{base_url}/audio/speech",
        "model": "tts-1",
        "voice": DEFAULT_VOICE,
        "voices": ",".join(STANDARD_VOICES),
    }
    return render(request, "connect.html", context)


# --- Cloning ------------------------------------------------------------------------------------


@login_required
@require_POST
async def clone_start(request: HttpRequest) -> HttpResponse:
    """Check the form and start the job; the page follows it over the job's WebSocket."""
    user = await request.auser()
    try:
        _check_rate(_as_api_request(request, user))
        if request.POST.get("source") == "youtube":
            job = await _start_youtube(user, request.POST)
        else:
            job = await _start_upload(user, request.POST, request.FILES.get("audio_file"))
    except ApiError as exc:
        return _error_response(exc)
    # As it is now: a job run in-process (eager Celery) has already finished.
    job = await IngestJob.objects.aget(id=job.id)
    return JsonResponse(job_event(job), status=202)


async def _start_upload(user: AbstractBaseUser, form: QueryDict, upload: Any) -> IngestJob:
    if upload is None:
        raise invalid_request("Choose an audio file to upload.", param="audio_file")
    serializer = CloneUploadSerializer(
        data={
            "name": form.get("name", ""),
            "audio_file": upload,
            "transcript": form.get("transcript", ""),
            "description": form.get("description", ""),
            "consent": _consent(form),
        }
    )
    data = _validated(serializer)
    return await _start(
        job_start_upload,
        owner=user,
        name=data["name"],
        upload=data["audio_file"],
        transcript=data["transcript"],
        description=data["description"],
        consent=data["consent"] or None,
    )


async def _start_youtube(user: AbstractBaseUser, form: QueryDict) -> IngestJob:
    fields = {
        "youtube_url": form.get("youtube_url", ""),
        "voice_name": form.get("name", ""),
        "start_time": form.get("start_time", ""),
        "duration": form.get("duration", ""),
        "description": form.get("description", ""),
        "transcript": form.get("transcript", ""),
        "consent": _consent(form) or None,
    }
    # An emptied number field means "the default", as leaving the field out of the API call does.
    serializer = CloneYoutubeSerializer(
        data={key: value for key, value in fields.items() if value != ""}
    )
    data = _validated(serializer)
    return await _start(
        job_start_youtube,
        owner=user,
        url=data["youtube_url"],
        name=data["voice_name"],
        start_time=data["start_time"],
        duration=data["duration"],
        description=data["description"],
        transcript=data["transcript"],
        consent=data["consent"],
    )


def _consent(form: QueryDict) -> str:
    # A ticked checkbox sends "on"; an unticked one sends nothing, which the service refuses
    # while VOICE_REQUIRE_CONSENT is on.
    return "true" if form.get("consent") else ""


async def _start(start: Any, **kwargs: Any) -> IngestJob:
    def run() -> IngestJob:
        try:
            return start(**kwargs)
        finally:
            # Django closes a request's connection only on the thread that finishes it.
            close_old_connections()

    try:
        # Not thread-sensitive: with eager Celery the whole job runs inside this call, and it
        # must not hold up the one thread that every other sync view shares.
        return await sync_to_async(run, thread_sensitive=False)()
    except IngestError as exc:
        message = exc.message
        if exc.code == "consent_required":
            message = (
                "Tick the consent box: cloning a voice needs your confirmation that you have "
                "the right to clone it."
            )
        raise ApiError(400, message, param=exc.param, code=exc.code) from exc
    except Exception as exc:
        # The job queue or the database cannot be reached: 503, as the API answers.
        unavailable = unavailable_service_error(exc)
        if unavailable is None:
            raise
        raise unavailable from exc


@login_required
@require_GET
def job_status(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """The job as its WebSocket reports it; the page polls here when WebSockets do not get
    through (a proxy that does not pass them on)."""
    job = IngestJob.objects.filter(id=job_id, owner=request.user).first()
    if job is None:
        return _error_response(ApiError(404, "No such job.", code="job_not_found"))
    return JsonResponse(job_event(job))


# --- Voices -------------------------------------------------------------------------------------


@login_required
@require_GET
def voice_audio(request: HttpRequest, voice_id: uuid.UUID) -> HttpResponse:
    """A visible voice's reference recording, with byte ranges: without them a browser cannot
    seek, and Chromium cannot even tell an Ogg file's duration."""
    voice = voices_visible_to(request.user).filter(id=voice_id).first()
    if voice is None or not voice.reference_audio:
        return _error_response(_voice_not_found())
    response = ranged_file_response(request, voice.reference_audio, "audio/wav")
    # A voice's recording never changes (a new recording is a new voice), but it is private.
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_POST
def voice_delete_view(request: HttpRequest, voice_id: uuid.UUID) -> HttpResponse:
    voice = voices_visible_to(request.user).filter(id=voice_id).first()
    if voice is None:
        return _error_response(_voice_not_found())
    if voice.owner_id != request.user.pk:
        return _error_response(
            ApiError(403, "Only the owner can delete this voice.", code="not_owner")
        )
    voice_delete(voice=voice)
    return JsonResponse({"id": str(voice_id), "deleted": True})


def _voice_not_found() -> ApiError:
    return ApiError(404, "No such voice.", param="voice", code="voice_not_found")


# --- Generating speech --------------------------------------------------------------------------


@login_required
@require_POST
async def speech_prepare(request: HttpRequest) -> HttpResponse:
    """Check a generation and hand back the URL that streams it.

    An <audio> element can only GET its source, and it starts playing while the bytes still
    arrive. So the CSRF-protected POST checks everything a generation would refuse and keeps
    the request for a while under an unguessable token; the element's GET then streams it.
    Without a seed one is chosen here, so that the download is the same take as the playback.
    """
    user = await request.auser()
    fields = {name: request.POST[name] for name in _SPEECH_FIELDS if name in request.POST}
    for name in _OPTIONAL_NUMBERS:
        # An emptied number field means "the default", as leaving it out of an API call does.
        if not fields.get(name, "").strip():
            fields.pop(name, None)
    try:
        data = dict(_validated(SpeechRequestSerializer(data=fields)))
        if data["response_format"] not in UI_FORMATS:
            raise invalid_request(
                f"A browser cannot play '{data['response_format']}'; "
                f"choose one of {', '.join(UI_FORMATS)}.",
                param="response_format",
            )
        if data.get("seed") is None:
            data["seed"] = secrets.randbelow(_MAX_SEED)
        await speech_plan(user=user, data=data)
    except ApiError as exc:
        return _error_response(exc)
    token = secrets.token_urlsafe(24)
    await cache.aset(
        _ticket_key(token), {"user": user.pk, "data": data}, timeout=_SPEECH_TICKET_SECONDS
    )
    url = reverse("ui-speech-audio", args=[token])
    return JsonResponse(
        {
            "url": url,
            "download_url": f"{url}?download=1",
            "filename": f"speech.{data['response_format']}",
            "seed": data["seed"],
        }
    )


@login_required
@require_GET
async def speech_audio(request: HttpRequest, token: str) -> HttpResponse:
    """Stream a prepared generation as it is made, through the API's own streaming path."""
    user = await request.auser()
    # Only tokens of the shape handed out are looked up: no control characters in cache keys.
    ticket = await cache.aget(_ticket_key(token)) if _TICKET_TOKEN.fullmatch(token) else None
    if ticket is None or ticket["user"] != user.pk:
        return _error_response(
            ApiError(404, "This audio link has expired: generate the speech again.", code="expired")
        )
    data = ticket["data"]
    api_request = _as_api_request(request, user)
    try:
        _check_rate(api_request)
        plan = await speech_plan(user=user, data=data)
        response = await speech_response(SpeechStream(plan), sse=False, request=api_request)
    except ApiError as exc:
        return _error_response(exc)
    disposition = "attachment" if request.GET.get("download") else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="speech.{data["response_format"]}"'
    return response


_TICKET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _ticket_key(token: str) -> str:
    return f"ui:speech:{token}"


# --- Shared helpers -----------------------------------------------------------------------------


def _as_api_request(request: HttpRequest, user: AbstractBaseUser) -> Request:
    """The request as the API's limits and usage accounting see it: a signed-in user without
    an API key, counted per user like a keyless API call."""
    api_request = Request(request)
    api_request.user = user
    api_request.auth = None
    return api_request


def _check_rate(api_request: Request) -> None:
    """The API's per-minute request limit, on the same counter as the user's keyless calls."""
    state = request_budget_take(user=api_request.user, api_key=None)
    if state is not None and not state.allowed:
        raise rate_limited(
            "Too many requests this minute: wait a moment and try again.",
            code="rate_limit_exceeded",
            retry_after=state.reset_seconds,
        )


def _validated(serializer: Any) -> dict[str, Any]:
    if not serializer.is_valid():
        raise validation_error(serializer.errors)
    return serializer.validated_data


def _error_response(exc: ApiError) -> JsonResponse:
    """The API's error body; the param renamed to the form field it belongs to."""
    if exc.param in _FORM_PARAMS:
        exc.param = _FORM_PARAMS[exc.param]
    return exc.as_json_response()
