"""A short load (50 clients for 10 s) on a live server process: no 5xx, every accepted answer
complete, every refusal a 429/503 with Retry-After. `make reliability` runs the full one (60 s,
with Redis and a Celery worker) and reports its latencies; no timing is asserted here.
"""

import asyncio

import pytest

from accounts.services import api_key_create
from reliability.load import run_load
from tests.support.storage import stored_files

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


def test_fifty_clients_for_ten_seconds_are_answered_completely(
    start_server, django_user_model, media_root
):
    # given a key per paced client, and one key shared by five greedy clients
    keys = [
        api_key_create(owner=django_user_model.objects.create_user(username=f"load{n}"))[1]
        for n in range(45)
    ]
    greedy = api_key_create(owner=django_user_model.objects.create_user(username="greedy"))[1]
    server = start_server(RATE_LIMIT_REQUESTS_PER_MINUTE="20", RATE_LIMIT_CONCURRENT="4")

    # when fifty clients talk to it for ten seconds
    report = asyncio.run(
        run_load(server.url, keys, greedy, clients=50, greedy_clients=5, seconds=10, timeout=60)
    )

    # then every answer was complete or a proper refusal (how many of each depends on the
    # machine's speed: the per-key limits are tested in tests/accounts/test_rate_limits.py)
    failures = report.failures()
    assert not failures, [(f.kind, f.result, f.status, f.detail) for f in failures[:10]]
    assert report.count("accepted") > 0, report.summary()
    assert not [s for s in report.statuses if s is not None and s >= 500 and s != 503]
    assert server.process.alive()
    assert stored_files(media_root) == []
