"""Fixtures shared by all tests: personas and a live uvicorn server on loopback (the cloning
and Whisper fixtures are in tests/support/)."""

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.management import call_command
from openai import OpenAI

from accounts.services import api_key_create
from core.proxies import uvicorn_proxy_options

pytest_plugins = ["tests.support.fixtures", "tests.support.whisper"]

# The Hub is never reachable from tests: fail fast instead of waiting for network timeouts.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture
def alice(django_user_model) -> AbstractUser:
    """Owns voices."""
    return django_user_model.objects.create_user(username="alice", password="alice-pass-1")


@pytest.fixture
def bob(django_user_model) -> AbstractUser:
    """Another user: must never see alice's private voices."""
    return django_user_model.objects.create_user(username="bob", password="bob-pass-1")


@pytest.fixture
def carol(django_user_model) -> AbstractUser:
    """Staff: curates and publishes voices."""
    return django_user_model.objects.create_user(
        username="carol", password="carol-pass-1", is_staff=True
    )


@pytest.fixture
def default_user(settings) -> AbstractUser:
    """The account keyless requests act as."""
    user, _ = get_user_model().objects.get_or_create(username=settings.ADMIN_USERNAME)
    return user


@pytest.fixture
def alice_key(alice) -> str:
    return api_key_create(owner=alice, name="alice's test key")[1]


@pytest.fixture
def carol_key(carol) -> str:
    return api_key_create(owner=carol, name="carol's test key")[1]


@pytest.fixture
def private_voice(alice):
    """Alice's private cloned voice (its file need not exist: lookups only)."""
    from voices.models import Voice

    return Voice.objects.create(
        owner=alice,
        name="alices-narrator",
        kind=Voice.Kind.CLONED,
        source=Voice.Source.UPLOAD,
        reference_audio="voices/alice/reference.wav",
        reference_text="Hello from alice.",
    )


@pytest.fixture
def bob_key(bob) -> str:
    return api_key_create(owner=bob, name="bob's test key")[1]


@pytest.fixture
def api(live_server_url: str, alice_key: str) -> Iterator[httpx.Client]:
    """An HTTP client for the live server, authenticated as alice."""
    with httpx.Client(
        base_url=live_server_url, headers={"Authorization": f"Bearer {alice_key}"}, timeout=60
    ) as client:
        yield client


@pytest.fixture
def openai_client(live_server_url: str, alice_key: str) -> OpenAI:
    """The official openai client, pointed at the live server with alice's key."""
    return OpenAI(base_url=f"{live_server_url}/v1", api_key=alice_key, max_retries=0, timeout=60)


@pytest.fixture(scope="session")
def static_collected() -> None:
    """STATIC_ROOT filled, as `make run` and the image build fill it: WhiteNoise serves what it
    holds when the application starts (the pages' scripts and styles among it)."""
    call_command("collectstatic", "--noinput", verbosity=0)


@pytest.fixture
def live_server_url(transactional_db, settings, static_collected) -> Iterator[str]:
    """The real ASGI application under uvicorn, in this process, on a free loopback port.

    In-process so the server uses the test database and tests can inspect its state; real
    uvicorn (not Django's WSGI live server) so streaming behaves as in production.
    """
    from csmsite.asgi import application
    from speech.engines.registry import engine_preload_default

    # As the server does when it starts (csmsite/asgi.py, imported once per test run): the
    # default engine is loading or loaded before the first request.
    engine_preload_default()
    # Close database connections at the end of each request: the server's worker threads
    # must not hold the test database open after the test.
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            application,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=5,
            # Proxy headers as `manage.py serve` believes them (TRUSTED_PROXIES).
            **uvicorn_proxy_options(),
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    """Each test starts with empty caches (they may be a shared Redis)."""
    from django.core.cache import caches

    for alias in caches:
        caches[alias].clear()
    yield
    for alias in caches:
        caches[alias].clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    # The real hasher is deliberately slow; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _engines(settings, tmp_path_factory) -> Iterator[None]:
    """eSpeak unless a test asks for CSM; CSM pointed at a directory with no checkpoint."""
    from speech.engines.registry import engines_reset

    settings.DEFAULT_ENGINE = "espeak"
    settings.CSM_MODEL = str(tmp_path_factory.mktemp("no-csm-checkpoint"))
    engines_reset()
    yield
    engines_reset()


@pytest.fixture(scope="session")
def tiny_csm_dir(tmp_path_factory) -> Path:
    """A tiny random CSM checkpoint (model, processor, tokenizer) in transformers format."""
    from speech.engines.csm.random_checkpoint import TINY, build_random_checkpoint

    return build_random_checkpoint(tmp_path_factory.mktemp("tiny-csm"), size=TINY)


@pytest.fixture
def csm_engine(settings, tiny_csm_dir):
    """The CSM engine loaded from the tiny checkpoint through CSM_MODEL, as the server does.

    On the CPU in float32 wherever the tests run, so exact comparisons (seeds, `generate` vs
    our loop) hold, and on one thread: the tiny model's matrices are far too small to share,
    and on a busy machine two intra-op threads make each frame several times slower.
    """
    import torch

    from speech.engines.base import EngineState
    from speech.engines.registry import engine_get, engines_reset
    from tests.support.engines import wait_while_loading

    settings.CSM_MODEL = str(tiny_csm_dir)
    settings.CSM_DEVICE = "cpu"
    settings.CSM_DTYPE = "float32"
    settings.CSM_PREPARE_VOICES = False
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    engines_reset()
    engine = wait_while_loading(engine_get("csm"))
    assert engine.state is EngineState.READY, engine.reason
    yield engine
    torch.set_num_threads(threads)


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    """Stored files go to a folder of this test's own."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
