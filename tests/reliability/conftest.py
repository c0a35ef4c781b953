"""Faults done to a real server: uvicorn (`manage.py serve`) and Celery workers as processes of
their own, on the test database, with private Redis servers and a cuttable Postgres link.

The processes use the test database (committed data: these tests use `transactional_db`) and a
folder of the test's own as MEDIA_ROOT, so the test reads what they wrote.
"""

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from reliability_support import RedisServer

from tests.support.processes import (
    Process,
    Server,
    database_url,
    server_env,
)
from tests.support.processes import (
    start_server as serve,
)


@pytest.fixture
def service_env(tmp_path, media_root) -> dict[str, str]:
    """The environment of a server or worker process: the test database, this test's storage,
    eSpeak NG as the default engine, no model downloads, no watermark, no Redis (tests add it)."""
    return server_env(
        tmp_path / "var",
        DATABASE_URL=database_url(),
        MEDIA_ROOT=str(media_root),
        SECRET_KEY="reliability-tests-" + "x" * 40,
    )


@pytest.fixture
def processes(request, tmp_path, transactional_db) -> Iterator[list[Process]]:
    """Every process a test starts: stopped at its end, their output shown if it failed."""
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for process in started:
            print(f"--- {process.name} output ---\n{process.output()[-8000:]}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def start_server(service_env, processes, tmp_path) -> Callable[..., Server]:
    def start(**env: str) -> Server:
        server = serve({**service_env, **env}, tmp_path)
        processes.append(server.process)
        return server

    return start


@pytest.fixture
def start_worker(service_env, processes, tmp_path) -> Callable[..., Process]:
    def start(*, gated: bool = False, pool: str = "prefork", **env: str) -> Process:
        name = f"worker-{len(processes)}"
        command = [
            sys.executable,
            # With a gate, the job's clean-up stage waits while the gate file exists: a test
            # can kill the worker in the middle of a job, knowing where it is.
            str(Path(__file__).with_name("gated_worker.py")) if gated else "-m",
            *([] if gated else ["celery"]),
            "-A",
            "csmsite",
            "worker",
            f"--pool={pool}",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
            f"--hostname={name}-{os.getpid()}@%h",
        ]
        process = Process(name, command, {**service_env, **env}, tmp_path / f"{name}.log")
        processes.append(process)
        return process

    return start


@pytest.fixture
def private_redis(tmp_path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server binary")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def api_key(transactional_db, alice) -> str:
    from accounts.services import api_key_create

    return api_key_create(owner=alice, name="reliability")[1]
