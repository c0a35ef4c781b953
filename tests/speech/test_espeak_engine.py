"""The eSpeak NG engine: every standard voice, voice errors, speed, thread safety, early close.

eSpeak's output for the same text and voice varies by a few samples from call to call (its
wave generator keeps state between utterances), so comparisons between two syntheses use
length and loudness-envelope tolerances rather than exact equality.
"""

import threading

import numpy as np
import pytest

from speech.engines.base import EngineError, EngineState, SynthesisParams, VoiceSpec
from speech.engines.espeak import VOICES, EspeakEngine, EspeakVoice, _EspeakLibrary, _get_library
from voices.standard import STANDARD_VOICES

RATE = 22050
TEXT = "The quick brown fox jumps over the lazy dog while we wait."


@pytest.fixture(scope="module")
def engine() -> EspeakEngine:
    engine = EspeakEngine()
    engine.load()
    assert engine.state is EngineState.READY, engine.reason
    return engine


def standard(name: str) -> VoiceSpec:
    return VoiceSpec(name=name, standard=name)


def speak(
    engine: EspeakEngine, text: str, voice: str = "alloy", params: SynthesisParams | None = None
) -> np.ndarray:
    return np.concatenate(
        list(engine.synthesize([text], standard(voice), params or SynthesisParams()))
    )


def fundamental_frequency(samples: np.ndarray, rate: int = RATE) -> float:
    """Median pitch over the voiced 46 ms frames, by autocorrelation."""
    frame = 1024
    estimates = []
    for start in range(0, samples.size - frame, frame // 2):
        segment = samples[start : start + frame].astype(np.float64)
        if np.sqrt(np.mean(segment**2)) < 0.05:
            continue
        segment -= segment.mean()
        correlation = np.correlate(segment, segment, "full")[frame - 1 :]
        low, high = rate // 500, rate // 60
        lag = low + int(np.argmax(correlation[low:high]))
        if correlation[lag] > 0.3 * correlation[0]:
            estimates.append(rate / lag)
    assert len(estimates) >= 10, "too few voiced frames to estimate the pitch"
    return float(np.median(estimates))


def envelope(samples: np.ndarray, hop: int = 220) -> np.ndarray:
    frames = samples.size // hop
    return np.sqrt((samples[: frames * hop].reshape(frames, hop).astype(np.float64) ** 2).mean(1))


def assert_same_speech(expected: np.ndarray, actual: np.ndarray) -> None:
    """Same text in the same voice: equal length within 2 %, the same loudness contour."""
    assert abs(actual.size - expected.size) <= 0.02 * expected.size
    a, b = envelope(expected), envelope(actual)
    n = min(a.size, b.size)
    assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.9


def test_it_loads_and_runs_at_22050_hz(engine):
    assert engine.capabilities.sample_rate == RATE
    assert _get_library().sample_rate == RATE


def test_every_standard_voice_has_a_profile():
    assert set(VOICES) == set(STANDARD_VOICES)


def test_every_profile_is_distinct():
    profiles = list(VOICES.values())

    assert len(set(profiles)) == len(profiles)
    assert all(0 <= p.pitch <= 100 and 0 <= p.pitch_range <= 100 for p in profiles)


@pytest.mark.parametrize("voice", STANDARD_VOICES)
def test_every_standard_voice_speaks(engine, voice):
    chunks = list(
        engine.synthesize(["Hello there, this is a test."], standard(voice), SynthesisParams())
    )

    assert len(chunks) == 1
    audio = chunks[0]
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    # at least half a second of speech, not silence, within full scale
    assert audio.size > RATE // 2
    assert np.isfinite(audio).all()
    assert np.abs(audio).max() <= 1.0
    assert np.abs(audio).max() > 0.1
    assert np.sqrt(np.mean(audio**2)) > 0.01


@pytest.mark.parametrize(
    ("higher", "lower"), [("alloy", "onyx"), ("shimmer", "echo"), ("nova", "cedar")]
)
def test_female_and_male_voices_differ_in_pitch(engine, higher, lower):
    high = fundamental_frequency(speak(engine, TEXT, higher))
    low = fundamental_frequency(speak(engine, TEXT, lower))

    assert high > 1.5 * low


def test_one_chunk_of_audio_per_text_chunk_in_order(engine):
    short, long = "Yes.", "This sentence is a good deal longer than the first one."

    chunks = list(engine.synthesize([short, long, short], standard("alloy"), SynthesisParams()))

    assert len(chunks) == 3
    assert chunks[0].size < chunks[1].size
    assert chunks[2].size < chunks[1].size
    assert_same_speech(chunks[0], chunks[2])


def test_an_unknown_espeak_voice_raises_instead_of_keeping_the_previous_one(engine):
    library = _get_library()
    with _EspeakLibrary.lock:
        # given a valid voice was set by a previous utterance
        library.speak("Hello.", VOICES["onyx"], 175)

        # when a profile names a voice eSpeak does not have
        with pytest.raises(EngineError) as error:
            library.speak("Hello.", EspeakVoice("nonexistent-voice", 50, 50), 175)

    assert "nonexistent-voice" in error.value.message
    assert error.value.retryable is False


def test_a_bad_profile_fails_the_request_and_the_engine_recovers(engine, monkeypatch):
    monkeypatch.setitem(VOICES, "alloy", EspeakVoice("nonexistent-voice", 50, 50))

    with pytest.raises(EngineError):
        speak(engine, "Hello.", "alloy")

    # other voices still speak afterwards
    assert np.abs(speak(engine, "Hello.", "onyx")).max() > 0.1


def test_a_cloned_voice_is_refused(engine):
    voice = VoiceSpec(name="my-clone", reference_audio="voices/my-clone.wav", reference_text="Hi.")

    with pytest.raises(EngineError) as error:
        list(engine.synthesize(["Hello."], voice, SynthesisParams()))

    assert "my-clone" in error.value.message
    assert error.value.retryable is False


def test_a_voice_that_is_not_standard_is_refused(engine):
    with pytest.raises(EngineError):
        list(engine.synthesize(["Hello."], VoiceSpec(name="nobody"), SynthesisParams()))
    with pytest.raises(EngineError):
        list(
            engine.synthesize(["Hello."], VoiceSpec(name="x", standard="nobody"), SynthesisParams())
        )


def test_faster_native_speed_gives_shorter_audio(engine):
    normal = speak(engine, TEXT, params=SynthesisParams(speed=1.0))
    fast = speak(engine, TEXT, params=SynthesisParams(speed=2.0))
    slow = speak(engine, TEXT, params=SynthesisParams(speed=0.5))

    assert fast.size < 0.75 * normal.size
    assert slow.size > 1.25 * normal.size


def test_speed_beyond_espeaks_range_is_clamped(engine):
    # native_speed_range is eSpeak's own limit; anything past it is the limit
    low, high = engine.capabilities.native_speed_range
    assert low < 1.0 < high

    at_limit = speak(engine, TEXT, params=SynthesisParams(speed=high))
    beyond = speak(engine, TEXT, params=SynthesisParams(speed=high * 3))

    assert_same_speech(at_limit, beyond)


def test_concurrent_synthesis_matches_serial_synthesis(engine):
    # given four requests, each a different voice and several chunks of different lengths
    jobs = [
        ("alloy", ["One small step.", "Then another one, and more.", "Stop."]),
        ("onyx", ["A rather longer sentence that the low voice takes a while to say.", "Yes."]),
        ("sage", ["Numbers: one, two, three, four, five.", "Six, seven.", "Eight, nine, ten."]),
        ("nova", ["Short.", "A sentence of medium length.", "The longest one comes last here."]),
    ]

    def run(voice: str, chunks: list[str]) -> list[np.ndarray]:
        return list(engine.synthesize(chunks, standard(voice), SynthesisParams()))

    serial = [run(voice, chunks) for voice, chunks in jobs]

    # when the same four requests run at once, twice over
    results: dict[tuple[int, int], list[np.ndarray]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(round_: int, index: int) -> None:
        try:
            start.wait()
            results[round_, index] = run(*jobs[index])
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(round_, index))
        for round_ in range(2)
        for index in range(len(jobs))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then every chunk of every request is the speech serial synthesis gave for it
    assert errors == []
    assert len(results) == 8
    for (_, index), chunks in results.items():
        assert len(chunks) == len(serial[index])
        for expected, actual in zip(serial[index], chunks, strict=True):
            assert_same_speech(expected, actual)


def test_the_generator_can_be_closed_early(engine, monkeypatch):
    calls: list[str] = []
    original = _EspeakLibrary.speak

    def counting_speak(self, text, voice, words_per_minute):
        calls.append(text)
        return original(self, text, voice, words_per_minute)

    monkeypatch.setattr(_EspeakLibrary, "speak", counting_speak)
    generator = engine.synthesize(
        ["First.", "Second.", "Third."], standard("echo"), SynthesisParams()
    )

    # when the client goes away after the first chunk
    first = next(generator)
    generator.close()

    # then no more chunks were spoken, the library lock is free, and the engine still works
    assert first.size > 0
    assert calls == ["First."]
    assert _EspeakLibrary.lock.acquire(blocking=False)
    _EspeakLibrary.lock.release()
    assert np.abs(speak(engine, "Still here.", "echo")).max() > 0.1


def test_an_engine_that_is_not_loaded_refuses_to_speak():
    engine = EspeakEngine()

    with pytest.raises(EngineError) as error:
        list(engine.synthesize(["Hello."], standard("alloy"), SynthesisParams()))

    assert error.value.retryable is True
