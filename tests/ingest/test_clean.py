"""clean_audio: DC, loudness, noise, silence trimming and refusals, on real (eSpeak) speech."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from ingest.clean import MAX_GAIN_DB, PEAK_CEILING, TARGET_LUFS, clean_audio
from ingest.errors import IngestError
from speech.audio.formats import SAMPLE_RATE
from speech.engines.base import SynthesisParams, VoiceSpec
from speech.engines.registry import engine_get

ESPEAK_RATE = 22050
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore, every summer.",
    "A journey of a thousand miles begins with a single step.",
)


def speak(text: str, rate: int = SAMPLE_RATE) -> np.ndarray:
    """eSpeak speech as float64 at `rate`."""
    engine = engine_get("espeak")
    spec = VoiceSpec(name="alloy", standard="alloy")
    native = np.concatenate(list(engine.synthesize([text], spec, SynthesisParams())))
    native = native.astype(np.float64)
    if rate == ESPEAK_RATE:
        return native
    assert rate == SAMPLE_RATE
    return resample_poly(native, 160, 147)  # 22050 * 160 / 147 = 24000


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE))


def loudness(samples: np.ndarray) -> float:
    return pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(samples.astype(np.float64))


def rms_db(samples: np.ndarray) -> float:
    return 10 * np.log10(np.mean(samples.astype(np.float64) ** 2))


def with_noise(samples: np.ndarray, speech_rms: float, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return samples + rng.normal(0.0, speech_rms / 10 ** (snr_db / 20), samples.size)


def speech_mask(size: int, ranges: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    for start, end in ranges:
        mask[start:end] = True
    return mask


@pytest.fixture(scope="module")
def sentences() -> list[np.ndarray]:
    return [speak(text) for text in SENTENCES]


@pytest.fixture(scope="module")
def speech(sentences) -> np.ndarray:
    """About 8 s of speech, the sentences back to back."""
    return np.concatenate(sentences)


def test_speech_comes_back_as_float32_at_24khz_with_its_speech_ranges(speech):
    # given: clean speech
    # when
    cleaned = clean_audio(speech.astype(np.float32))

    # then: the ranges are sorted, disjoint, inside the audio, and add up to speech_seconds
    assert cleaned.samples.dtype == np.float32
    assert cleaned.speech
    assert all(0 <= start < end <= cleaned.samples.size for start, end in cleaned.speech)
    assert all(a[1] <= b[0] for a, b in zip(cleaned.speech, cleaned.speech[1:], strict=False))
    total = sum(end - start for start, end in cleaned.speech) / SAMPLE_RATE
    assert cleaned.speech_seconds == pytest.approx(total)
    assert cleaned.speech_seconds > 0.8 * speech.size / SAMPLE_RATE


def test_audio_at_another_rate_is_resampled_to_24khz():
    # given: eSpeak's own 22.05 kHz output
    native = speak(" ".join(SENTENCES), rate=ESPEAK_RATE)

    # when
    cleaned = clean_audio(native.astype(np.float32), ESPEAK_RATE)

    # then: the same speech, measured in 24 kHz samples
    expected_seconds = native.size / ESPEAK_RATE
    assert cleaned.samples.size / SAMPLE_RATE == pytest.approx(expected_seconds, abs=0.5)
    assert cleaned.speech_seconds > 0.8 * expected_seconds


def test_dc_offset_is_removed(speech):
    # given: speech riding on a large DC offset
    offset = speech + 0.2
    assert offset.mean() > 0.19

    # when
    cleaned = clean_audio(offset.astype(np.float32))

    # then
    assert abs(float(np.mean(cleaned.samples))) < 1e-3


@pytest.mark.parametrize("input_lufs", [-45.0, -30.0, -20.0, -12.0])
def test_loudness_lands_on_the_target_whatever_the_input_level(speech, input_lufs):
    # given: the same speech, with pauses, at very different levels
    recording = np.concatenate([silence(1.0), speech, silence(1.0)])
    recording *= 10 ** ((input_lufs - loudness(recording)) / 20)

    # when
    cleaned = clean_audio(recording.astype(np.float32))

    # then
    assert loudness(cleaned.samples) == pytest.approx(TARGET_LUFS, abs=1.0)
    assert np.max(np.abs(cleaned.samples)) <= PEAK_CEILING


def test_a_clipped_very_loud_recording_is_brought_down_without_clipping(speech):
    # given: speech driven far into clipping (flat tops at full scale, about -8 LUFS)
    recording = np.clip(speech * 6.0, -1.0, 1.0)
    assert loudness(recording) > TARGET_LUFS + 8

    # when
    cleaned = clean_audio(recording.astype(np.float32))

    # then
    assert loudness(cleaned.samples) == pytest.approx(TARGET_LUFS, abs=1.0)
    assert np.max(np.abs(cleaned.samples)) <= PEAK_CEILING


def test_a_click_louder_than_the_speech_is_limited_not_clipped(speech):
    # given: quiet speech with a full-scale 2 ms click in the middle (a bumped microphone),
    # which the gain that brings the speech to the target would push far over full scale
    recording = speech * 10 ** ((-32.0 - loudness(speech)) / 20)
    middle = recording.size // 2
    recording[middle : middle + 48] = 1.0

    # when
    cleaned = clean_audio(recording.astype(np.float32))

    # then: the click is held under the ceiling and the speech level is still on target
    assert np.max(np.abs(cleaned.samples)) <= PEAK_CEILING
    assert np.max(np.abs(cleaned.samples)) > 0.5 * PEAK_CEILING
    assert loudness(cleaned.samples) == pytest.approx(TARGET_LUFS, abs=1.0)


def test_gain_is_capped_so_a_barely_audible_recording_is_not_blown_up(speech):
    # given: speech at -56 LUFS, above the silence threshold but far below the target
    quiet = speech * 10 ** ((-56.0 - loudness(speech)) / 20)

    # when
    cleaned = clean_audio(quiet.astype(np.float32))

    # then: raised by the maximum gain only, so it stays well short of the target
    assert loudness(cleaned.samples) == pytest.approx(-56.0 + MAX_GAIN_DB, abs=1.5)
    assert loudness(cleaned.samples) < TARGET_LUFS - 3


def test_noise_is_reduced_relative_to_the_speech(sentences):
    # given: white noise 20 dB under the speech, over sentences separated by 1 s pauses
    gap = silence(1.0)
    parts = [gap]
    for sentence in sentences:
        parts += [sentence, gap]
    clean = np.concatenate(parts)
    is_speech = np.abs(clean) > 0  # eSpeak's own silences are digital zeros
    speech_rms = float(np.sqrt(np.mean(clean[is_speech] ** 2)))
    noisy = with_noise(clean, speech_rms, snr_db=20.0)
    floor_before = rms_db(noisy[~is_speech]) - rms_db(noisy[is_speech])

    # when
    cleaned = clean_audio(noisy.astype(np.float32))

    # then: what is left between the speech ranges (pads and short pauses) is much quieter
    kept_speech = speech_mask(cleaned.samples.size, cleaned.speech)
    assert (~kept_speech).sum() > 0.3 * SAMPLE_RATE
    floor_after = rms_db(cleaned.samples[~kept_speech]) - rms_db(cleaned.samples[kept_speech])
    assert floor_before == pytest.approx(-20.0, abs=2.0)
    assert floor_after < floor_before - 10.0


def test_leading_trailing_and_middle_silence_is_trimmed(sentences):
    # given: 2 s of (noisy) silence before, 3 s between two sentences and 2 s after
    first, second = sentences[0], sentences[2]
    recording = np.concatenate([silence(2.0), first, silence(3.0), second, silence(2.0)])
    speech_rms = float(np.sqrt(np.mean(np.concatenate([first, second]) ** 2)))
    recording = with_noise(recording, speech_rms, snr_db=30.0)

    # when
    cleaned = clean_audio(recording.astype(np.float32))

    # then: about the 7 s of added silence is gone (pads of a fraction of a second remain)
    seconds_in = recording.size / SAMPLE_RATE
    seconds_out = cleaned.samples.size / SAMPLE_RATE
    assert seconds_out == pytest.approx(seconds_in - 7.0, abs=1.0)
    # and the speech ranges hold nearly all of what is left's energy: the spoken parts
    energy = cleaned.samples.astype(np.float64) ** 2
    inside = energy[speech_mask(cleaned.samples.size, cleaned.speech)].sum()
    assert inside / energy.sum() > 0.98
    # and each sentence is found, on its side of the (now short) pause
    assert len(cleaned.speech) >= 2
    assert cleaned.speech_seconds > 0.8 * (first.size + second.size) / SAMPLE_RATE


@pytest.mark.parametrize(
    "recording",
    [
        pytest.param(np.zeros(5 * SAMPLE_RATE), id="digital-silence"),
        pytest.param(np.zeros(0), id="empty"),
        pytest.param(np.full(5 * SAMPLE_RATE, 0.3), id="dc-only"),
        pytest.param(
            np.random.default_rng(0).normal(0.0, 10 ** (-75 / 20), 5 * SAMPLE_RATE),
            id="hiss-at-minus-75-dbfs",
        ),
    ],
)
def test_silent_recordings_are_refused(recording):
    # given: a recording with nothing in it (or nothing but an offset or faint hiss)
    # when
    with pytest.raises(IngestError) as caught:
        clean_audio(recording.astype(np.float32))

    # then
    assert caught.value.code == "silent"
    assert caught.value.message == "The recording is silent."


def test_one_second_of_speech_is_too_little(settings):
    # given: about a second of speech in 4 s of recording, and a 3 s minimum
    settings.VOICE_MIN_SPEECH_SECONDS = 3.0
    words = speak("Hello there.")
    recording = np.concatenate([silence(1.5), words, silence(1.5)])

    # when
    with pytest.raises(IngestError) as caught:
        clean_audio(recording.astype(np.float32))

    # then: the caller learns how much was found and how much is needed
    assert caught.value.code == "too_little_speech"
    found = re.search(r"only (\d+\.\d) seconds of speech", caught.value.message)
    assert found, caught.value.message
    assert 0.3 < float(found.group(1)) <= words.size / SAMPLE_RATE
    assert "at least 3 seconds" in caught.value.message


def test_the_minimum_is_read_when_called(settings):
    # given: the same second of speech, and a minimum lowered below it
    settings.VOICE_MIN_SPEECH_SECONDS = 0.5
    recording = np.concatenate([silence(1.5), speak("Hello there."), silence(1.5)])

    # when
    cleaned = clean_audio(recording.astype(np.float32))

    # then
    assert cleaned.speech_seconds >= 0.5


@pytest.mark.parametrize("rms", [0.01, 0.1, 0.3])
def test_pure_noise_is_refused(rms):
    # given: 6 s of white noise, at several levels, and no speech
    noise = np.random.default_rng(1).normal(0.0, rms, 6 * SAMPLE_RATE)

    # when
    with pytest.raises(IngestError) as caught:
        clean_audio(noise.astype(np.float32))

    # then
    assert caught.value.code in {"silent", "too_little_speech"}


def test_concurrent_calls_give_the_same_results_as_one_at_a_time(settings, sentences):
    # given: different recordings, cleaned one at a time
    settings.VOICE_MIN_SPEECH_SECONDS = 1.0
    recordings = [
        np.concatenate([silence(0.5), sentence, silence(0.5)]).astype(np.float32)
        for sentence in sentences
    ]
    expected = [clean_audio(recording) for recording in recordings]

    # when: all cleaned at once, from several threads (the VAD model is shared)
    barrier = threading.Barrier(len(recordings))

    def clean_together(recording: np.ndarray):
        barrier.wait()
        return clean_audio(recording)

    with ThreadPoolExecutor(max_workers=len(recordings)) as pool:
        results = list(pool.map(clean_together, recordings))

    # then
    for got, want in zip(results, expected, strict=True):
        assert got.speech == want.speech
        np.testing.assert_array_equal(got.samples, want.samples)
