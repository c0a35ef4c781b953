"""The voice cloning page's session endpoints for voices: a stored voice's recording, a
standard voice's spoken preview, and deleting one's own voice. Visibility is the API's:
another user's private voice is a 404."""

import uuid

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from api.cloning import standard_preview_text
from api.error_codes import ErrorCode
from api.errors import ApiError
from api.streaming import speech_stream_response
from speech.audio.formats import DEFAULT_FORMAT
from speech.services import speech_plan
from speech.synthesis import SpeechStream
from voices.errors import NotVoiceOwner, VoiceNotFound
from voices.selectors import voices_visible_to
from voices.services import voice_delete_owned
from voices.standard import STANDARD_VOICES
from web.errors import DOMAIN_ERRORS, domain_error, request_budget_check
from web.media import ranged_file_response


@login_required
@require_GET
def voice_audio(request: HttpRequest, voice_id: uuid.UUID) -> HttpResponse:
    """A visible voice's reference recording, with byte ranges: without them a browser cannot
    seek, and Chromium cannot even tell an Ogg file's duration."""
    voice = voices_visible_to(request.user).filter(id=voice_id).first()
    if voice is None or not voice.reference_audio:
        return _voice_not_found()
    response = ranged_file_response(request, voice.reference_audio, "audio/wav")
    # A voice's recording never changes (a new recording is a new voice), but it is private.
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_GET
async def standard_voice_preview(request: HttpRequest, name: str) -> HttpResponse:
    """A standard voice saying its preview, made by the engine as it is played.

    A standard voice has no recording of its own to play (eSpeak NG's have none at all), so
    its preview is speech generated on request, like the API's preview of a voice. The page's
    <audio> asks for it only when played (preload="none"), and each play counts against the
    user's request limit like any generation.
    """
    user = await request.auser()
    if name not in STANDARD_VOICES:
        return _voice_not_found()
    data = {
        # The default engine: what a client naming this voice with tts-1 hears.
        "model": "tts-1",
        "voice": name,
        "input": standard_preview_text(name),
        "response_format": DEFAULT_FORMAT,
        "speed": 1.0,
    }
    try:
        request_budget_check(user)
        try:
            plan = await speech_plan(user=user, data=data)
        except DOMAIN_ERRORS as exc:
            raise domain_error(exc) from exc
        response = await speech_stream_response(
            SpeechStream(plan), sse=False, user=user, api_key=None
        )
    except ApiError as exc:
        return exc.as_json_response()
    response["Content-Disposition"] = f'inline; filename="{name}-preview.{DEFAULT_FORMAT}"'
    return response


@login_required
@require_POST
def voice_delete_view(request: HttpRequest, voice_id: uuid.UUID) -> HttpResponse:
    try:
        request_budget_check(request.user)
    except ApiError as exc:
        return exc.as_json_response()
    try:
        deleted_id = voice_delete_owned(user=request.user, name_or_id=str(voice_id))
    except VoiceNotFound:
        return _voice_not_found()
    except NotVoiceOwner:
        error = ApiError(403, "Only the owner can delete this voice.", code=ErrorCode.NOT_OWNER)
        return error.as_json_response()
    return JsonResponse({"id": deleted_id, "deleted": True})


def _voice_not_found() -> JsonResponse:
    error = ApiError(404, "No such voice.", param="voice", code=ErrorCode.VOICE_NOT_FOUND)
    return error.as_json_response()
