"""The voice cloning page's session endpoints for generating speech: check a generation and
hand back a link, then stream it from that link."""

import re
import secrets
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from api.error_codes import ErrorCode
from api.errors import ApiError
from api.streaming import speech_stream_response
from speech.services import SpeechPlan, speech_plan
from speech.synthesis import SpeechStream
from web.errors import DOMAIN_ERRORS, domain_error, form_error, request_budget_check
from web.forms import SpeechForm

# A prepared generation can be played, and downloaded, for this long.
_TICKET_SECONDS = 15 * 60
_MAX_SEED = 2**32
# The shape of the tokens handed out: nothing else is looked up (no control characters in
# cache keys).
_TICKET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


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
    form = SpeechForm(request.POST)
    try:
        # Each link kept is a write (a cache entry for a quarter of an hour): counted as the
        # playback that follows it is.
        request_budget_check(user)
        if not form.is_valid():
            raise form_error(form)
        # Options left out stay out, as in an API request that does not send them.
        data = {name: value for name, value in form.cleaned_data.items() if value is not None}
        data.setdefault("seed", secrets.randbelow(_MAX_SEED))
        await _plan(user, data)
    except ApiError as exc:
        return exc.as_json_response()
    token = secrets.token_urlsafe(24)
    await cache.aset(_ticket_key(token), {"user": user.pk, "data": data}, timeout=_TICKET_SECONDS)
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
    ticket = await cache.aget(_ticket_key(token)) if _TICKET_TOKEN.fullmatch(token) else None
    if ticket is None or ticket["user"] != user.pk:
        return ApiError(
            404, "This audio link has expired: generate the speech again.", code=ErrorCode.EXPIRED
        ).as_json_response()
    data = ticket["data"]
    try:
        request_budget_check(user)
        plan = await _plan(user, data)
        # Counted per user, as the user's keyless API calls are.
        response = await speech_stream_response(
            SpeechStream(plan), sse=False, user=user, api_key=None
        )
    except ApiError as exc:
        return exc.as_json_response()
    disposition = "attachment" if request.GET.get("download") else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="speech.{data["response_format"]}"'
    return response


async def _plan(user: AbstractBaseUser, data: dict[str, Any]) -> SpeechPlan:
    try:
        return await speech_plan(user=user, data=data)
    except DOMAIN_ERRORS as exc:
        raise domain_error(exc) from exc


def _ticket_key(token: str) -> str:
    return f"ui:speech:{token}"
