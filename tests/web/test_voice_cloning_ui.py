"""The web UI in a real browser: Debian's chromium, driven by Playwright, against the live
uvicorn server. Log in, clone a voice from a file and see it listed, follow a job over its
WebSocket, generate speech that plays, delete with confirmation, markup in names stays text,
CSRF and other users' voices; screenshots of every tab under var/screenshots/.
"""

import json
import re
import threading
from typing import Any
from urllib.parse import urlparse

import pytest
from django.db import connections
from playwright.sync_api import expect
from web_ui_support import PHONE, screenshot

from ingest.models import IngestJob
from tests.support.audio import TRANSCRIPT, sample_wav
from tests.support.voices import cloned_voice as stored_voice
from voices.models import Voice

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]

XSS_NAME = "<img src=x onerror=alert(1)>"
AUDIO_READY = """() => {
  const audio = document.getElementById("speech-audio");
  return audio.readyState >= 2 && audio.duration > 0;
}"""
# Resolves with the duration once the element has loaded the file's metadata.
LOAD_METADATA = """audio => new Promise((resolve, reject) => {
  audio.addEventListener("loadedmetadata", () => resolve(audio.duration), {once: true});
  audio.addEventListener("error", () => reject(new Error("media error " + audio.error.code)),
                         {once: true});
  audio.preload = "metadata";
  audio.load();
})"""


def upload(page: Any, name: str, wav: bytes, *, consent: bool = True) -> None:
    """Fill the Clone Voice form with the sample recording and its transcript, and send it."""
    page.get_by_role("tab", name="Clone Voice").click()
    page.set_input_files(
        "#clone-file", files=[{"name": "sample.wav", "mimeType": "audio/wav", "buffer": wav}]
    )
    page.fill("#clone-name", name)
    page.fill("#clone-transcript", TRANSCRIPT)
    page.set_checked("#clone-consent", consent)
    page.get_by_role("button", name="Clone voice").click()


@pytest.fixture
def wav() -> bytes:
    # Made on the test's thread: the browser's thread only hands the bytes over.
    return sample_wav()


# --- Getting in -----------------------------------------------------------------------------------


def test_the_root_sends_a_visitor_to_log_in_and_then_to_voice_cloning(browse, alice):
    def steps(page: Any) -> tuple[str, str]:
        page.goto("/")
        at_login = urlparse(page.url)
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("alice-pass-1")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/voice-cloning")
        expect(page.get_by_role("heading", name="Voice cloning")).to_be_visible()
        page.goto("/")
        return f"{at_login.path}?{at_login.query}", urlparse(page.url).path

    login_url, after = browse(steps, login=None)

    assert login_url == "/login/?next=/voice-cloning"
    assert after == "/voice-cloning"


# --- Clone Voice ----------------------------------------------------------------------------------


def test_it_clones_a_voice_from_an_uploaded_file_and_lists_it(browse, alice, wav):
    def steps(page: Any) -> dict:
        upload(page, "narrator", wav)
        outcome = page.locator("#clone-status .outcome")
        expect(outcome).to_contain_text("The voice “narrator” is ready.")
        screenshot(page, "clone-done")
        page.get_by_role("link", name="Open My Voices").click()
        page.wait_for_url("**/voice-cloning?tab=voices")
        card = page.locator("#own-voices .voice", has_text="narrator")
        expect(card).to_be_visible()
        return {
            "duration": card.locator(".duration").inner_text(),
            "bars": card.locator("svg.wave path").get_attribute("d").count("M"),
            "preview_seconds": card.locator("audio").evaluate(LOAD_METADATA),
        }

    seen = browse(steps)

    voice = Voice.objects.get(owner=alice)
    assert voice.name == "narrator"
    assert voice.reference_text == TRANSCRIPT
    assert voice.consent_method == "attested"
    assert seen["duration"] == f"{voice.duration_seconds:.1f} s"
    assert seen["bars"] == 96
    assert seen["preview_seconds"] == pytest.approx(voice.duration_seconds, abs=0.05)


def test_cloning_without_consent_is_refused_with_a_readable_message(browse, alice, wav):
    def steps(page: Any) -> str:
        upload(page, "narrator", wav, consent=False)
        outcome = page.locator("#clone-status .outcome.error")
        expect(outcome).to_contain_text("Tick the consent box")
        return outcome.inner_text()

    message = browse(steps)

    assert "consent=true" not in message
    assert IngestJob.objects.count() == 0
    assert not Voice.objects.exists()


def test_clone_progress_arrives_over_the_job_websocket(browse, alice, wav, monkeypatch):
    # given a worker that takes the job only once the page listens to it
    from ingest.pipeline import job_run
    from ingest.tasks import ingest_job_task

    listening = threading.Event()

    def worker(job_id: str) -> None:
        try:
            listening.wait(timeout=60)
            job_run(job_id)
        finally:
            connections.close_all()

    def delay(job_id: str) -> None:
        threading.Thread(target=worker, args=[job_id]).start()

    monkeypatch.setattr(ingest_job_task, "delay", delay)

    def steps(page: Any) -> dict:
        frames: list[str] = []
        sockets: list[str] = []

        def on_socket(socket: Any) -> None:
            sockets.append(socket.url)
            socket.on("framereceived", lambda payload: frames.append(payload))
            # The first frame is the job's state when the socket opened: now it listens.
            socket.on("framereceived", lambda payload: listening.set())

        page.on("websocket", on_socket)
        # when alice clones a voice and the job runs in the background
        upload(page, "narrator", wav)
        expect(page.locator("#clone-status .outcome")).to_contain_text("is ready", timeout=120_000)
        return {"sockets": sockets, "frames": frames}

    seen = browse(steps)

    # then the page followed the job over its WebSocket, from the queue to the end
    job = IngestJob.objects.get()
    assert [urlparse(url).path for url in seen["sockets"]] == [f"/ws/jobs/{job.id}/"]
    states = [json.loads(frame)["status"] for frame in seen["frames"]]
    assert states[0] == "queued"
    assert "running" in states
    assert states[-1] == "succeeded"
    assert Voice.objects.filter(id=job.id, owner=alice).exists()


# --- Generate Speech ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mp3", "wav", "opus", "aac", "flac"])
def test_generated_speech_streams_into_the_player_and_plays(browse, alice, fmt):
    def steps(page: Any) -> dict:
        page.get_by_role("tab", name="Generate Speech").click()
        page.select_option("#speech-voice", "alloy")
        page.select_option("#speech-model", "tts-1")
        page.select_option("#speech-format", fmt)
        page.fill("#speech-input", "Hello from the web page.")
        fetched: list[str] = []
        page.on(
            "request",
            lambda request: (
                fetched.append(request.url) if "/voice-cloning/speech/" in request.url else None
            ),
        )
        with page.expect_response(lambda r: "/voice-cloning/speech/" in r.url) as streamed:
            page.get_by_role("button", name="Generate").click()
        page.wait_for_function(AUDIO_READY)
        page.wait_for_function("() => document.getElementById('speech-audio').ended")
        audio = page.locator("#speech-audio")
        download = page.locator("#speech-download")
        return {
            "headers": streamed.value.all_headers(),
            "duration": audio.evaluate("a => a.duration"),
            "outcome": page.locator("#speech-result .outcome").inner_text(),
            "download": (download.get_attribute("href"), download.get_attribute("download")),
            "fetched": fetched,
        }

    seen = browse(steps)

    # the audio arrived as a stream (no length known in advance), in the chosen format
    assert "content-length" not in seen["headers"]
    assert seen["headers"]["content-type"].startswith("audio/")
    assert seen["duration"] > 0.5
    assert seen["outcome"].startswith("Done:")
    # one generation: the player did not ask twice
    assert len(seen["fetched"]) == 1, seen["fetched"]
    href, filename = seen["download"]
    assert href == f"{urlparse(seen['fetched'][0]).path}?download=1"
    assert filename == f"speech.{fmt}"


def test_the_download_link_gives_the_audio_as_a_file(browse, alice):
    def steps(page: Any) -> tuple[str, bytes]:
        page.get_by_role("tab", name="Generate Speech").click()
        page.fill("#speech-input", "Hello from the web page.")
        page.get_by_role("button", name="Generate").click()
        page.wait_for_function(AUDIO_READY)
        with page.expect_download() as downloading:
            page.locator("#speech-download").click()
        download = downloading.value
        with open(download.path(), "rb") as handle:
            return download.suggested_filename, handle.read()

    filename, data = browse(steps)

    assert filename == "speech.mp3"
    assert data[:3] == b"ID3" or data[0] == 0xFF  # an MP3 stream


def test_generation_errors_are_shown_as_readable_messages(browse, alice):
    stored_voice(alice, "narrator")

    def steps(page: Any) -> dict:
        seen = {}
        page.get_by_role("tab", name="Generate Speech").click()
        outcome = page.locator("#speech-result .outcome.error")
        page.fill("#speech-input", "Hello.")
        # a cloned voice picks the CSM model, which has no weights in the tests
        page.select_option("#speech-voice", label="narrator")
        seen["model"] = page.input_value("#speech-model")
        page.get_by_role("button", name="Generate").click()
        expect(outcome).to_contain_text(re.compile("csm", re.IGNORECASE))
        seen["csm"] = outcome.inner_text()
        # the cloned voice with the eSpeak engine (the tests' default engine)
        page.select_option("#speech-model", "tts-1")
        page.get_by_role("button", name="Generate").click()
        expect(outcome).to_contain_text("cannot speak")
        seen["espeak"] = outcome.inner_text()
        # nothing to say
        page.select_option("#speech-voice", "alloy")
        page.fill("#speech-input", "   ")
        page.get_by_role("button", name="Generate").click()
        expect(outcome).to_contain_text("must not be empty")
        seen["empty"] = outcome.inner_text()
        seen["invalid"] = page.locator(".field.invalid textarea").get_attribute("id")
        return seen

    seen = browse(steps)

    assert seen["model"] == "csm-1b"
    assert "is a cloned voice, which the 'espeak' engine cannot speak" in seen["espeak"]
    assert seen["empty"] == "Invalid value for 'input': The input must not be empty."
    assert seen["invalid"] == "speech-input"
    assert "csm" in seen["csm"].lower()


# --- My Voices ------------------------------------------------------------------------------------


def test_deleting_a_voice_asks_first_and_then_removes_it(browse, alice):
    voice = stored_voice(alice, "narrator")

    def steps(page: Any) -> dict:
        answers = iter([False, True])
        asked: list[str] = []
        posted: list[str] = []

        def on_dialog(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept() if next(answers) else dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
        page.goto("/voice-cloning?tab=voices")
        card = page.locator(".voice", has_text="narrator")
        # when she changes her mind at the question, nothing happens
        card.get_by_role("button", name="Delete").click()
        expect(card).to_be_visible()
        sent_after_no = list(posted)
        # when she confirms, the voice goes
        card.get_by_role("button", name="Delete").click()
        expect(card).to_have_count(0)
        expect(page.locator("#voices-message")).to_have_text("Deleted the voice “narrator”.")
        expect(page.locator("#own-voices-empty")).to_be_visible()
        options = page.locator("#speech-voice option").all_inner_texts()
        return {"asked": asked, "sent_after_no": sent_after_no, "options": options}

    seen = browse(steps)

    assert seen["asked"] == ["Delete the voice “narrator”? This cannot be undone."] * 2
    assert seen["sent_after_no"] == []
    assert "narrator" not in seen["options"]
    assert not Voice.objects.filter(id=voice.id).exists()


def test_a_voice_named_like_markup_is_shown_as_text(browse, alice, wav):
    stored_voice(alice, XSS_NAME, description=XSS_NAME)

    def steps(page: Any) -> dict:
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto("/voice-cloning?tab=voices")
        expect(page.locator("#own-voices .voice-name")).to_have_text(XSS_NAME)
        expect(page.locator(".voice .description")).to_have_text(XSS_NAME)
        option = page.locator("#speech-voice option", has_text=XSS_NAME).inner_text()
        # the page's script puts the name into messages as text too: a taken name
        upload(page, XSS_NAME, wav)
        outcome = page.locator("#clone-status .outcome.error")
        expect(outcome).to_contain_text("You already have a voice named")
        return {
            "option": option,
            "outcome": outcome.inner_text(),
            "images": page.locator("img").count(),
            "dialogs": dialogs,
        }

    seen = browse(steps)

    assert seen["option"] == XSS_NAME
    assert XSS_NAME in seen["outcome"]
    assert seen["images"] == 0
    assert seen["dialogs"] == []


def test_a_post_without_the_csrf_token_is_refused(browse, alice):
    voice = stored_voice(alice, "narrator")
    delete_url = f"/voice-cloning/voices/{voice.id}/delete"

    def steps(page: Any) -> list[int]:
        page.goto("/voice-cloning?tab=voices")
        return page.evaluate(
            """async (deleteUrl) => {
              const speech = new URLSearchParams({model: "tts-1", voice: "alloy", input: "Hi."});
              const answers = await Promise.all([
                fetch(deleteUrl, {method: "POST"}),
                fetch("/voice-cloning/speech", {method: "POST", body: speech}),
                fetch(deleteUrl, {method: "POST", headers: {"X-CSRFToken": "forged"}}),
              ]);
              return answers.map((answer) => answer.status);
            }""",
            delete_url,
        )

    assert browse(steps) == [403, 403, 403]
    assert Voice.objects.filter(id=voice.id).exists()


def test_another_users_private_voice_is_not_listed_nor_reachable(browse, alice, bob):
    secret = stored_voice(bob, "bob's secret")
    shared = stored_voice(bob, "bob's public", public=True)

    def steps(page: Any) -> dict:
        page.goto("/voice-cloning?tab=voices")
        token = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
        statuses = page.evaluate(
            """async ([secret, shared, token]) => {
              const post = (url) => fetch(url, {method: "POST", headers: {"X-CSRFToken": token}});
              const answers = await Promise.all([
                post("/voice-cloning/voices/" + secret + "/delete"),
                post("/voice-cloning/voices/" + shared + "/delete"),
                fetch("/voice-cloning/voices/" + secret + "/audio"),
                fetch("/voice-cloning/voices/" + shared + "/audio"),
              ]);
              return answers.map((answer) => answer.status);
            }""",
            [str(secret.id), str(shared.id), token],
        )
        shared_card = page.locator(".voice", has_text="bob's public")
        return {
            "statuses": statuses,
            "page": page.content(),
            "shared_deletable": shared_card.get_by_role("button", name="Delete").count(),
            "options": page.locator("#speech-voice option").all_inner_texts(),
        }

    seen = browse(steps)

    assert seen["statuses"] == [404, 403, 404, 200]
    assert "bob's secret" not in seen["page"]
    assert str(secret.id) not in seen["page"]
    assert "bob&#x27;s public" in seen["page"] or "bob's public" in seen["page"]
    assert seen["shared_deletable"] == 0
    assert "bob's secret" not in seen["options"]
    assert "bob's public" in seen["options"]
    assert Voice.objects.filter(id__in=[secret.id, shared.id]).count() == 2


# --- Looks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_screenshots_of_every_tab(browse, alice, bob, viewport):
    stored_voice(alice, "narrator", description="Reads the evening news.")
    stored_voice(alice, XSS_NAME)
    stored_voice(bob, "bob's public", public=True)

    def steps(page: Any) -> list[int]:
        widths = []
        for tab, name in (("clone", "Clone Voice"), ("voices", "My Voices")):
            page.get_by_role("tab", name=name).click()
            screenshot(page, f"{viewport}-{tab}")
            widths.append(page.evaluate("document.documentElement.scrollWidth"))
        page.get_by_role("tab", name="Generate Speech").click()
        page.fill("#speech-input", "Hello from the web page.")
        page.get_by_role("button", name="Generate").click()
        page.wait_for_function(AUDIO_READY)
        screenshot(page, f"{viewport}-generate")
        widths.append(page.evaluate("document.documentElement.scrollWidth"))
        for path in ("/connect", "/keys/"):
            page.goto(path)
            screenshot(page, f"{viewport}-{path.strip('/').replace('/', '-')}")
            widths.append(page.evaluate("document.documentElement.scrollWidth"))
        return widths

    kwargs = {"viewport": PHONE} if viewport == "phone" else {}
    widths = browse(steps, **kwargs)

    # nothing sticks out sideways: the page fits the screen
    if viewport == "phone":
        assert max(widths) <= PHONE["width"]
