"""A job WebSocket lives only as long as the credential that opened it: revoke the key, or
sign the session out, and the socket closes with 4401, between updates and at the next one.
"""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from websockets.sync.client import ClientConnection, connect

from accounts.services import api_key_create, api_key_revoke
from ingest import clean, consumers
from ingest.models import IngestJob
from tests.support.cloning import clone
from tests.support.websockets import messages_until_closed

pytestmark = pytest.mark.django_db(transaction=True)

# Not a performance bound: only tells a socket that closes from one left open.
WAIT = 60
SHORT_LIFE = timedelta(seconds=2)


@pytest.fixture
def running_job(alice) -> IngestJob:
    return IngestJob.objects.create(
        owner=alice, kind="upload", status=IngestJob.Status.RUNNING, stage="cleaning"
    )


@pytest.fixture
def quick_recheck(monkeypatch) -> None:
    monkeypatch.setattr(consumers, "RECHECK_SECONDS", 0.1)


@pytest.fixture
def no_recheck_between_updates(monkeypatch) -> None:
    # Only an update can find the credential gone.
    monkeypatch.setattr(consumers, "RECHECK_SECONDS", 3600)


@contextmanager
def job_socket(
    live_server_url: str, job_id: object, headers: dict[str, str]
) -> Iterator[ClientConnection]:
    url = f"{live_server_url.replace('http://', 'ws://')}/ws/jobs/{job_id}/"
    with connect(url, additional_headers=headers, origin=live_server_url, open_timeout=WAIT) as ws:
        yield ws


def close_code(ws: ClientConnection) -> tuple[list[dict], int | None]:
    return messages_until_closed(ws, timeout=WAIT)


def signed_in_browser(user) -> tuple[Client, dict[str, str]]:
    browser = Client()
    browser.force_login(user)
    cookie = browser.cookies[django_settings.SESSION_COOKIE_NAME].value
    return browser, {"Cookie": f"{django_settings.SESSION_COOKIE_NAME}={cookie}"}


def test_revoking_the_key_closes_its_open_socket(
    live_server_url, alice, running_job, quick_recheck
):
    api_key, key = api_key_create(owner=alice, name="socket")
    with job_socket(live_server_url, running_job.id, {"Authorization": f"Bearer {key}"}) as ws:
        assert json.loads(ws.recv(timeout=WAIT))["id"] == str(running_job.id)
        api_key_revoke(api_key=api_key)

        assert close_code(ws) == ([], 4401)


def test_a_key_that_expires_closes_its_open_socket(
    live_server_url, alice, running_job, quick_recheck
):
    _, key = api_key_create(owner=alice, name="socket", expires=timezone.now() + SHORT_LIFE)
    with job_socket(live_server_url, running_job.id, {"Authorization": f"Bearer {key}"}) as ws:
        messages, code = close_code(ws)

    # The job's state if the socket opened before the key expired; closed for it either way.
    assert [message["id"] for message in messages] in ([], [str(running_job.id)])
    assert code == 4401


def test_signing_out_closes_the_sessions_open_socket(
    live_server_url, alice, running_job, quick_recheck
):
    browser, cookie = signed_in_browser(alice)
    with job_socket(live_server_url, running_job.id, cookie) as ws:
        assert json.loads(ws.recv(timeout=WAIT))["id"] == str(running_job.id)
        browser.logout()

        assert close_code(ws) == ([], 4401)


def test_a_password_change_closes_the_sessions_open_socket(
    live_server_url, alice, running_job, quick_recheck
):
    _, cookie = signed_in_browser(alice)
    with job_socket(live_server_url, running_job.id, cookie) as ws:
        ws.recv(timeout=WAIT)
        alice.set_password("a-new-password-9")
        alice.save()

        assert close_code(ws) == ([], 4401)


def test_a_socket_whose_credential_holds_stays_open(
    live_server_url, alice, running_job, quick_recheck
):
    _, key = api_key_create(owner=alice, name="socket")
    _, cookie = signed_in_browser(alice)
    for headers in ({"Authorization": f"Bearer {key}"}, cookie):
        with job_socket(live_server_url, running_job.id, headers) as ws:
            ws.recv(timeout=WAIT)
            # Many rechecks later, the socket is still open: it waits for the next update.
            time.sleep(1)
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.1)


@contextmanager
def clone_held_at_cleaning(api, monkeypatch) -> Iterator[tuple[IngestJob, threading.Event]]:
    """A clone running in the server, held at its cleaning stage until the event is set."""
    clean_audio = clean.clean_audio
    cleaning, go_on = threading.Event(), threading.Event()

    def gated(*args, **kwargs):
        cleaning.set()
        go_on.wait(timeout=WAIT)
        return clean_audio(*args, **kwargs)

    monkeypatch.setattr(clean, "clean_audio", gated)
    poster = threading.Thread(target=lambda: clone(api))
    poster.start()
    try:
        assert cleaning.wait(timeout=WAIT)
        yield IngestJob.objects.get(), go_on
    finally:
        go_on.set()
        poster.join(timeout=WAIT)


def test_an_update_after_the_key_is_revoked_is_not_sent(
    api, live_server_url, alice, media_root, monkeypatch, no_recheck_between_updates
):
    api_key, key = api_key_create(owner=alice, name="socket")
    with clone_held_at_cleaning(api, monkeypatch) as (job, go_on):
        with job_socket(live_server_url, job.id, {"Authorization": f"Bearer {key}"}) as ws:
            assert json.loads(ws.recv(timeout=WAIT))["stage"] == "cleaning"
            api_key_revoke(api_key=api_key)
            go_on.set()

            assert close_code(ws) == ([], 4401)


def test_an_update_after_signing_out_is_not_sent(
    api, live_server_url, alice, media_root, monkeypatch, no_recheck_between_updates
):
    browser, cookie = signed_in_browser(alice)
    with clone_held_at_cleaning(api, monkeypatch) as (job, go_on):
        with job_socket(live_server_url, job.id, cookie) as ws:
            assert json.loads(ws.recv(timeout=WAIT))["stage"] == "cleaning"
            browser.logout()
            go_on.set()

            assert close_code(ws) == ([], 4401)
