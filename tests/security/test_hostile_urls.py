"""Cloning links beyond the refusal matrix of tests/ingest/test_download.py: refused before
anything is resolved or fetched, at the API as in the validator."""

import json
import socket

import pytest
from hostile_cases import HOSTILE_URLS, Case

from ingest.download import validate_source_url
from ingest.errors import IngestError
from ingest.models import IngestJob


class RecordingResolver:
    """getaddrinfo that answers a public address for any name, and remembers what it was asked."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, *rest: int) -> list:
        self.calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("142.250.0.1", port))]


@pytest.mark.parametrize("case", HOSTILE_URLS, ids=lambda case: case.name)
def test_hostile_links_are_refused_before_anything_is_resolved(case: Case):
    resolver = RecordingResolver()

    with pytest.raises(IngestError) as caught:
        validate_source_url(case.value, resolver=resolver)

    assert caught.value.code == "url_not_allowed"
    assert caught.value.param == "youtube_url"
    assert resolver.calls == []


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        # IDNA maps these dots and cases to the allowed host: the same host, not a look-alike
        ("https://www\u3002youtube\u3002com/watch?v=dQw4w9WgXcQ", "www.youtube.com"),
        ("HTTPS://WWW.YOUTUBE.COM/watch?v=dQw4w9WgXcQ", "www.youtube.com"),
        ("https://youtube.com./watch?v=dQw4w9WgXcQ", "youtube.com"),
    ],
)
def test_spellings_of_an_allowed_host_resolve_only_that_host(url, normalised):
    resolver = RecordingResolver()

    validate_source_url(url, resolver=resolver)

    assert resolver.calls == [normalised]


@pytest.mark.django_db(transaction=True)
def test_the_api_refuses_every_hostile_link_without_a_job(api, media_root):
    for case in HOSTILE_URLS:
        body = {"youtube_url": case.value, "voice_name": "host", "consent": True}
        # json.dumps escapes a lone surrogate as "\ud800", as a hostile client sends it
        response = api.post(
            "/v1/voice-cloning/clone-from-youtube",
            content=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )

        assert response.status_code == 400, (case.name, response.text)
        assert response.json()["error"]["param"] == "youtube_url", case.name
    assert not IngestJob.objects.exists()
