"""Fixtures for the security tests (the hostile cases are in hostile_cases.py)."""

import pytest


@pytest.fixture(autouse=True)
def jobs_run_in_process(monkeypatch) -> None:
    """Cloning jobs run in the server's process, as in the embedded default (CI sets REDIS_URL,
    which otherwise sends them to a broker that no worker reads here)."""
    from csmsite.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)
