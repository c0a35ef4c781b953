"""AudioSeal's generator and detector: loading them, and running them at 16 kHz.

A model is named by a card that ships in the audioseal package (`audioseal_wm_streaming`: its
weights are downloaded once from Meta's Hugging Face repository, with the Hub client, into
AUDIOSEAL_CACHE_DIR, default ~/.cache/audioseal), by a file in that repository
(`facebook/audioseal/<file>.pth`), or by a local checkpoint file. A checkpoint either carries
its architecture (`xp.cfg`, as AudioSeal's training writes it) or is a bare state dict with
the architecture of the streaming card.

Only the audioseal modules that PyTorch alone needs are imported: no torchaudio, no julius.
"""

import copy
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speech.hub import hub_reachable

# AudioSeal's models are trained on 16 kHz audio.
MODEL_RATE = 16000
GENERATOR_CARD = "audioseal_wm_streaming"
DETECTOR_CARD = "audioseal_detector_streaming"
_HUB_REPO = "facebook/audioseal/"
# The repositories audioseal downloads from through the Hub client.
_HUB_REPOS = (_HUB_REPO, "meta-adtp/audioseal/")
_HUB_URL = "https://huggingface.co/facebook/audioseal/resolve/main/"
# A frame of the detector's output counts as watermarked above this probability, and the
# audio counts as watermarked when more than this share of its frames do (AudioSeal's rule).
DETECTION_THRESHOLD = 0.5
# The detector keeps every layer's activations for its input at 16 kHz (32+ channels per
# sample): long audio is scored in windows so memory stays bounded.
_DETECT_WINDOW = 10 * MODEL_RATE


class NotStreamable(ValueError):
    """The generator needs future audio (non-causal): it cannot mark a stream as it is made."""


class BadMessage(ValueError):
    """WATERMARK_MESSAGE does not fit in the generator's message."""


class WeightsNotFound(LookupError):
    """No file, Hub file or card of that name, or the download failed."""


class WeightsNotCached(WeightsNotFound):
    """A Hub file that was never downloaded, and the Hub cannot be reached."""


def import_audioseal() -> Any:
    """Import audioseal, with its lazy torch.compile turned off.

    The moshi modules in audioseal compile their forward on first use: on a CPU server that is
    a minute of compiling (and a C compiler) per new input length, which a stream of chunks of
    every length would pay again and again. Eager mode is fast enough for a 16 kHz model.
    """
    with warnings.catch_warnings():
        # Its modules use torch.jit.script at import, which current torch calls deprecated.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.jit")
        import audioseal
        from audioseal.libs.moshi.utils import compile as moshi_compile

    moshi_compile._compile_disabled = True
    return audioseal


def _read_checkpoint(
    source: str, fallback_card: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The architecture (as a plain dict) and the weights named by `source`."""
    import_audioseal()
    from audioseal.loader import load_local_model_config
    from omegaconf import OmegaConf

    card = load_local_model_config(source)
    if card is not None:
        config = OmegaConf.to_container(card)
        checkpoint = _fetch(_through_hub(config.pop("checkpoint")))
    else:
        config = {}
        checkpoint = _fetch(source)
    if not isinstance(checkpoint, dict):
        raise TypeError("the checkpoint is not a dictionary of weights")
    if "xp.cfg" in checkpoint:
        saved = checkpoint["xp.cfg"]
        saved = saved if isinstance(saved, dict) else OmegaConf.to_container(saved)
        config = {**saved, **config}
    if "seanet" not in config:
        config = OmegaConf.to_container(load_local_model_config(fallback_card))
        config.pop("checkpoint")
    if "best_state" in checkpoint:
        weights = checkpoint["best_state"]["model"]
    else:
        weights = checkpoint.get("model", checkpoint)
    return config, weights


def _through_hub(checkpoint: str) -> str:
    """Cards name their weights by URL: fetch those through the Hub client instead, which
    caches them, sends HF_TOKEN and honours HF_HUB_OFFLINE, as for the CSM weights."""
    if checkpoint.startswith(_HUB_URL):
        return _HUB_REPO + checkpoint[len(_HUB_URL) :]
    return checkpoint


def _fetch(source: str) -> Any:
    """A local file, a file of Meta's Hub repository, or an https URL, downloaded once."""
    from audioseal.loader import ModelLoadError, load_model_checkpoint

    source = _cached_when_offline(source)
    try:
        return load_model_checkpoint(source)
    except (ModelLoadError, OSError) as exc:
        raise WeightsNotFound(type(exc).__name__) from exc


def _cached_when_offline(source: str) -> str:
    """Without the Hub, a Hub file is read from where audioseal downloads it, or not at all:
    asked for it, the Hub client would retry with back-off for half a minute per file."""
    if not source.startswith(_HUB_REPOS) or Path(source).is_file() or hub_reachable():
        return source
    # audioseal's own choice of folder (AUDIOSEAL_CACHE_DIR, else XDG_CACHE_HOME, else
    # ~/.cache, then `audioseal`), which its Hub downloads fill file by file.
    from audioseal.loader import _get_cache_dir

    repo = next(repo for repo in _HUB_REPOS if source.startswith(repo))
    cached = _get_cache_dir(["AUDIOSEAL_CACHE_DIR", "XDG_CACHE_HOME"]) / source[len(repo) :]
    if not cached.is_file():
        raise WeightsNotCached(source)
    return str(cached)


def _build(source: str, fallback_card: str, *, detector: bool) -> torch.nn.Module:
    audioseal = import_audioseal()
    from audioseal.builder import AudioSealDetectorConfig, AudioSealWMConfig
    from audioseal.loader import convert_state_dict_for_scriptable_model, load_state_dict

    config, weights = _read_checkpoint(source, fallback_card)
    config_type = AudioSealDetectorConfig if detector else AudioSealWMConfig
    model_config = audioseal.AudioSeal.parse_config(config, config_type=config_type)
    create = audioseal.builder.create_detector if detector else audioseal.builder.create_generator
    model = create(model_config)
    # Checkpoints saved before audioseal 0.2 name their conv weights without `inner_conv`;
    # renaming is only for those (renaming current names again would break them).
    if not any(".inner_conv." in name for name in weights):
        weights = convert_state_dict_for_scriptable_model(weights)
    load_state_dict(model, state_dict=weights)
    return model.eval()


def message_bits(message: int, nbits: int) -> list[int]:
    """`message` as `nbits` bits, most significant first."""
    if not 0 <= message < 2**nbits:
        raise BadMessage(f"the message must fit in {nbits} bits")
    return [(message >> (nbits - 1 - i)) & 1 for i in range(nbits)]


def bits_message(bits: Sequence[int]) -> int:
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


class Generator:
    """The streaming generator, shared by every stream of the process.

    Its layers keep their streaming state on the modules themselves, so each stream owns a
    set of states that is put in place for its call, under a lock, and taken out again.
    """

    def __init__(self, model: torch.nn.Module, message: int) -> None:
        from audioseal.libs.moshi.modules.conv import (
            StreamingConv1d,
            StreamingConvTranspose1d,
        )
        from audioseal.libs.moshi.modules.streaming import StreamingModule

        convs = [
            m for m in model.modules() if isinstance(m, StreamingConv1d | StreamingConvTranspose1d)
        ]
        if not convs or not all(conv.causal for conv in convs):
            raise NotStreamable("the generator is not causal")
        self._model = model
        # Every streaming layer, parents before children (their order in `modules()`).
        self._layers = [m for m in model.modules() if isinstance(m, StreamingModule)]
        self.hop = int(model.encoder.hop_length)
        self._lock = threading.Lock()
        processor = model.msg_processor
        self._message = (
            torch.tensor([message_bits(message, processor.nbits)]) if processor else None
        )

    def new_states(self) -> list[Any]:
        states = []
        for layer in self._layers:
            state = layer._init_streaming_state(1)
            state.init_stream()
            states.append(state)
        return states

    @staticmethod
    def copy_states(states: list[Any]) -> list[Any]:
        return copy.deepcopy(states)

    def run(self, states: list[Any], samples: np.ndarray) -> np.ndarray:
        """The watermark of the next `samples` (a whole number of hops) of a stream."""
        if samples.size == 0:
            return np.zeros(0, dtype=np.float32)
        audio = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).view(1, 1, -1)
        with self._lock, torch.inference_mode():
            for layer, state in zip(self._layers, states, strict=True):
                layer._streaming_state = state
            try:
                hidden = self._model.encoder(audio)
                if self._message is not None:
                    hidden = self._model.msg_processor(hidden, self._message)
                watermark = self._model.decoder(hidden)
            finally:
                for layer in self._layers:
                    layer._streaming_state = layer._empty_state()
        return watermark.reshape(-1).numpy().astype(np.float32, copy=False)


@dataclass(frozen=True)
class Detection:
    # Share of the audio's frames that carry the watermark, in [0, 1].
    probability: float
    # The decoded message bits (meaningful only when the audio is watermarked).
    bits: list[int]


class Detector:
    def __init__(self, model: torch.nn.Module) -> None:
        self._model = model
        self.nbits = int(model.nbits)
        # One detection at a time: each holds a window's activations.
        self._lock = threading.Lock()

    def detect(self, samples: np.ndarray) -> Detection:
        """Score mono float32 audio at MODEL_RATE."""
        marked_frames = 0
        message_sum = np.zeros(self.nbits)
        with self._lock, torch.inference_mode():
            for start in range(0, samples.size, _DETECT_WINDOW):
                window = np.ascontiguousarray(samples[start : start + _DETECT_WINDOW])
                audio = torch.from_numpy(window).view(1, 1, -1)
                frames, message = self._model(audio)
                marked_frames += int((frames[0, 1] > DETECTION_THRESHOLD).sum())
                # Per-window message probabilities, weighted by the window's length.
                message_sum += message[0].double().numpy() * window.size
        probability = marked_frames / samples.size
        bits = [int(p > 0.5) for p in message_sum / samples.size]
        return Detection(probability=probability, bits=bits)


def load_generator(source: str, message: int) -> Generator:
    return Generator(_build(source, GENERATOR_CARD, detector=False), message)


def load_detector(source: str) -> Detector:
    return Detector(_build(source, DETECTOR_CARD, detector=True))
