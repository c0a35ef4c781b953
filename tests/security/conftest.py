"""Fixtures for the security tests (the hostile cases are in hostile_cases.py)."""

import pytest


@pytest.fixture(autouse=True)
def _jobs_in_process(jobs_run_in_process) -> None:
    """Every test here runs jobs in the server's process (tests/support/fixtures.py)."""
