"""TimeStretch: pitch-preserving speed change through FFmpeg's atempo."""

import math

import numpy as np
import pytest

from speech.audio.tempo import TimeStretch, _stages

RATE = 22050
TONE_HZ = 440.0
PIECE = RATE // 10


def sine(freq: float, seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def stretch(factor: float, samples: np.ndarray, piece: int = PIECE) -> np.ndarray:
    tempo = TimeStretch(factor, RATE)
    out = [tempo.process(samples[i : i + piece]) for i in range(0, samples.size, piece)]
    out.append(tempo.flush())
    return np.concatenate(out)


def dominant_frequency(samples: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("factor", [0.25, 0.5, 1.5, 2.0, 4.0])
def test_it_changes_duration_by_the_inverse_of_the_factor(factor):
    # given 2 s of a 440 Hz tone, fed in 100 ms pieces
    tone = sine(TONE_HZ, 2.0)

    out = stretch(factor, tone)

    # then it lasts 2 s / factor
    expected = tone.size / factor
    assert abs(out.size - expected) <= 0.02 * expected


@pytest.mark.parametrize("factor", [0.25, 0.5, 1.5, 2.0, 4.0])
def test_it_preserves_pitch(factor):
    out = stretch(factor, sine(TONE_HZ, 2.0))

    # then the tone is still 440 Hz (resampling-style speed-up would give 440 * factor)
    assert abs(dominant_frequency(out) - TONE_HZ) <= 5.0
    # and still a full-level tone, not silence or noise
    assert 0.4 <= np.abs(out).max() <= 0.6


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_it_returns_mono_float32(factor):
    tempo = TimeStretch(factor, RATE)

    out = np.concatenate([tempo.process(sine(TONE_HZ, 1.0)), tempo.flush()])

    assert out.dtype == np.float32
    assert out.ndim == 1
    assert np.isfinite(out).all()


def test_factor_one_keeps_the_audio():
    tone = sine(TONE_HZ, 1.0)

    out = stretch(1.0, tone)

    assert abs(out.size - tone.size) <= 0.01 * tone.size
    assert abs(dominant_frequency(out) - TONE_HZ) <= 2.0


def test_one_big_piece_and_many_small_pieces_give_the_same_length():
    tone = sine(TONE_HZ, 2.0)

    whole = stretch(1.5, tone, piece=tone.size)
    pieces = stretch(1.5, tone, piece=333)

    assert abs(whole.size - pieces.size) <= 0.01 * whole.size


def test_empty_input_gives_empty_float32_output():
    tempo = TimeStretch(2.0, RATE)

    out = tempo.process(np.zeros(0, dtype=np.float32))

    assert out.size == 0
    assert out.dtype == np.float32


def test_it_works_at_other_sample_rates():
    rate = 48000
    tone = (0.5 * np.sin(2 * np.pi * TONE_HZ * np.arange(rate) / rate)).astype(np.float32)
    tempo = TimeStretch(2.0, rate)

    out = np.concatenate([tempo.process(tone), tempo.flush()])

    assert abs(out.size - rate / 2) <= 0.02 * rate / 2
    assert abs(dominant_frequency(out, rate) - TONE_HZ) <= 5.0


@pytest.mark.parametrize("factor", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_it_refuses_invalid_factors(factor):
    with pytest.raises(ValueError, match="time-stretch factor"):
        TimeStretch(factor, RATE)


@pytest.mark.parametrize(
    ("factor", "stages"),
    [
        (1.0, [1.0]),
        (2.0, [2.0]),
        (0.5, [0.5]),
        (4.0, [2.0, 2.0]),
        (0.25, [0.5, 0.5]),
        (3.0, [2.0, 1.5]),
        (0.3, [0.5, 0.6]),
    ],
)
def test_large_factors_are_chained_stages_within_atempos_best_range(factor, stages):
    got = _stages(factor)

    assert got == pytest.approx(stages)
    assert math.prod(got) == pytest.approx(factor)
    assert all(0.5 <= stage <= 2.0 for stage in got)
