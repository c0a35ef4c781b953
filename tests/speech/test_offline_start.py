"""Starting without the Hugging Face Hub: the server serves at once, asks the Hub once, and
says in one line for each model what is missing, why, and what to do; no tracebacks. Weights
already in the cache load from it without another question.

The Hub is a loopback stand-in that counts the connections it gets and answers each with a 503.
"""

import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from huggingface_hub import constants

from speech.engines.base import EngineState
from speech.engines.registry import engine_get, engines_reset
from speech.watermark import watermark_status
from speech.watermark.models import DETECTOR_CARD, GENERATOR_CARD, import_audioseal
from tests.support.processes import HANG_SECONDS, server_env, start_server, wait_until

# What would send the server to a real Hub or a cache outside the test's folders.
_UNSET = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "TRANSFORMERS_CACHE",
    "HF_HUB_ETAG_TIMEOUT",
    "HF_HUB_DOWNLOAD_TIMEOUT",
    "DEFAULT_ENGINE",
    "WATERMARK",
    "LOG_LEVEL",
)


class UnwellHub:
    """A loopback port that answers every request with 503 and counts the connections."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.requests: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return  # closed
            with connection:
                connection.settimeout(5)
                head = b""
                try:
                    while b"\r\n\r\n" not in head and len(head) < 65536:
                        piece = connection.recv(4096)
                        if not piece:
                            break
                        head += piece
                    connection.sendall(
                        b"HTTP/1.1 503 Service Unavailable\r\n"
                        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                except OSError:
                    pass
                self.requests.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))

    def close(self) -> None:
        self._socket.close()


@pytest.fixture
def unwell_hub() -> Iterator[UnwellHub]:
    hub = UnwellHub()
    yield hub
    hub.close()


def offline_env(var_dir: Path, hub: UnwellHub) -> dict[str, str]:
    cache = var_dir / "cache"
    env = server_env(
        var_dir,
        CSM_MODEL="sesame/csm-1b",
        HF_ENDPOINT=hub.url,
        HF_HOME=str(cache / "huggingface"),
        AUDIOSEAL_CACHE_DIR=str(cache / "audioseal"),
        XDG_CACHE_HOME=str(cache),
    )
    for name in _UNSET:
        env.pop(name, None)
    return env


def unavailable_lines(output: str, what: str) -> list[str]:
    return [line for line in output.splitlines() if "unavailable" in line and what in line]


@pytest.mark.system
def test_it_serves_and_says_in_one_line_each_what_is_missing_without_the_hub(tmp_path, unwell_hub):
    """The real server (`manage.py serve`) as `make run` starts it: CSM and the watermark on,
    the default log level, an empty model cache."""
    # given an empty model cache and a Hub that cannot serve anything
    env = offline_env(tmp_path, unwell_hub)
    # when it starts
    server = start_server(env, tmp_path)

    def both_reported() -> str:
        text = server.process.output()
        csm = unavailable_lines(text, "engine csm")
        return text if csm and unavailable_lines(text, "AudioSeal watermark") else ""

    try:
        # then it serves
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        # and once both models have given up, each has said so in one line
        output = wait_until(
            both_reported,
            timeout=HANG_SECONDS,
            what="CSM and the watermark to report that they are unavailable",
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; the server said:\n{server.process.output()[-8000:]}"
        ) from None
    finally:
        server.process.stop()

    assert "Traceback" not in output
    assert "Retrying" not in output
    [csm] = unavailable_lines(output, "engine csm")
    for words in ["not in the local cache", "cannot be reached", "hf download", "CSM_MODEL"]:
        assert words in csm
    [watermark] = unavailable_lines(output, "AudioSeal watermark")
    for words in ["not in the local cache", "cannot be reached", "WATERMARK=off"]:
        assert words in watermark
    # the Hub was asked (the real code path ran), and no more than once for each model
    assert 1 <= len(unwell_hub.requests) <= 2, unwell_hub.requests


# --- Weights already in the cache --------------------------------------------------------------


@pytest.fixture
def hub_unwell_in_process(monkeypatch, unwell_hub) -> UnwellHub:
    """This process's Hub client pointed at the stand-in, with offline mode off (the test
    settings turn it on), so that the real question is asked."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", unwell_hub.url)
    return unwell_hub


def assert_at_most_one_question(hub: UnwellHub) -> None:
    """At most the one quick question whether the Hub is there, and nothing about a model or
    its files. (The Hub client may also fetch a telemetry list of its own once per process,
    which is about no model.)"""
    about_models = [line for line in hub.requests if "/resolve/" in line or "/api/models" in line]
    assert about_models == [], hub.requests
    assert hub.requests.count("HEAD / HTTP/1.1") <= 1, hub.requests


def test_a_hub_model_in_the_cache_loads_with_no_question_but_the_first(
    settings, monkeypatch, tmp_path, tiny_csm_dir, hub_unwell_in_process
):
    # given sesame/csm-1b in the Hub cache as a download leaves it (the tiny checkpoint)
    commit = "0" * 40
    repo = tmp_path / "hub" / "models--sesame--csm-1b"
    shutil.copytree(tiny_csm_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    settings.CSM_MODEL = "sesame/csm-1b"
    settings.CSM_DEVICE = "cpu"
    settings.CSM_DTYPE = "float32"
    settings.CSM_PREPARE_VOICES = False
    engines_reset()
    # when
    engine = engine_get("csm")
    wait_until(lambda: engine.state is not EngineState.LOADING, timeout=HANG_SECONDS, what="CSM")
    # then it is ready, and the Hub heard at most one question (not one per file, nor retries)
    assert engine.state is EngineState.READY, engine.reason
    assert_at_most_one_question(hub_unwell_in_process)


def _save_random_weights(card: str, folder: Path, *, detector: bool) -> None:
    """Random weights of `card`'s architecture, as a bare state dict under the file name the
    card downloads, where audioseal keeps its downloads."""
    from omegaconf import OmegaConf

    audioseal = import_audioseal()
    config = OmegaConf.to_container(audioseal.loader.load_local_model_config(card))
    name = config.pop("checkpoint").rsplit("/", 1)[1]
    builder = audioseal.builder
    kind = builder.AudioSealDetectorConfig if detector else builder.AudioSealWMConfig
    create = builder.create_detector if detector else builder.create_generator
    model = create(audioseal.AudioSeal.parse_config(config, config_type=kind))
    torch.save(model.state_dict(), folder / name)


def test_watermark_weights_in_the_cache_load_with_no_question_but_the_first(
    settings, monkeypatch, tmp_path, hub_unwell_in_process
):
    # given the default cards' weights where audioseal downloads them (a folder `audioseal` in
    # AUDIOSEAL_CACHE_DIR)
    (tmp_path / "audioseal").mkdir()
    _save_random_weights(GENERATOR_CARD, tmp_path / "audioseal", detector=False)
    _save_random_weights(DETECTOR_CARD, tmp_path / "audioseal", detector=True)
    monkeypatch.setenv("AUDIOSEAL_CACHE_DIR", str(tmp_path))
    settings.WATERMARK = True
    settings.WATERMARK_MODEL = GENERATOR_CARD
    settings.WATERMARK_DETECTOR_MODEL = DETECTOR_CARD
    # A message of its own: a watermarker another test made for these cards is not reused.
    settings.WATERMARK_MESSAGE = 0x0FF1

    def settled() -> dict:
        status = watermark_status()
        return status if status["detector"]["state"] != "loading" else {}

    # when
    status = wait_until(settled, timeout=HANG_SECONDS, what="the watermark models")
    # then both are ready, and the Hub heard at most one question
    assert status["state"] == "ready", status
    assert status["detector"]["state"] == "ready", status
    assert_at_most_one_question(hub_unwell_in_process)
