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
def _jobs_in_process(jobs_run_in_process) -> None:
    """Every test here runs jobs in the server's process (tests/support/fixtures.py)."""


@pytest.fixture(autouse=True)
def _private_media(media_root: Path) -> Iterator[Path]:
    """Stored files go to the test's own folder."""
    yield media_root
