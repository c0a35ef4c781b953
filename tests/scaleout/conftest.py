"""Shared services for the scale-out tests, private to each test module: a Postgres database
and a Redis database that the module's processes share. Skipped when Postgres or Redis cannot be
reached (DATABASE_URL and REDIS_URL name them, else the local ones)."""

import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests.support.services import empty_redis_database


def _postgres_admin_url() -> str:
    """The maintenance database of the Postgres that DATABASE_URL names (or the local one)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def _redis_server_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url.startswith("redis://"):
        url = "redis://127.0.0.1:6379/0"
    return url


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    """A new, empty database on the test Postgres (dropped afterwards): its URL."""
    admin_url = _postgres_admin_url()
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"Postgres is not reachable at {admin_url}: {exc}")
    name = f"csm_scaleout_{secrets.token_hex(4)}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield _with_database(admin_url, name)
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="module")
def redis_database() -> Iterator[str]:
    """An empty Redis database (not the one the test process uses), flushed afterwards."""
    with empty_redis_database(_redis_server_url(), "csm-scaleout-test") as url:
        yield url
