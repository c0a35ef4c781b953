"""Postgres stops: what needs the database answers 503 in OpenAI's shape, at once, and the same
server process serves again when the database is back, without a restart.

The server reaches the test database through a TCP link that the test cuts: every open
connection is reset and new ones are refused, which is what a client sees of a database server
that died (a private cluster, initdb'd and migrated per run, shows the client nothing more and
costs the test far longer; see reliability/README.md).
"""

import httpx
import pytest
from django.db import connection
from reliability_support import TcpProxy, assert_openai_503, speak

from accounts.services import api_key_create
from tests.support.processes import HANG_SECONDS, database_url

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def database_link() -> TcpProxy:
    if connection.vendor != "postgresql":
        pytest.skip("needs Postgres: set DATABASE_URL (CI does)")
    settings = connection.settings_dict
    proxy = TcpProxy((settings.get("HOST") or "127.0.0.1", int(settings.get("PORT") or 5432)))
    proxy.start()
    yield proxy
    proxy.cut()


def test_postgres_stopping_answers_503_and_recovers_without_a_restart(
    database_link, start_server, api_key, alice
):
    # given a server whose database is behind the link
    host = connection.settings_dict.get("HOST") or "127.0.0.1"
    port = connection.settings_dict.get("PORT") or "5432"
    url = database_url().replace(f"@{host}:{port}/", f"@127.0.0.1:{database_link.port}/")
    assert str(database_link.port) in url
    server = start_server(DATABASE_URL=url)
    # and a key that no cache has seen yet, and one that was just used
    fresh_key = api_key_create(owner=alice, name="fresh")[1]
    auth = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=server.url, timeout=HANG_SECONDS) as client:
        assert speak(client, api_key).status_code == 200
        assert client.get("/v1/audio/voices", headers=auth).status_code == 200
        assert client.get("/readyz").status_code == 200

        # when the database goes away
        database_link.cut()

        # then what needs it answers 503 in OpenAI's shape, with Retry-After
        error = assert_openai_503(speak(client, fresh_key), "database_unavailable")
        assert str(database_link.port) not in error["message"]
        assert_openai_503(client.get("/v1/audio/voices", headers=auth), "database_unavailable")
        # (a standard voice needs no database: it is still described)
        assert client.get("/v1/audio/voices/alloy", headers=auth).status_code == 200
        # and the probes say so, while the process itself is alive
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()["database"]) == (503, "unreachable")
        assert client.get("/healthz").status_code == 200

        # when the database is back
        database_link.restore()

        # then the same process serves again
        assert server.process.alive()
        spoken = speak(client, fresh_key, response_format="wav")
        assert spoken.status_code == 200, spoken.text
        assert spoken.content.startswith(b"RIFF")
        assert client.get("/v1/audio/voices", headers=auth).status_code == 200
        assert client.get("/readyz").status_code == 200
