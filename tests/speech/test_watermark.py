"""The AudioSeal watermark: loading, streaming, detection, the speech path and the endpoint.

The generator and detector are built from the model cards that ship in the audioseal package,
with random weights, saved as checkpoints and loaded through the server's own loading code.
"""

import io
import sys
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from django.test import override_settings

from speech.audio.formats import FORMATS
from speech.engines.base import Capabilities, Engine, SynthesisParams, VoiceSpec
from speech.services import SpeechPlan
from speech.synthesis import SpeechStream
from speech.watermark import (
    WatermarkUnavailable,
    watermark_detect,
    watermark_status,
    watermark_stream,
)
from speech.watermark.models import import_audioseal
from speech.watermark.resample import StreamResampler

RATE = 24000
MESSAGE = 0xBEEF
# A trained generator's mark sits some 30-40 dB under the speech; random weights give one
# near -20 dBFS, so the tests scale the last layer down to a realistic level.
_QUIET = 0.05


def _card_config(card: str) -> dict:
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(import_audioseal().loader.load_local_model_config(card))
    config.pop("checkpoint")
    return config


def _random_checkpoint(card: str, path: Path, *, detector: bool = False) -> Path:
    """A checkpoint in AudioSeal's own format: the architecture (`xp.cfg`) and the weights."""
    audioseal = import_audioseal()
    AudioSeal, builder = audioseal.AudioSeal, audioseal.builder
    torch.manual_seed(0)
    config = _card_config(card)
    if detector:
        model = builder.create_detector(
            AudioSeal.parse_config(dict(config), builder.AudioSealDetectorConfig)
        )
    else:
        model = builder.create_generator(
            AudioSeal.parse_config(dict(config), builder.AudioSealWMConfig)
        )
        last = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Conv1d)][-1]
        with torch.no_grad():
            last.weight.mul_(_QUIET)
            last.bias.mul_(_QUIET)
    torch.save({"xp.cfg": config, "model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audioseal")
    return {
        "generator": _random_checkpoint("audioseal_wm_streaming", folder / "generator.pth"),
        "detector": _random_checkpoint(
            "audioseal_detector_streaming", folder / "detector.pth", detector=True
        ),
    }


@pytest.fixture
def marking(settings, checkpoints) -> None:
    settings.WATERMARK = True
    settings.WATERMARK_MODEL = str(checkpoints["generator"])
    settings.WATERMARK_DETECTOR_MODEL = str(checkpoints["detector"])
    settings.WATERMARK_MESSAGE = MESSAGE


def speechlike(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Harmonics of a wandering pitch under a syllable-rate envelope, with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4 * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * t))
    audio = 0.25 * envelope * voiced + 0.005 * rng.standard_normal(t.size)
    return audio.astype(np.float32)


def uneven_slices(total: int, seed: int = 1) -> list[int]:
    """Slice lengths from one sample to a second, the tiny ones first."""
    rng = np.random.default_rng(seed)
    sizes = [1, 7, 319, 320, 321]
    while sum(sizes) < total:
        sizes.append(int(rng.integers(100, RATE // 2)))
    sizes[-1] -= sum(sizes) - total
    return sizes


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# --- Resampling -------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate_in", "rate_out"), [(24000, 16000), (16000, 24000), (22050, 16000)])
def test_resampling_is_exact_across_calls_and_keeps_time(rate_in, rate_out):
    t = np.arange(rate_in) / rate_in
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)).astype(
        np.float32
    )
    whole = StreamResampler(rate_in, rate_out).process(tone)
    resampler = StreamResampler(rate_in, rate_out)
    parts, start = [], 0
    for size in [1, 2, 500, 3, 7000, 11000, rate_in]:
        parts.append(resampler.process(tone[start : start + size]))
        start += size
    sliced = np.concatenate(parts)

    np.testing.assert_array_equal(sliced, whole)
    # No delay and no gain: the same tones, sampled at the new rate.
    t_out = np.arange(whole.size) / rate_out
    expected = 0.5 * np.sin(2 * np.pi * 440 * t_out) + 0.2 * np.sin(2 * np.pi * 3000 * t_out)
    assert np.abs(whole[200:] - expected[200:]).max() < 1e-3


# --- The stream --------------------------------------------------------------------------------


@dataclass
class Runs:
    """The same audio marked in one call and in uneven slices by another stream."""

    audio: np.ndarray
    whole: np.ndarray
    slices: list[np.ndarray]
    sizes: list[int]


@pytest.fixture(scope="module")
def runs(checkpoints) -> Runs:
    # Marking costs CPU: the tests below share one pair of runs.
    with override_settings(
        WATERMARK=True,
        WATERMARK_MODEL=str(checkpoints["generator"]),
        WATERMARK_DETECTOR_MODEL=str(checkpoints["detector"]),
        WATERMARK_MESSAGE=MESSAGE,
    ):
        audio = speechlike(1.5)
        whole = watermark_stream(RATE).process(audio)
        stream = watermark_stream(RATE)
        sizes = uneven_slices(audio.size)
        slices, start = [], 0
        for size in sizes:
            slices.append(stream.process(audio[start : start + size]))
            start += size
        slices.append(stream.process(np.zeros(0, dtype=np.float32)))
        slices.append(stream.flush())
    return Runs(audio=audio, whole=whole, slices=slices, sizes=[*sizes, 0, 0])


def test_a_stream_returns_exactly_as_many_samples_as_each_call_gets(runs):
    assert [part.size for part in runs.slices] == runs.sizes
    assert all(part.dtype == np.float32 for part in runs.slices)
    assert runs.whole.size == runs.audio.size


def test_the_mark_is_small_next_to_the_speech_and_sits_below_8_khz(runs):
    mark = runs.whole - runs.audio

    assert rms(mark) > 1e-4
    # At least 20 dB under the speech (with the cards' real weights it is quieter still).
    assert rms(mark) < 0.1 * rms(runs.audio)
    assert np.abs(runs.whole).max() <= 1.0
    # Computed at 16 kHz and brought back to 24 kHz: nothing above the 16 kHz band.
    spectrum = np.abs(np.fft.rfft(mark)) ** 2
    frequencies = np.fft.rfftfreq(mark.size, 1 / RATE)
    assert spectrum[frequencies > 8500].sum() < 1e-4 * spectrum.sum()


def test_marking_in_slices_equals_marking_the_whole_away_from_slice_ends(runs):
    sliced = np.concatenate(runs.slices)
    difference = np.abs(sliced - runs.whole)

    # The last few milliseconds of a call get a provisional mark (the hop of 20 ms that the
    # generator has not finished, plus the resamplers' reach), then the exact mark fades back
    # in over 4 ms: only there may the two differ, and only by about the mark's own size.
    near_an_end = np.zeros(runs.audio.size, dtype=bool)
    for end in np.cumsum(runs.sizes)[:-3]:
        near_an_end[max(0, end - int(0.025 * RATE)) : end + int(0.005 * RATE)] = True
    near_an_end[-int(0.025 * RATE) :] = True
    assert difference[~near_an_end].max() < 1e-5
    mark = runs.whole - runs.audio
    assert difference[near_an_end].max() <= 2 * np.abs(mark).max()


def test_detection_answers_with_its_fields(marking, runs):
    detection = watermark_detect(runs.whole, RATE)

    assert isinstance(detection.detected, bool)
    assert 0.0 <= detection.probability <= 1.0
    if detection.detected:
        assert isinstance(detection.message, int)
        assert 0 <= detection.message < 2**16
    else:
        assert detection.message is None
    status = watermark_status()
    assert status["enabled"] is True
    assert status["state"] == "ready"
    assert status["detector"]["state"] == "ready"


def test_watermark_off_means_no_stream_and_no_detection(settings, marking):
    settings.WATERMARK = False

    assert watermark_stream(RATE) is None
    assert watermark_status()["state"] == "off"
    with pytest.raises(WatermarkUnavailable) as caught:
        watermark_detect(speechlike(0.5), RATE)
    assert not caught.value.loading


@pytest.mark.parametrize("broken", ["missing", "garbage"])
def test_weights_that_cannot_load_leave_it_unavailable_without_saying_where(
    settings, marking, tmp_path, broken
):
    path = tmp_path / "secret-folder" / "generator.pth"
    if broken == "garbage":
        path.parent.mkdir()
        path.write_bytes(b"this is not a checkpoint" * 100)
    settings.WATERMARK_MODEL = str(path)

    assert watermark_stream(RATE) is None
    status = watermark_status()
    assert status["enabled"] is True
    assert status["state"] == "unavailable"
    assert "WATERMARK_MODEL" in status["reason"]
    assert "secret-folder" not in status["reason"]
    assert str(tmp_path) not in status["reason"]


def test_a_generator_that_needs_future_audio_is_refused(settings, marking, checkpoints, tmp_path):
    # The 16-bit base card has the same weights' shapes but non-causal convolutions.
    weights = torch.load(checkpoints["generator"], weights_only=False)["model"]
    path = tmp_path / "base.pth"
    torch.save({"xp.cfg": _card_config("audioseal_wm_16bits"), "model": weights}, path)
    settings.WATERMARK_MODEL = str(path)

    assert watermark_stream(RATE) is None
    status = watermark_status()
    assert status["state"] == "unavailable"
    assert "streaming" in status["reason"]


# --- The speech path ---------------------------------------------------------------------------


class ToneEngine(Engine):
    """A generative engine in miniature: speech-like audio in uneven chunks, marked."""

    name = "test-tone"
    capabilities = Capabilities(
        sample_rate=RATE,
        cloning=False,
        context=False,
        streaming=True,
        batching=False,
        native_speed_range=None,
        max_chunk_chars=200,
        watermarked=True,
    )
    chunk_sizes = (3000, 17, 12000, 8000)

    def _load(self) -> None:
        pass

    def synthesize(
        self, chunks: Sequence[str], voice: VoiceSpec, params: SynthesisParams
    ) -> Iterator[np.ndarray]:
        audio = speechlike(sum(self.chunk_sizes) / RATE)
        start = 0
        for size in self.chunk_sizes:
            yield audio[start : start + size]
            start += size


class UnmarkedToneEngine(ToneEngine):
    name = "test-tone-unmarked"
    capabilities = Capabilities(**{**ToneEngine.capabilities.__dict__, "watermarked": False})


def speak(engine: Engine, max_samples: int) -> np.ndarray:
    plan = SpeechPlan(
        engine=engine,
        chunks=["Hello.", "World."],
        voice=VoiceSpec(name="test"),
        params=SynthesisParams(),
        stretch=1.0,
        audio_format=FORMATS["pcm"],
        max_samples=max_samples,
        input_tokens=2,
        input_characters=12,
    )
    data = b"".join(SpeechStream(plan))
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768


def test_speech_from_a_watermarked_engine_is_marked_and_keeps_its_length(marking):
    total = sum(ToneEngine.chunk_sizes)
    marked = speak(ToneEngine(), max_samples=total)
    plain = speak(UnmarkedToneEngine(), max_samples=total)

    assert marked.size == plain.size == total
    mark = marked - plain
    assert rms(mark) > 1e-4
    assert rms(mark) < 0.1 * rms(plain)


def test_the_audio_cap_still_holds_with_the_mark(marking):
    assert speak(ToneEngine(), max_samples=15001).size == 15001


def test_engines_that_need_no_mark_are_left_alone(marking):
    audio = speechlike(sum(ToneEngine.chunk_sizes) / RATE)
    plain = speak(UnmarkedToneEngine(), max_samples=audio.size)
    # Only the 16-bit PCM rounding separates the output from the engine's audio.
    assert np.abs(plain - audio).max() <= 1 / 32768 + 1e-6


# --- POST /v1/audio/watermark/detect ----------------------------------------------------------


def wav_bytes(audio: np.ndarray, rate: int = RATE) -> bytes:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


@pytest.fixture
def marked_wav(marking, runs) -> bytes:
    return wav_bytes(runs.whole)


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
def test_the_endpoint_reads_a_wav_upload(api, marked_wav, prefix):
    response = api.post(
        f"{prefix}/audio/watermark/detect",
        files={"file": ("speech.wav", marked_wav, "audio/wav")},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"detected", "probability", "message", "sample_rate", "duration_seconds"}
    assert isinstance(body["detected"], bool)
    assert 0.0 <= body["probability"] <= 1.0
    assert body["message"] is None or 0 <= body["message"] < 2**16
    assert body["sample_rate"] == 16000
    assert body["duration_seconds"] == pytest.approx(1.5, abs=0.01)


def test_the_endpoint_refuses_what_is_not_audio(api, marking):
    response = api.post(
        "/v1/audio/watermark/detect",
        files={"file": ("notes.txt", b"these are not the sounds you seek", "text/plain")},
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "file"
    assert "not audio" in error["message"]


def test_the_endpoint_wants_a_file(api, marking):
    response = api.post(
        "/v1/audio/watermark/detect", files={"other": ("speech.wav", b"RIFF", "audio/wav")}
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"


def test_the_endpoint_wants_a_key(live_server_url, marked_wav):
    response = httpx.post(
        f"{live_server_url}/v1/audio/watermark/detect",
        files={"file": ("speech.wav", marked_wav, "audio/wav")},
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_the_endpoint_says_when_watermarking_is_off(api, settings, marked_wav):
    settings.WATERMARK = False

    response = api.post(
        "/v1/audio/watermark/detect", files={"file": ("speech.wav", marked_wav, "audio/wav")}
    )

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "watermark_unavailable"


def test_readyz_reports_the_watermark(live_server_url, marking):
    watermark_stream(RATE)  # loaded

    body = httpx.get(f"{live_server_url}/readyz").json()

    assert body["watermark"]["enabled"] is True
    assert body["watermark"]["state"] == "ready"


def test_the_openapi_schema_describes_the_endpoint(live_server_url):
    schema = httpx.get(f"{live_server_url}/v1/openapi.json").json()

    operation = schema["paths"]["/v1/audio/watermark/detect"]["post"]
    assert operation["operationId"] == "detectWatermark"
    assert "multipart/form-data" in operation["requestBody"]["content"]
    assert {"200", "400", "503"} <= set(operation["responses"])


def test_audioseal_comes_without_torchaudio():
    import_audioseal()

    assert "torchaudio" not in sys.modules
    assert "julius" not in sys.modules
