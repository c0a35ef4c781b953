"""Fixtures for the web UI tests (helpers in web_ui_support.py)."""

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web_ui_support import run_browser


@pytest.fixture
def browse(live_server_url: str) -> Callable[..., Any]:
    """`browse(steps, login=..., viewport=...)`: run_browser against the live server."""
    return functools.partial(run_browser, live_server_url)


@pytest.fixture(autouse=True)
def _jobs_run_in_process(monkeypatch) -> None:
    """Jobs run in the server's process, as in the embedded default (CI sets REDIS_URL, which
    otherwise sends them to a broker that no worker reads here)."""
    from csmsite.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


@pytest.fixture(autouse=True)
def _private_media(media_root: Path) -> Iterator[Path]:
    """Stored files go to the test's own folder."""
    yield media_root
