"""The browser side: markup in user-chosen text comes out escaped (pages, admin), the page's
script never builds HTML from strings, every session POST needs the CSRF token, a session never
authenticates the API (which skips CSRF), and the admin lives where ADMIN_URL puts it.
(The real-browser checks are in tests/web/test_voice_cloning_ui.py.)
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey
from accounts.services import api_key_create
from ingest.models import IngestJob
from voices.models import Voice

pytestmark = pytest.mark.django_db

XSS = '<img src=x onerror="alert(1)">'
XSS_ESCAPED = "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"
TEMPLATES = Path(settings.BASE_DIR) / "templates"
# The pages' own static files (scripts, styles).
WEB_STATIC = Path(settings.BASE_DIR) / "web" / "static"


@pytest.fixture
def marked_up_voice(alice) -> Voice:
    return Voice.objects.create(
        owner=alice,
        name=XSS,
        description=XSS,
        reference_text=XSS,
        kind=Voice.Kind.CLONED,
        source=Voice.Source.UPLOAD,
        source_url="https://www.youtube.com/watch?v=x&q=" + XSS,
        reference_audio="voices/x/reference.wav",
    )


def _assert_escaped(html: str) -> None:
    assert XSS not in html
    assert XSS_ESCAPED in html or "&lt;img src=x onerror=&quot;" in html


def test_markup_in_a_voice_is_escaped_in_the_admin(admin_client, marked_up_voice):
    pages = [
        reverse("admin:voices_voice_changelist"),
        reverse("admin:voices_voice_change", args=[marked_up_voice.id]),
        reverse("admin:voices_voice_delete", args=[marked_up_voice.id]),
        reverse("admin:voices_voice_changelist") + "?q=" + XSS,
    ]
    for url in pages:
        response = admin_client.get(url)

        assert response.status_code == 200, url
        _assert_escaped(response.content.decode())


def test_markup_in_a_voice_is_escaped_on_the_voice_cloning_page(client, alice, marked_up_voice):
    client.force_login(alice)

    html = client.get("/voice-cloning?tab=voices").content.decode()

    _assert_escaped(html)


def test_markup_in_a_key_name_is_escaped_on_the_keys_page_and_in_the_admin(
    client, admin_client, alice
):
    api_key_create(owner=alice, name=XSS)
    client.force_login(alice)

    _assert_escaped(client.get("/keys/").content.decode())
    _assert_escaped(admin_client.get(reverse("admin:accounts_apikey_changelist")).content.decode())


def test_the_page_script_never_builds_html_from_strings():
    scripts = [
        *WEB_STATIC.rglob("*.js"),
        *TEMPLATES.rglob("*.js"),
        *TEMPLATES.rglob("*.html"),
    ]
    assert any(path.name == "voice_cloning.js" for path in scripts)
    sinks = re.compile(
        r"\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|\beval\(|new Function\("
    )
    for path in scripts:
        assert not sinks.search(path.read_text()), path


def test_no_template_turns_escaping_off():
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        assert "|safe" not in text, path
        assert "autoescape off" not in text, path


def test_every_session_post_needs_the_csrf_token(alice, carol, marked_up_voice):
    key, _ = api_key_create(owner=alice, name="kept")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    staff = Client(enforce_csrf_checks=True)
    carol.is_superuser = True
    carol.save()
    staff.force_login(carol)
    anonymous = Client(enforce_csrf_checks=True)

    posts = [
        (anonymous, reverse("login"), {"username": "alice", "password": "alice-pass-1"}),
        (anonymous, reverse("admin:login"), {"username": "carol", "password": "carol-pass-1"}),
        (browser, reverse("logout"), {}),
        (browser, reverse("api-keys"), {"name": "sneaky"}),
        (browser, reverse("api-key-revoke", args=[key.id]), {}),
        (browser, reverse("ui-voice-delete", args=[marked_up_voice.id]), {}),
        (browser, reverse("ui-speech"), {"model": "tts-1", "voice": "alloy", "input": "Hi."}),
        (browser, reverse("ui-clone"), {"source": "youtube", "youtube_url": "x", "name": "n"}),
        (staff, reverse("admin:voices_voice_delete", args=[marked_up_voice.id]), {"post": "yes"}),
        (
            staff,
            reverse("admin:voices_voice_changelist"),
            {"action": "publish", "_selected_action": [str(marked_up_voice.id)]},
        ),
        (staff, reverse("admin:logout"), {}),
    ]
    for client, url, data in posts:
        assert client.post(url, data).status_code == 403, url

    # Nothing happened: alice is still signed in, her key and voice are as they were.
    assert browser.get(reverse("api-keys")).status_code == 200
    assert ApiKey.objects.filter(owner=alice).count() == 1
    assert ApiKey.objects.get(id=key.id).revoked is None
    marked_up_voice.refresh_from_db()
    assert not marked_up_voice.is_public
    assert IngestJob.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_signed_in_browser_cannot_use_the_api_without_a_key(
    live_server_url, alice, marked_up_voice
):
    # The API skips CSRF; were it to accept the session cookie, any site could drive it.
    import httpx

    browser = Client()
    browser.force_login(alice)
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value
    with httpx.Client(
        base_url=live_server_url, cookies={settings.SESSION_COOKIE_NAME: cookie}, timeout=30
    ) as client:
        delete = client.delete(f"/v1/audio/voices/{marked_up_voice.id}")
        speech = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hi."})
        detail = client.get(f"/v1/audio/voices/{marked_up_voice.id}")

    assert delete.status_code == speech.status_code == 401
    assert detail.status_code == 404  # anonymous: a private voice is not there
    assert Voice.objects.filter(id=marked_up_voice.id).exists()


_ADMIN_URL_CHECK = """
import django
django.setup()
from django.test import Client
from django.urls import reverse
client = Client(HTTP_HOST="127.0.0.1")
print(reverse("admin:index"), client.get("/backstage-7f3a/").status_code,
      client.get("/admin/").status_code)
"""


def test_the_admin_moves_to_admin_url_and_leaves_nothing_at_admin(tmp_path):
    env = {
        **os.environ,
        "ADMIN_URL": "/backstage-7f3a/",
        "VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "csmsite.settings",
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)

    completed = subprocess.run(
        [sys.executable, "-c", _ADMIN_URL_CHECK],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    # the admin answers at its path (sending a visitor to its sign-in), /admin/ is unknown
    assert completed.stdout.split() == ["/backstage-7f3a/", "302", "404"]


def test_hostile_speech_links_are_a_404(client, alice):
    client.force_login(alice)
    for token in ["%00", "a%00b", "x" * 5000, "..%2F..%2Fkeys", "%ED%A0%80", "%0d%0aX:%20y"]:
        response = client.get(f"/voice-cloning/speech/{token}")

        assert response.status_code == 404, token
        assert response.json()["error"]["code"] in {"expired", "unknown_url"}
