"""Clean a decoded recording for cloning: level, noise, silence.

Mono float32 in, mono float32 at 24 kHz out. The stages, in order:

1. DC and rumble removal (mean subtraction, then a gentle high-pass).
2. Loudness normalisation to TARGET_LUFS (ITU-R BS.1770 through pyloudnorm), so that the
   denoiser and the voice-activity detector see every recording at the same level. The gain
   is capped: a near-silent recording is refused, a very quiet one is lifted only so far, so
   that its noise is not blown up to speech level.
3. Spectral noise reduction (noisereduce, stationary gating with a noise profile taken from
   the recording's quietest blocks).
4. Voice-activity detection (silero-vad at 16 kHz on a copy) and trimming: non-speech is cut
   out, except short pads around speech and short pauses inside it.
5. Loudness normalisation of what is left (speech only now, so it lands on the target), and a
   peak limiter so that nothing clips.
"""

import math
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import noisereduce
import numpy as np
import pyloudnorm
from django.conf import settings
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import butter, resample_poly, sosfilt

from ingest.errors import IngestError
from speech.audio.formats import SAMPLE_RATE

if TYPE_CHECKING:
    import torch


# --- Level ---------------------------------------------------------------------------------
TARGET_LUFS = -20.0
# At most this much gain in total: a recording quieter than TARGET_LUFS - MAX_GAIN_DB stays
# below the target rather than having its hiss raised to speech level.
MAX_GAIN_DB = 30.0
# Output peaks stay below -1 dBFS (headroom for later encoding to lossy formats).
PEAK_CEILING = 10 ** (-1.0 / 20)
# The limiter's gain changes ramp over about this long, which keeps it free of clicks.
LIMITER_SECONDS = 0.005
# Below either of these, the recording holds nothing to clone: a peak under -60 dBFS, or a
# gated loudness under -60 LUFS (speech that quiet would still be 10 dB short of the target
# after the maximum gain, with whatever noise the recording has).
SILENT_PEAK = 10 ** (-60.0 / 20)
SILENT_LUFS = -60.0
# BS.1770's gating block: pyloudnorm cannot measure anything shorter.
LOUDNESS_BLOCK_SECONDS = 0.4

# --- DC and rumble -------------------------------------------------------------------------
# Below the lowest voice fundamentals (~70 Hz), gentle (2nd order) so speech is untouched.
HIGHPASS_HZ = 60.0

# --- Noise reduction -----------------------------------------------------------------------
# The noise profile: the quietest NOISE_QUANTILE of 50 ms blocks. In a recording with pauses
# these are the pauses. In one without, they are the gaps between words: short blocks and a
# low quantile keep them there, where the speech is faint (with 100 ms blocks and 20%, clean
# continuous speech lost 2.6 dB of loudness to the gate; with these, 0.3 dB).
NOISE_BLOCK_SECONDS = 0.05
NOISE_QUANTILE = 0.1
# Gated time-frequency bins keep 10% of their amplitude (-20 dB): full gating leaves
# "musical noise" (isolated twinkling bins), which a cloned voice would learn to reproduce.
NOISE_PROP_DECREASE = 0.9
# 21 ms windows at 24 kHz: the resolution recommended for speech.
NOISE_N_FFT = 512

# --- Voice activity ------------------------------------------------------------------------
VAD_SAMPLE_RATE = 16000
VAD_THRESHOLD = 0.5
VAD_MIN_SPEECH_MS = 250
VAD_MIN_SILENCE_MS = 100
VAD_SPEECH_PAD_MS = 30
# Speech segments closer than this are kept together with the pause between them (a natural
# pause is part of how someone speaks); longer silences are cut down to two pads.
MERGE_GAP_SECONDS = 0.3
# Kept around each run of speech, so that onsets and releases are not clipped.
PAD_SECONDS = 0.15
# Where non-speech is cut out, the kept pieces fade in and out over this long (no clicks).
FADE_SECONDS = 0.01


@dataclass(frozen=True)
class CleanedAudio:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE
    # Sample ranges [start, end) of detected speech in `samples`: sorted, non-overlapping.
    speech: list[tuple[int, int]]
    speech_seconds: float


def clean_audio(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> CleanedAudio:
    """The recording levelled, denoised and trimmed to its speech, at SAMPLE_RATE.

    Raises IngestError "silent" for a silent or near-silent recording and "too_little_speech"
    when less than settings.VOICE_MIN_SPEECH_SECONDS of speech is found.
    """
    audio = _as_mono_24k(samples, sample_rate)
    if audio.size == 0:
        raise IngestError("The recording is silent.", code="silent")
    audio = _remove_dc(audio)
    loudness = _loudness(audio)
    if np.max(np.abs(audio)) < SILENT_PEAK or loudness < SILENT_LUFS:
        raise IngestError("The recording is silent.", code="silent")

    first_gain_db = min(TARGET_LUFS - loudness, MAX_GAIN_DB)
    audio *= _db_to_gain(first_gain_db)
    audio = _reduce_noise(audio)

    ranges = _detect_speech(audio)
    kept, speech = _trim(audio, ranges)
    speech_seconds = sum(end - start for start, end in speech) / SAMPLE_RATE
    minimum = float(settings.VOICE_MIN_SPEECH_SECONDS)
    if speech_seconds < minimum:
        # Rounded down, so that 2.96 s against a 3 s minimum does not read "only 3.0".
        found = math.floor(speech_seconds * 10) / 10
        raise IngestError(
            f"The recording has only {found:.1f} seconds of speech; "
            f"at least {minimum:g} seconds are needed.",
            code="too_little_speech",
        )

    # Measured again on speech only: denoising and trimming moved the level a little.
    second_gain_db = min(TARGET_LUFS - _loudness(kept), MAX_GAIN_DB - first_gain_db)
    kept *= _db_to_gain(second_gain_db)
    kept = _limit_peaks(kept)
    return CleanedAudio(
        samples=kept.astype(np.float32), speech=speech, speech_seconds=speech_seconds
    )


# --- Stages ----------------------------------------------------------------------------------


def _as_mono_24k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """A float64 working copy at SAMPLE_RATE, with non-finite samples (corrupt frames) zeroed."""
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples, got shape {samples.shape}")
    if sample_rate <= 0:
        raise ValueError(f"bad sample rate {sample_rate}")
    audio = np.nan_to_num(samples.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if sample_rate != SAMPLE_RATE and audio.size:
        divisor = math.gcd(SAMPLE_RATE, sample_rate)
        audio = resample_poly(audio, SAMPLE_RATE // divisor, sample_rate // divisor)
    return audio


def _remove_dc(audio: np.ndarray) -> np.ndarray:
    # The mean first: a large offset would otherwise start the filter with a step transient.
    audio = audio - audio.mean()
    sos = butter(2, HIGHPASS_HZ, btype="highpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, audio)


def _loudness(audio: np.ndarray) -> float:
    """Integrated loudness in LUFS; -inf for digital silence.

    Audio shorter than one gating block is estimated from its plain mean square (the same
    formula without K-weighting or gating), which is close enough for a level decision.
    """
    if audio.size == 0 or not np.any(audio):
        return -math.inf
    if audio.size <= LOUDNESS_BLOCK_SECONDS * SAMPLE_RATE:
        return -0.691 + 10 * math.log10(float(np.mean(audio**2)))
    loudness = pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(audio)
    # Every block under the absolute gate (-70 LUFS) gives NaN or -inf: silent either way.
    return float(loudness) if math.isfinite(loudness) else -math.inf


def _db_to_gain(db: float) -> float:
    return 10 ** (db / 20)


def _reduce_noise(audio: np.ndarray) -> np.ndarray:
    """Stationary spectral gating against a profile of the recording's quietest blocks.

    Stationary, not noisereduce's non-stationary mode: a cloning clip is one speaker at one
    place, whose background (hiss, hum, fan, room tone) is steady, and a fixed profile
    taken from the pauses removes it without touching speech. The non-stationary mode tracks
    the noise floor with a ~2 s running average of the signal itself, which drifts up inside
    long stretches of speech and eats sustained vowels. By default the stationary mode would
    take its profile from the whole clip, speech included, which puts the gate too high.
    """
    profile = _noise_profile(audio)
    if profile.size == 0 or not np.any(profile):
        return audio  # digital silence between words: nothing to remove
    return noisereduce.reduce_noise(
        y=audio,
        sr=SAMPLE_RATE,
        stationary=True,
        y_noise=profile,
        prop_decrease=NOISE_PROP_DECREASE,
        n_fft=NOISE_N_FFT,
    )


def _noise_profile(audio: np.ndarray) -> np.ndarray:
    block = round(NOISE_BLOCK_SECONDS * SAMPLE_RATE)
    count = audio.size // block
    if count == 0:
        return audio
    blocks = audio[: count * block].reshape(count, block)
    energy = np.mean(blocks**2, axis=1)
    quietest = np.sort(np.argsort(energy)[: max(1, round(count * NOISE_QUANTILE))])
    return blocks[quietest].reshape(-1)


# silero-vad's model keeps recurrent state between the windows of one pass, so a single
# instance per process is loaded once and every pass holds the lock.
_vad_lock = threading.Lock()
_vad_model: "torch.nn.Module | None" = None


def clean_preload() -> None:
    """Load the VAD model now (importing this module has loaded the rest of the stack)."""
    with _vad_lock:
        _vad()


def _vad() -> "torch.nn.Module":
    """The process's VAD model; call with `_vad_lock` held."""
    global _vad_model
    if _vad_model is None:
        # Deferred: silero-vad loads only in a process that cleans a recording.
        from silero_vad import load_silero_vad

        # Its loader uses APIs that torch and importlib now call deprecated; nothing to act on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            _vad_model = load_silero_vad()  # ships in the wheel: no download
    return _vad_model


def _detect_speech(audio: np.ndarray) -> list[tuple[int, int]]:
    """Speech as sorted [start, end) sample ranges at SAMPLE_RATE."""
    # Deferred: silero-vad loads only in a process that cleans a recording.
    import torch
    from silero_vad import get_speech_timestamps

    divisor = math.gcd(SAMPLE_RATE, VAD_SAMPLE_RATE)
    low_rate = resample_poly(audio, VAD_SAMPLE_RATE // divisor, SAMPLE_RATE // divisor)
    # The model was trained on audio in [-1, 1]; the levelled copy can peak a little above.
    tensor = torch.from_numpy(np.clip(low_rate, -1.0, 1.0).astype(np.float32))
    with _vad_lock, torch.inference_mode():
        stamps = get_speech_timestamps(
            tensor,
            _vad(),
            threshold=VAD_THRESHOLD,
            sampling_rate=VAD_SAMPLE_RATE,
            min_speech_duration_ms=VAD_MIN_SPEECH_MS,
            min_silence_duration_ms=VAD_MIN_SILENCE_MS,
            speech_pad_ms=VAD_SPEECH_PAD_MS,
        )
    scale = SAMPLE_RATE / VAD_SAMPLE_RATE
    ranges = []
    for stamp in stamps:
        start = min(round(stamp["start"] * scale), audio.size)
        end = min(round(stamp["end"] * scale), audio.size)
        if end > start:
            ranges.append((start, end))
    return ranges


def _trim(
    audio: np.ndarray, speech: list[tuple[int, int]]
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The audio with non-speech cut out, and the speech ranges moved into it."""
    pad = round(PAD_SECONDS * SAMPLE_RATE)
    merge_gap = round(MERGE_GAP_SECONDS * SAMPLE_RATE)
    # Pauses shorter than this stay whole; their padded regions would overlap anyway.
    joined_gap = max(merge_gap, 2 * pad)
    regions: list[list[int]] = []  # [start, end) of kept audio in the input
    previous_end = None
    for start, end in speech:
        if previous_end is not None and start - previous_end < joined_gap:
            regions[-1][1] = end + pad
        else:
            regions.append([start - pad, end + pad])
        previous_end = end
    pieces: list[np.ndarray] = []
    moved: list[tuple[int, int]] = []
    offset = 0
    index = 0
    for start, end in regions:
        start, end = max(start, 0), min(end, audio.size)
        piece = audio[start:end].copy()
        _fade_cut_edges(piece, cut_start=start > 0, cut_end=end < audio.size)
        pieces.append(piece)
        while index < len(speech) and speech[index][1] <= end:
            speech_start, speech_end = speech[index]
            moved.append((speech_start - start + offset, speech_end - start + offset))
            index += 1
        offset += piece.size
    kept = np.concatenate(pieces) if pieces else np.zeros(0)
    return kept, moved


def _fade_cut_edges(piece: np.ndarray, *, cut_start: bool, cut_end: bool) -> None:
    length = min(round(FADE_SECONDS * SAMPLE_RATE), piece.size // 2)
    if length == 0:
        return
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, length))  # raised cosine, 0 → 1
    if cut_start:
        piece[:length] *= ramp
    if cut_end:
        piece[-length:] *= ramp[::-1]


def _limit_peaks(audio: np.ndarray) -> np.ndarray:
    """Peaks brought under PEAK_CEILING by a smooth gain dip, not by clipping.

    The gain each sample needs is spread over ±half a window by a running minimum, then
    smoothed by a running mean of the same width: every sample's smoothed gain averages only
    values at or below its own requirement, so no peak escapes, and the gain ramps over the
    window instead of jumping. Speech at the target level rarely needs it at all.
    """
    peak = np.max(np.abs(audio)) if audio.size else 0.0
    if peak <= PEAK_CEILING:
        return audio
    needed = np.minimum(1.0, PEAK_CEILING / np.maximum(np.abs(audio), 1e-12))
    width = 2 * round(LIMITER_SECONDS * SAMPLE_RATE / 2) + 1
    spread = minimum_filter1d(needed, size=width, mode="nearest")
    gain = uniform_filter1d(spread, size=width, mode="nearest")
    # Rounding in the running mean can leave a peak a hair over the ceiling.
    return np.clip(audio * gain, -PEAK_CEILING, PEAK_CEILING)
