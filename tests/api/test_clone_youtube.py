"""POST /v1/voice-cloning/clone-from-youtube and its documented alias: links refused before
anything is fetched, and whole clones with real yt-dlp against a video page on a loopback
server (the `video_site` fixture in tests/support/fixtures.py)."""

import pytest

from ingest.models import IngestJob
from tests.support.audio import RATE, TRANSCRIPT, recording
from tests.support.cloning import (
    MEDIA_HOST,
    assert_failed_in_job,
    assert_refused_before_any_job,
    loopback_http_server,
)
from tests.support.storage import stored_files
from voices.models import Voice

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]


YOUTUBE_ROUTES = ["/v1/voice-cloning/clone-from-youtube", "/v1/audio/speech/voice-cloning/youtube"]


REFUSED_URLS = [
    "http://127.0.0.1/x",
    "http://169.254.169.254/",
    "file:///etc/passwd",
    "https://youtube.com.evil.com/watch?v=x",
    "http://localhost/watch?v=x",
    "http://[::1]/x",
    "http://2130706433/x",
    "http://0x7f.1/x",
    "http://10.0.0.1/watch?v=x",
    "gopher://youtube.com/x",
    "https://user:pass@youtube.com/watch?v=x",
    "https://www.youtube.com:8443/watch?v=x",
]


@pytest.mark.parametrize("route", YOUTUBE_ROUTES)
@pytest.mark.parametrize("url", REFUSED_URLS)
def test_refused_links_are_answered_at_once_and_nothing_is_fetched(
    api, media_root, monkeypatch, route, url
):
    # given yt-dlp must never be started
    from ingest import download

    def no_download(*args, **kwargs):
        raise AssertionError("yt-dlp was started for a refused link")

    monkeypatch.setattr(download, "_GuardedYoutubeDL", no_download)

    # when alice asks for a clip from a link that is not an allowed public host
    response = api.post(
        route, json={"youtube_url": url, "voice_name": "clip", "consent": True, "duration": 30}
    )

    # then it is refused before any job exists
    error = assert_refused_before_any_job(response, "url_not_allowed", media_root)
    assert error["param"] == "youtube_url"


@pytest.mark.parametrize("route", YOUTUBE_ROUTES)
def test_a_refused_loopback_link_reaches_no_server(api, media_root, route):
    # given a server on loopback, which the link points at
    requests: list[str] = []
    with loopback_http_server(requests) as base:
        response = api.post(
            route,
            json={"youtube_url": f"{base}/watch?v=x", "voice_name": "clip", "consent": True},
        )

    # then the link is refused and the server never hears of it
    assert_refused_before_any_job(response, "url_not_allowed", media_root)
    assert requests == []


@pytest.mark.parametrize("route", YOUTUBE_ROUTES)
def test_a_clip_longer_than_ten_minutes_is_refused(api, media_root, route):
    response = api.post(
        route,
        json={
            "youtube_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "voice_name": "clip",
            "consent": True,
            "duration": 601,
        },
    )

    error = assert_refused_before_any_job(response, "duration_too_long", media_root)
    assert error["param"] == "duration"


def test_a_clip_longer_than_the_configured_limit_is_refused(api, media_root, settings):
    settings.YOUTUBE_MAX_DURATION_SECONDS = 60.0

    response = api.post(
        "/v1/voice-cloning/clone-from-youtube",
        json={
            "youtube_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "voice_name": "clip",
            "consent": True,
            "duration": 120,
        },
    )

    error = assert_refused_before_any_job(response, "duration_too_long", media_root)
    assert "60 seconds" in error["message"]


def test_a_youtube_clip_without_consent_is_refused(api, media_root):
    response = api.post(
        "/v1/voice-cloning/clone-from-youtube",
        json={"youtube_url": "https://www.youtube.com/watch?v=x", "voice_name": "clip"},
    )

    assert_refused_before_any_job(response, "consent_required", media_root)


def test_a_youtube_clip_becomes_a_voice(api, media_root, video_site):
    # when alice clones from a section of a video, through the documented alias
    response = api.post(
        "/v1/audio/speech/voice-cloning/youtube",
        json={
            "youtube_url": f"http://{MEDIA_HOST}/watch",
            "voice_name": "from-video",
            "start_time": 0,
            "duration": 60,
            "description": "From a video.",
            "transcript": TRANSCRIPT,
            "consent": True,
        },
    )

    # then the page and the audio were fetched, and the voice came back in the route's shape
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "voice_id",
        "name",
        "description",
        "created_at",
        "audio_duration",
        "sample_count",
    }
    assert (body["name"], body["description"]) == ("from-video", "From a video.")
    assert 3.0 <= body["audio_duration"] <= recording().size / RATE
    assert video_site[0] == "/watch"
    assert "/clip.m4a" in video_site
    voice = Voice.objects.get(id=body["voice_id"])
    assert voice.source == Voice.Source.YOUTUBE
    assert voice.source_url == f"http://{MEDIA_HOST}/watch"
    assert voice.reference_text == TRANSCRIPT
    job = IngestJob.objects.get()
    assert (job.kind, job.status) == ("youtube", "succeeded")
    # nothing but the reference is kept: the download lived in a temporary folder
    assert stored_files(media_root) == [f"voices/{voice.id}/reference.wav"]


@pytest.mark.parametrize(
    ("path", "start_time", "code", "words"),
    [
        ("/watch", 500, "start_after_end", "after the end"),
        ("/long", 0, "video_too_long", "the limit is 10800 seconds"),
        ("/missing", 0, "download_failed", "HTTP error 404"),
    ],
)
def test_a_youtube_clip_that_cannot_be_used_fails_its_job(
    api, media_root, video_site, path, start_time, code, words
):
    response = api.post(
        "/v1/voice-cloning/clone-from-youtube",
        json={
            "youtube_url": f"http://{MEDIA_HOST}{path}",
            "voice_name": "from-video",
            "start_time": start_time,
            "duration": 30,
            "transcript": TRANSCRIPT,
            "consent": True,
        },
    )

    error = assert_failed_in_job(response, code, media_root)
    assert words in error["message"]
    assert "/tmp" not in error["message"]
    # the video's checks come before its audio is fetched
    assert "/clip.m4a" not in video_site
