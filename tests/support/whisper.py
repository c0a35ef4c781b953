"""Tiny random Whisper checkpoints, built offline, and WHISPER_MODEL pointed at one (fixtures
registered by tests/conftest.py)."""

from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from unittest.mock import patch

import pytest

from ingest.transcribe import transcriber_reset

# Small enough to build and run in a moment. The audio context stays 1500 (whisper always feeds
# 30 s windows of 3000 mel frames, halved by the encoder's strided convolution) and the text
# context 448 (whisper's prompt and sample lengths are derived from it).
TINY_WHISPER_DIMS = {
    "n_mels": 80,
    "n_audio_ctx": 1500,
    "n_audio_state": 64,
    "n_audio_head": 2,
    "n_audio_layer": 1,
    "n_text_ctx": 448,
    "n_text_state": 64,
    "n_text_head": 2,
    "n_text_layer": 1,
}
# Whisper picks its tokenizer by vocabulary size: 51864 tokens is the English-only GPT-2
# encoding, 51865 the multilingual one with 99 languages.
ENGLISH_VOCAB = 51864
MULTILINGUAL_VOCAB = 51865


def build_tiny_whisper(path: Path, *, multilingual: bool = False, seed: int = 0) -> Path:
    """A randomly initialised Whisper checkpoint in the format `whisper.load_model` reads."""
    # Deferred: torch and whisper load only for the tests that build a checkpoint.
    import torch
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(
        n_vocab=MULTILINGUAL_VOCAB if multilingual else ENGLISH_VOCAB, **TINY_WHISPER_DIMS
    )
    # A private random stream: building the fixture must not shift other tests' seeds.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Whisper(dims)
        # The decoder's positional embedding is created with torch.empty (whatever the memory
        # held, often NaN); everything else is initialised by its module.
        torch.nn.init.normal_(model.decoder.positional_embedding, std=0.01)
    state = model.state_dict()
    assert all(torch.isfinite(tensor).all() for tensor in state.values())
    torch.save({"dims": asdict(dims), "model_state_dict": state}, path)
    return path


@pytest.fixture(scope="session")
def tiny_whisper_path(tmp_path_factory) -> Path:
    """An English-only tiny random checkpoint (the kind of the default, base.en)."""
    return build_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper") / "tiny-en.pt")


@pytest.fixture(scope="session")
def tiny_multilingual_whisper_path(tmp_path_factory) -> Path:
    """A multilingual tiny random checkpoint (detects languages)."""
    return build_tiny_whisper(
        tmp_path_factory.mktemp("tiny-whisper") / "tiny.pt", multilingual=True
    )


@pytest.fixture
def whisper_model(settings, tiny_whisper_path) -> Iterator[Path]:
    """WHISPER_MODEL set to the tiny checkpoint (English), with no model loaded before or after."""
    settings.WHISPER_MODEL = str(tiny_whisper_path)
    settings.WHISPER_LANGUAGE = "en"
    transcriber_reset()
    yield tiny_whisper_path
    transcriber_reset()


@pytest.fixture(scope="session")
def short_whisper(tmp_path_factory) -> dict[str, Path]:
    """Tiny random checkpoints, English-only and multilingual, with a 64-token text context: a
    randomly weighted model never stops talking by itself, so a short context keeps each call
    quick (the speech-to-text tests)."""
    folder = tmp_path_factory.mktemp("short-whisper")
    with patch.dict(TINY_WHISPER_DIMS, n_text_ctx=64):
        return {
            "en": build_tiny_whisper(folder / "en.pt"),
            "multilingual": build_tiny_whisper(folder / "multilingual.pt", multilingual=True),
        }


def whisper_loads_recorded(
    monkeypatch: pytest.MonkeyPatch, before_load: Callable[[], object] | None = None
) -> list[str]:
    """The names `whisper.load_model` is called with from now on (the real loader still runs,
    after `before_load` where one is given: a test that holds a load back)."""
    import whisper

    calls: list[str] = []
    real = whisper.load_model

    def recording(name: str, *args, **kwargs):
        calls.append(name)
        if before_load is not None:
            before_load()
        return real(name, *args, **kwargs)

    monkeypatch.setattr(whisper, "load_model", recording)
    return calls


@pytest.fixture
def load_calls(monkeypatch) -> list[str]:
    """The names whisper.load_model is called with (the real loader still runs)."""
    return whisper_loads_recorded(monkeypatch)
