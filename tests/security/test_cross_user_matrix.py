"""The cross-user matrix on every route that takes a voice, a job or a consent: to bob (another
user), carol (staff: no more rights over the API than anyone) and a caller without a key,
alice's private things answer exactly as things that do not exist, under both API prefixes and
on the web UI's session routes, and nothing of alice's changes.
(tests/voices/test_voice_isolation.py has the voice detail, list, speech and delete routes.)
"""

import json
import uuid

import httpx
import pytest
from django.test import Client

from ingest.models import IngestJob
from voices.models import Voice, VoiceConsent

pytestmark = pytest.mark.django_db(transaction=True)

UNKNOWN_ID = str(uuid.uuid4())
UNKNOWN_NAME = "no-such-voice"

# (method, path, JSON body): {ref} is the voice, job or consent. Speaking routes refuse an
# unknown voice with a 400 (as OpenAI's speech API does), the others with a 404.
VOICE_ROUTES = [
    ("GET", "/audio/voices/{ref}", None),
    ("DELETE", "/audio/voices/{ref}", None),
    ("POST", "/audio/speech", {"model": "tts-1", "input": "Hi.", "voice": "{ref}"}),
    ("POST", "/audio/speech", {"model": "tts-1", "input": "Hi.", "voice": {"id": "{ref}"}}),
    ("POST", "/voice-cloning/voices/{ref}/preview", {"text": "Hi."}),
    ("DELETE", "/voice-cloning/voices/{ref}", None),
    ("POST", "/voice-cloning/generate", {"model": "tts-1", "voice_id": "{ref}", "text": "Hi."}),
]
JOB_ROUTES = [("GET", "/voice-cloning/jobs/{ref}", None)]
CONSENT_ROUTES = [
    ("GET", "/audio/voice_consents/{ref}", None),
    ("POST", "/audio/voice_consents/{ref}", {"name": "taken over"}),
    ("DELETE", "/audio/voice_consents/{ref}", None),
    (
        "POST",
        "/voice-cloning/clone-from-youtube",
        {
            "youtube_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "voice_name": "mine now",
            "consent": "{ref}",
        },
    ),
]
PREFIXES = ["/v1", "/api/v1"]


@pytest.fixture
def job(alice) -> IngestJob:
    return IngestJob.objects.create(owner=alice, kind=IngestJob.Kind.UPLOAD, request={"name": "x"})


@pytest.fixture
def consent(alice) -> VoiceConsent:
    return VoiceConsent.objects.create(
        id="cons_" + "a" * 32, owner=alice, name="Alice", language="en", recording="consents/x"
    )


def _fill(template, ref: str):
    if template is None:
        return None
    return json.loads(json.dumps(template).replace("{ref}", ref))


def _answer(client: httpx.Client, method: str, path: str, body, ref: str) -> tuple[int, str]:
    response = client.request(
        method, path.replace("{ref}", ref), json=_fill(body, ref) if body else None
    )
    # The reference itself may be echoed ("No voice 'x'"): compare everything else.
    return response.status_code, response.text.replace(ref, "<ref>")


def _matrix(live_server_url, keys, routes, refs) -> list[str]:
    """Every (caller, prefix, route, reference) whose answer differs from an unknown one's."""
    differences = []
    for key in keys:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        with httpx.Client(base_url=live_server_url, headers=headers, timeout=60) as client:
            for prefix in PREFIXES:
                for method, path, body in routes:
                    for ref, unknown in refs:
                        seen = _answer(client, method, prefix + path, body, ref)
                        missing = _answer(client, method, prefix + path, body, unknown)
                        if seen != missing or seen[0] < 400:
                            differences.append(f"{key and key[:12]} {method} {prefix}{path} {ref}")
    return differences


def test_others_see_alices_private_voice_as_nonexistent_on_every_route(
    live_server_url, private_voice, bob_key, carol_key, settings
):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    refs = [(str(private_voice.id), UNKNOWN_ID), (private_voice.name, UNKNOWN_NAME)]

    differences = _matrix(live_server_url, [bob_key, carol_key, None], VOICE_ROUTES, refs)

    assert differences == []
    assert Voice.objects.filter(id=private_voice.id, name="alices-narrator").exists()


def test_others_see_alices_job_and_consent_as_nonexistent(
    live_server_url, job, consent, bob_key, carol_key, media_root, settings
):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    keys = [bob_key, carol_key, None]

    differences = _matrix(live_server_url, keys, JOB_ROUTES, [(str(job.id), UNKNOWN_ID)])
    differences += _matrix(
        live_server_url, keys, CONSENT_ROUTES, [(consent.id, "cons_" + "b" * 32)]
    )

    assert differences == []
    consent.refresh_from_db()
    assert consent.name == "Alice"
    assert IngestJob.objects.filter(owner=consent.owner).count() == 1


def test_the_owner_reaches_her_own_voice_on_the_same_routes(
    live_server_url, private_voice, alice_key
):
    # The control: the references the matrix uses do name something, for alice.
    with httpx.Client(
        base_url=live_server_url, headers={"Authorization": f"Bearer {alice_key}"}, timeout=60
    ) as client:
        detail = client.get(f"/v1/audio/voices/{private_voice.id}")
        by_name = client.get(f"/api/v1/audio/voices/{private_voice.name}")
        generate = client.post(
            "/v1/voice-cloning/generate", json={"voice_id": private_voice.name, "text": "Hi."}
        )

    assert detail.status_code == by_name.status_code == 200
    # Found, then refused for another reason: the tests' CSM has no checkpoint.
    assert generate.status_code == 503


def test_the_web_ui_routes_treat_alices_private_voice_as_nonexistent(private_voice, bob, carol):
    for user in (bob, carol):
        browser = Client()
        browser.force_login(user)
        for ref, unknown in [(str(private_voice.id), UNKNOWN_ID)]:
            for method, path in [
                ("get", "/voice-cloning/voices/{ref}/audio"),
                ("post", "/voice-cloning/voices/{ref}/delete"),
            ]:
                seen = getattr(browser, method)(path.format(ref=ref))
                missing = getattr(browser, method)(path.format(ref=unknown))
                assert seen.status_code == missing.status_code == 404, (user, path)
        for ref, unknown in [(str(private_voice.id), UNKNOWN_ID), (private_voice.name, "x")]:
            fields = {"model": "tts-1", "input": "Hi."}
            seen = browser.post("/voice-cloning/speech", {**fields, "voice": ref})
            missing = browser.post("/voice-cloning/speech", {**fields, "voice": unknown})
            assert seen.status_code == missing.status_code == 400
            assert seen.json()["error"]["code"] == missing.json()["error"]["code"]
        page = browser.get("/voice-cloning").content.decode()
        assert private_voice.name not in page
    assert Voice.objects.filter(id=private_voice.id).exists()
