"""Every write route counts against the caller's per-minute request budget: the API's creates,
updates and deletes (under /v1 and /api/v1, with a key) and the pages' session endpoints
(with a signed-in browser's session and CSRF token), over the live server.

Past the budget each answers 429 rate_limit_exceeded with Retry-After, and does nothing: a
refused consent is not stored, a refused delete deletes nothing.
"""

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import URLPattern
from rest_framework.test import APIRequestFactory

from api.throttling import RequestsPerMinuteThrottle
from api.urls import urlpatterns
from tests.support.cloning import consent_recording
from voices.models import Voice, VoiceConsent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]

BUDGET = 2
_WRITE_METHODS = ("post", "put", "patch", "delete")
_CSRF = "c" * 32


def _wait_for_a_fresh_window(margin: float = 5.0) -> None:
    """Sleep into the next minute when this one ends within `margin` seconds: the budget is a
    fixed window, and a burst must not straddle two."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert int(response.headers["retry-after"]) >= 1


# --- Every API write route has the throttle ------------------------------------------------------


def _write_methods(pattern: URLPattern) -> list[str]:
    view = pattern.callback.view_class
    return [method for method in _WRITE_METHODS if hasattr(view, method)]


@pytest.mark.parametrize(
    "pattern",
    [pattern for pattern in urlpatterns if _write_methods(pattern)],
    ids=lambda pattern: str(pattern.pattern),
)
def test_every_api_write_method_is_throttled(pattern: URLPattern):
    factory = APIRequestFactory()
    for method in _write_methods(pattern):
        view = pattern.callback.view_class()
        view.request = getattr(factory, method)("/")
        throttles = view.get_throttles()
        assert any(isinstance(t, RequestsPerMinuteThrottle) for t in throttles), method


# --- Over the live server, with a key ------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One write: its method, its path (under the prefix) and what it sends."""

    name: str
    method: str
    path: Callable[[Any], str]
    kwargs: Callable[[], dict] = dict


def _consent(owner) -> VoiceConsent:
    return VoiceConsent.objects.create(
        id=f"cons_{uuid.uuid4().hex}", owner=owner, name="Al", language="en"
    )


def _consent_form() -> dict:
    return {"data": {"name": "Al", "language": "en"}, "files": {"recording": consent_recording()}}


_MISSING = "00000000-0000-4000-8000-000000000000"
API_WRITES = [
    Write("create-consent", "POST", lambda alice: "/audio/voice_consents", _consent_form),
    Write(
        "rename-consent",
        "POST",
        lambda alice: f"/audio/voice_consents/{_consent(alice).id}",
        lambda: {"json": {"name": "Alice"}},
    ),
    Write("delete-consent", "DELETE", lambda alice: f"/audio/voice_consents/{_consent(alice).id}"),
    Write("delete-missing-consent", "DELETE", lambda alice: "/audio/voice_consents/cons_none"),
    Write("delete-voice", "DELETE", lambda alice: f"/audio/voices/{_MISSING}"),
    Write("delete-cloned-voice", "DELETE", lambda alice: f"/voice-cloning/voices/{_MISSING}"),
    Write("create-voice", "POST", lambda alice: "/audio/voices", lambda: {"data": {}}),
    Write("clone", "POST", lambda alice: "/voice-cloning/clone", lambda: {"data": {}}),
    Write("clone-youtube", "POST", lambda alice: "/voice-cloning/clone-from-youtube"),
    Write("clone-youtube-alias", "POST", lambda alice: "/audio/speech/voice-cloning/youtube"),
    Write("speech", "POST", lambda alice: "/audio/speech", lambda: {"json": {}}),
    Write("conversation", "POST", lambda alice: "/audio/conversation", lambda: {"json": {}}),
    Write("generate", "POST", lambda alice: "/voice-cloning/generate", lambda: {"json": {}}),
    Write(
        "preview",
        "POST",
        lambda alice: f"/voice-cloning/voices/{_MISSING}/preview",
        lambda: {"json": {}},
    ),
    Write("watermark", "POST", lambda alice: "/audio/watermark/detect", lambda: {"data": {}}),
]


@pytest.fixture
def api_at(live_server_url, alice_key, settings, media_root) -> Iterator[httpx.Client]:
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = BUDGET
    settings.RATE_LIMIT_CONCURRENT = 0
    with httpx.Client(
        base_url=live_server_url, headers={"Authorization": f"Bearer {alice_key}"}, timeout=60
    ) as client:
        yield client


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
@pytest.mark.parametrize("write", API_WRITES, ids=lambda write: write.name)
def test_each_api_write_is_refused_past_the_budget(api_at, alice, prefix: str, write: Write):
    paths = [prefix + write.path(alice) for _ in range(BUDGET + 1)]
    _wait_for_a_fresh_window()

    answers = [api_at.request(write.method, path, **write.kwargs()) for path in paths]

    for answer in answers[:BUDGET]:
        assert answer.status_code != 429, answer.text
    _assert_refused(answers[BUDGET])


def test_a_refused_write_does_nothing(api_at, alice, media_root):
    kept = _consent(alice)
    _wait_for_a_fresh_window()
    for _ in range(BUDGET):
        assert api_at.post("/v1/audio/voice_consents", **_consent_form()).status_code == 200

    refused_create = api_at.post("/v1/audio/voice_consents", **_consent_form())
    refused_delete = api_at.delete(f"/v1/audio/voice_consents/{kept.id}")
    refused_rename = api_at.post(f"/v1/audio/voice_consents/{kept.id}", json={"name": "Bo"})

    for refused in (refused_create, refused_delete, refused_rename):
        _assert_refused(refused)
    assert VoiceConsent.objects.filter(owner=alice).count() == BUDGET + 1
    assert VoiceConsent.objects.get(id=kept.id).name == "Al"


def test_one_keys_writes_leave_another_users_budget_alone(api_at, live_server_url, bob_key):
    _wait_for_a_fresh_window()
    for _ in range(BUDGET + 1):
        api_at.delete(f"/v1/audio/voices/{_MISSING}")

    with httpx.Client(
        base_url=live_server_url, headers={"Authorization": f"Bearer {bob_key}"}, timeout=60
    ) as bob:
        assert bob.delete(f"/v1/audio/voices/{_MISSING}").status_code == 404


# --- Over the live server, with a browser's session ----------------------------------------------


def _voice(owner) -> Voice:
    return Voice.objects.create(
        owner=owner, name=f"v-{uuid.uuid4().hex[:8]}", kind=Voice.Kind.CLONED, source="upload"
    )


WEB_WRITES = [
    Write("speech-link", "POST", lambda alice: "/voice-cloning/speech", lambda: {"data": {}}),
    Write(
        "speech-link-valid",
        "POST",
        lambda alice: "/voice-cloning/speech",
        lambda: {"data": {"model": "tts-1", "voice": "alloy", "input": "Hi."}},
    ),
    Write(
        "delete-voice",
        "POST",
        lambda alice: f"/voice-cloning/voices/{_voice(alice).id}/delete",
    ),
    Write("delete-missing-voice", "POST", lambda alice: f"/voice-cloning/voices/{_MISSING}/delete"),
    Write("clone", "POST", lambda alice: "/voice-cloning/clone", lambda: {"data": {}}),
]


@pytest.fixture
def browser(live_server_url, alice, settings, media_root) -> Iterator[httpx.Client]:
    """alice's signed-in browser: her session cookie, and a CSRF cookie and header that match."""
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = BUDGET
    settings.RATE_LIMIT_CONCURRENT = 0
    session = Client()
    session.force_login(alice)
    cookies = {"sessionid": session.cookies["sessionid"].value, "csrftoken": _CSRF}
    with httpx.Client(
        base_url=live_server_url, cookies=cookies, headers={"X-CSRFToken": _CSRF}, timeout=60
    ) as client:
        yield client


@pytest.mark.parametrize("write", WEB_WRITES, ids=lambda write: write.name)
def test_each_page_write_is_refused_past_the_budget(browser, alice, write: Write):
    paths = [write.path(alice) for _ in range(BUDGET + 1)]
    _wait_for_a_fresh_window()

    answers = [browser.request(write.method, path, **write.kwargs()) for path in paths]

    for answer in answers[:BUDGET]:
        assert answer.status_code not in (403, 429), answer.text
    _assert_refused(answers[BUDGET])


def test_a_refused_page_delete_deletes_nothing(browser, alice):
    voices = [_voice(alice) for _ in range(BUDGET + 1)]
    _wait_for_a_fresh_window()

    answers = [browser.post(f"/voice-cloning/voices/{voice.id}/delete") for voice in voices]

    assert [answer.status_code for answer in answers] == [200] * BUDGET + [429]
    assert Voice.objects.filter(id=voices[-1].id).exists()
