"""Transcription with openai-whisper: a tiny random checkpoint loaded the way the server loads
WHISPER_MODEL, real speech from eSpeak NG, and the failures a caller is told how to fix.

A random model hears nothing sensible, so the tests check the transcript's shape (timestamps
inside the audio, in order and not overlapping, text stripped, nothing empty) and its
determinism, not its words.
"""

import os
import threading
import urllib.error

import numpy as np
import pytest
import whisper
from scipy.signal import resample_poly

from ingest import transcribe as transcribe_module
from ingest.reference import TranscriptSegment
from ingest.transcribe import (
    FAILED_LOAD_MEMORY_SECONDS,
    LOADING_RETRY_AFTER_SECONDS,
    MAX_SECONDS,
    WHISPER_SAMPLE_RATE,
    Transcript,
    TranscriptionUnavailable,
    _segments,
    _to_whisper_audio,
    transcribe,
    transcriber_reset,
    whisper_in_use,
)
from speech.engines.base import SynthesisParams, VoiceSpec
from speech.engines.registry import engine_get
from tests.support.whisper import whisper_loads_recorded

ESPEAK_RATE = 22050
RATE = 24000
TEXT = "The quick brown fox jumps over the lazy dog. Then it naps in the sun."
# Whisper's timestamps have a resolution of 20 ms.
SLACK = 0.02


@pytest.fixture
def speech_22k() -> np.ndarray:
    voice = VoiceSpec(name="alloy", standard="alloy")
    chunks = engine_get("espeak").synthesize([TEXT], voice, SynthesisParams())
    return np.concatenate(list(chunks))


@pytest.fixture
def speech(speech_22k) -> np.ndarray:
    """A few seconds of speech at 24 kHz, the rate the ingest pipeline works at."""
    return resample_poly(speech_22k, 160, 147).astype(np.float32)


def assert_well_formed(transcript: Transcript, duration: float) -> None:
    assert isinstance(transcript, Transcript)
    previous_end = 0.0
    for segment in transcript.segments:
        assert isinstance(segment, TranscriptSegment)
        assert 0.0 <= segment.start <= segment.end <= duration + SLACK
        assert segment.start >= previous_end
        assert segment.text
        assert segment.text == segment.text.strip()
        assert segment.text in transcript.text
        previous_end = segment.end
    assert transcript.text == transcript.text.strip()
    assert bool(transcript.text) == bool(transcript.segments)


def assert_no_path(message: str, *paths: object) -> None:
    assert os.sep not in message
    for path in paths:
        assert str(path) not in message


def test_transcribes_speech_into_well_formed_segments(whisper_model, speech):
    transcript = transcribe(speech, RATE)

    assert_well_formed(transcript, speech.size / RATE)
    assert transcript.language == "en"
    # Greedy decoding: the same audio gives the same transcript.
    assert transcribe(speech, RATE) == transcript


def test_resamples_any_rate(whisper_model, speech_22k):
    transcript = transcribe(speech_22k, ESPEAK_RATE)

    assert_well_formed(transcript, speech_22k.size / ESPEAK_RATE)
    resampled = _to_whisper_audio(speech_22k, ESPEAK_RATE)
    assert resampled.dtype == np.float32
    assert resampled.size == pytest.approx(
        speech_22k.size * WHISPER_SAMPLE_RATE / ESPEAK_RATE, abs=1
    )


def test_model_is_loaded_once_even_by_concurrent_jobs(whisper_model, speech, load_calls):
    first = transcribe(speech, RATE)
    results: list[Transcript] = []

    def job() -> None:
        results.append(transcribe(speech, RATE))

    threads = [threading.Thread(target=job) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert load_calls == [str(whisper_model)]
    # One decode at a time on the shared model: concurrent jobs get the same transcript.
    assert results == [first] * 3


def test_a_changed_setting_loads_the_new_model(
    whisper_model, settings, speech, load_calls, tmp_path
):
    transcribe(speech, RATE)
    other = tmp_path / "copy.pt"
    other.write_bytes(whisper_model.read_bytes())
    settings.WHISPER_MODEL = str(other)

    transcribe(speech, RATE)

    assert load_calls == [str(whisper_model), str(other)]


def test_missing_local_checkpoint_is_explained_without_the_path(whisper_model, settings, tmp_path):
    missing = tmp_path / "models" / "whisper-base.pt"
    settings.WHISPER_MODEL = str(missing)

    with pytest.raises(TranscriptionUnavailable) as caught:
        transcribe(np.zeros(RATE, dtype=np.float32), RATE)

    message = caught.value.message
    assert str(caught.value) == message
    assert "WHISPER_MODEL" in message
    assert "checkpoint file" in message
    assert "transcript with the upload" in message
    assert_no_path(message, missing, tmp_path)


def test_corrupt_local_checkpoint_is_explained_without_the_path(whisper_model, settings, tmp_path):
    corrupt = tmp_path / "whisper.pt"
    corrupt.write_bytes(b"not a checkpoint" * 64)
    settings.WHISPER_MODEL = str(corrupt)

    with pytest.raises(TranscriptionUnavailable) as caught:
        transcribe(np.zeros(RATE, dtype=np.float32), RATE)

    assert "not a Whisper checkpoint" in caught.value.message
    assert_no_path(caught.value.message, corrupt)


def test_unreachable_download_is_explained_and_retried_later(
    whisper_model, settings, monkeypatch, speech
):
    """A size name needs one download; without network the caller learns what to do. The
    failure is remembered for a while (callers meanwhile are told at once, with no download
    of their own), then the next job tries again."""
    urls: list[str] = []

    def unreachable(url: str, root: str, in_memory: bool):
        urls.append(url)
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(whisper, "_download", unreachable)
    settings.WHISPER_MODEL = "tiny.en"

    with pytest.raises(TranscriptionUnavailable) as caught:
        transcribe(speech, RATE)

    message = caught.value.message
    assert "'tiny.en'" in message
    assert "could not be downloaded" in message
    assert "WHISPER_MODEL to a local checkpoint file" in message
    assert "transcript with the upload" in message
    assert_no_path(message, os.path.expanduser("~"))
    assert len(urls) == 1

    with pytest.raises(TranscriptionUnavailable) as again:
        transcribe(speech, RATE)
    assert again.value.message == message
    assert not again.value.loading
    assert len(urls) == 1

    real_monotonic = transcribe_module.monotonic
    monkeypatch.setattr(
        transcribe_module, "monotonic", lambda: real_monotonic() + FAILED_LOAD_MEMORY_SECONDS + 1
    )
    with pytest.raises(TranscriptionUnavailable):
        transcribe(speech, RATE)
    assert len(urls) == 2

    # a reset forgets the failure at once
    monkeypatch.setattr(transcribe_module, "monotonic", real_monotonic)
    with pytest.raises(TranscriptionUnavailable):
        transcribe(speech, RATE)
    assert len(urls) == 2
    transcriber_reset()
    with pytest.raises(TranscriptionUnavailable):
        transcribe(speech, RATE)
    assert len(urls) == 3

    settings.WHISPER_MODEL = str(whisper_model)
    assert_well_formed(transcribe(speech, RATE), speech.size / RATE)


def test_a_caller_that_cannot_wait_is_told_the_model_is_loading(whisper_model, monkeypatch):
    """The model loads once, on a thread of its own: a caller with a bound on its wait learns
    that it is loading (and when to ask again), a patient one gets the same load's model."""
    may_finish = threading.Event()
    calls = whisper_loads_recorded(monkeypatch, lambda: may_finish.wait(timeout=60))
    try:
        with pytest.raises(TranscriptionUnavailable) as caught:
            with whisper_in_use(wait=0.05):
                pass
    finally:
        may_finish.set()

    assert caught.value.loading
    assert caught.value.code == "transcription_loading"
    assert caught.value.retry_after == LOADING_RETRY_AFTER_SECONDS
    assert "loading" in caught.value.message
    with whisper_in_use(wait=60) as model:
        assert not model.is_multilingual
    assert calls == [str(whisper_model)]


def test_only_cloning_is_told_to_send_a_transcript_instead(whisper_model, settings, tmp_path):
    settings.WHISPER_MODEL = str(tmp_path / "missing.pt")

    with pytest.raises(TranscriptionUnavailable) as plain:
        with whisper_in_use(wait=60):
            pass
    with pytest.raises(TranscriptionUnavailable) as cloning:
        transcribe(np.zeros(RATE, dtype=np.float32), RATE)

    assert not plain.value.loading
    assert plain.value.code == "transcription_unavailable"
    assert plain.value.retry_after is None
    assert "transcript" not in plain.value.message
    assert cloning.value.message.startswith(plain.value.message)
    assert "transcript with the upload" in cloning.value.message


def test_a_load_that_is_no_longer_wanted_is_forgotten(whisper_model, monkeypatch):
    """A reset while a model loads (tests; a changed WHISPER_MODEL does the same): the load
    finishes on its own, and the next caller loads again rather than use it, once."""
    may_finish = threading.Event()
    calls = whisper_loads_recorded(monkeypatch, lambda: may_finish.wait(timeout=60))
    with pytest.raises(TranscriptionUnavailable):
        with whisper_in_use(wait=0.05):
            pass
    transcriber_reset()
    may_finish.set()

    with whisper_in_use(wait=60) as first:
        pass
    with whisper_in_use(wait=60) as second:
        pass
    assert first is second
    assert calls == [str(whisper_model)] * 2


def test_english_only_models_ignore_the_language_setting(whisper_model, settings, speech):
    settings.WHISPER_LANGUAGE = "de"

    assert transcribe(speech, RATE).language == "en"


@pytest.mark.parametrize(("setting", "language"), [("German", "de"), ("FR", "fr")])
def test_multilingual_models_take_language_codes_and_names(
    whisper_model, settings, tiny_multilingual_whisper_path, speech, setting, language
):
    settings.WHISPER_MODEL = str(tiny_multilingual_whisper_path)
    settings.WHISPER_LANGUAGE = setting

    transcript = transcribe(speech, RATE)

    assert transcript.language == language
    assert_well_formed(transcript, speech.size / RATE)


def test_multilingual_models_detect_the_language(
    whisper_model, settings, tiny_multilingual_whisper_path, speech
):
    settings.WHISPER_MODEL = str(tiny_multilingual_whisper_path)
    settings.WHISPER_LANGUAGE = "auto"

    transcript = transcribe(speech, RATE)

    assert transcript.language in whisper.tokenizer.LANGUAGES
    assert_well_formed(transcript, speech.size / RATE)


def test_unknown_language_is_explained(
    whisper_model, settings, tiny_multilingual_whisper_path, speech
):
    settings.WHISPER_MODEL = str(tiny_multilingual_whisper_path)
    settings.WHISPER_LANGUAGE = "klingon"

    with pytest.raises(TranscriptionUnavailable, match="WHISPER_LANGUAGE='klingon'"):
        transcribe(speech, RATE)


def test_empty_audio_has_an_empty_transcript(whisper_model):
    assert transcribe(np.zeros(0, dtype=np.float32), RATE) == Transcript(
        text="", segments=[], language="en"
    )


def test_only_mono_audio_is_accepted():
    with pytest.raises(ValueError, match="mono"):
        _to_whisper_audio(np.zeros((2, RATE), dtype=np.float32), RATE)


def test_audio_is_bounded_to_ten_minutes():
    long = np.zeros(int((MAX_SECONDS + 60) * WHISPER_SAMPLE_RATE), dtype=np.float32)

    assert _to_whisper_audio(long, WHISPER_SAMPLE_RATE).size == MAX_SECONDS * WHISPER_SAMPLE_RATE


def test_segments_are_stripped_clamped_ordered_and_never_empty():
    raw = [
        {"start": 0.0, "end": 1.5, "text": " Hello there."},
        {"start": 1.5, "end": 1.5, "text": ""},
        {"start": 1.4, "end": 2.0, "text": "   "},
        {"start": 1.2, "end": 3.0, "text": " How are you?"},
        {"start": 3.0, "end": 30.0, "text": " Fine."},
        {"start": 31.0, "end": 32.0, "text": " Made up."},
    ]

    segments, text = _segments(raw, duration=4.0)

    assert segments == [
        TranscriptSegment(start=0.0, end=1.5, text="Hello there."),
        TranscriptSegment(start=1.5, end=3.0, text="How are you?"),
        TranscriptSegment(start=3.0, end=4.0, text="Fine."),
    ]
    assert text == "Hello there. How are you? Fine."
