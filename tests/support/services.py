"""Databases of their own on the machine's Redis, for tests that start processes sharing one."""

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis


@contextlib.contextmanager
def empty_redis_database(server_url: str, marker: str) -> Iterator[str]:
    """The URL of an empty Redis database on `server_url`'s server (never `server_url`'s own
    number), claimed with the `marker` key so that two tests never take the same one; flushed
    afterwards. A skip when the server cannot be reached."""
    own = urlsplit(server_url).path.strip("/") or "0"
    for number in range(15, 0, -1):
        if str(number) == own:
            continue
        url = urlunsplit(urlsplit(server_url)._replace(path=f"/{number}"))
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        try:
            # Claim an empty database: the marker is the only key, set by whoever came first.
            if client.dbsize() == 0 and client.set(marker, "1", nx=True):
                break
        except redis.ConnectionError as exc:
            pytest.skip(f"Redis is not reachable at {server_url}: {exc}")
        client.close()
    else:
        pytest.fail("no empty Redis database to use")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
