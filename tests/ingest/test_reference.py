"""choose_reference and reference_from_transcript, on eSpeak sentences with known noise."""

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.signal import resample_poly

from ingest.errors import IngestError
from ingest.reference import (
    FADE_SECONDS,
    JOIN_SILENCE_SECONDS,
    Reference,
    TranscriptSegment,
    choose_reference,
    reference_from_transcript,
)
from speech.engines.base import SynthesisParams, VoiceSpec
from speech.engines.registry import engine_get

RATE = 24000
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "A journey of a thousand miles begins with a single step.",
    "Every cloud has a silver lining, or so they say.",
    "Please call Stella and ask her to bring these things.",
    "The rain in Spain stays mainly in the plain.",
)
# Between segments, as in cleaned audio (pauses are cut down to a fraction of a second).
GAP_SECONDS = 0.15
FADE = round(FADE_SECONDS * RATE)
CLEAN = None


@dataclass
class Recording:
    samples: np.ndarray
    segments: list[TranscriptSegment]
    ranges: list[tuple[int, int]]  # each segment's samples

    def seconds(self, first: int, last: int) -> float:
        """The span from segment `first`'s start to segment `last`'s end."""
        return (self.ranges[last][1] - self.ranges[first][0]) / RATE


@pytest.fixture(scope="module")
def sentences() -> list[np.ndarray]:
    engine = engine_get("espeak")
    spec = VoiceSpec(name="alloy", standard="alloy")
    spoken = []
    for text in SENTENCES:
        native = np.concatenate(list(engine.synthesize([text], spec, SynthesisParams())))
        spoken.append(resample_poly(native.astype(np.float64), 160, 147))  # 22.05 → 24 kHz
    return spoken


def build(
    sentences: list[np.ndarray], snrs: list[float | None], *, clipped: frozenset[int] = frozenset()
) -> Recording:
    """The sentences in order, each with white noise at its SNR (None: clean) or clipped."""
    rng = np.random.default_rng(0)
    gap = np.zeros(round(GAP_SECONDS * RATE))
    parts, segments, ranges = [gap], [], []
    position = gap.size
    for index, (sentence, snr) in enumerate(zip(sentences, snrs, strict=True)):
        audio = sentence.copy()
        rms = float(np.sqrt(np.mean(audio**2)))
        if snr is not None:
            audio += rng.normal(0.0, rms / 10 ** (snr / 20), audio.size)
        if index in clipped:
            audio = np.clip(audio * 8.0, -0.5, 0.5)  # flat tops, as from an overdriven input
        start, end = position, position + audio.size
        segments.append(TranscriptSegment(start / RATE, end / RATE, SENTENCES[index]))
        ranges.append((start, end))
        parts += [audio, gap]
        position = end + gap.size
    return Recording(np.concatenate(parts).astype(np.float32), segments, ranges)


def assert_is_audio_of(reference: Reference, recording: Recording, first: int, last: int) -> None:
    """The reference is exactly segments first..last of the recording, as one window."""
    start, end = recording.ranges[first][0], recording.ranges[last][1]
    expected = recording.samples[start:end]
    assert reference.samples.size == expected.size
    np.testing.assert_allclose(reference.samples[FADE:-FADE], expected[FADE:-FADE], atol=1e-6)


def test_clean_segments_are_chosen_and_noisy_ones_left_out(sentences):
    # given: noisy, clean, clean, clean, noisy, clean, and room for all of them
    recording = build(sentences, [5.0, CLEAN, CLEAN, CLEAN, 10.0, CLEAN])

    # when
    reference = choose_reference(recording.samples, recording.segments, max_seconds=30.0)

    # then: the clean run 1-3 and the clean segment 5, joined by a short silence, in order
    expected = " ".join([SENTENCES[1], SENTENCES[2], SENTENCES[3], SENTENCES[5]])
    assert reference.text == expected
    seconds = recording.seconds(1, 3) + JOIN_SILENCE_SECONDS + recording.seconds(5, 5)
    assert reference.seconds == pytest.approx(seconds, abs=1 / RATE)
    join_start = recording.ranges[3][1] - recording.ranges[1][0]
    join = reference.samples[join_start : join_start + round(JOIN_SILENCE_SECONDS * RATE)]
    assert not np.any(join)


def test_a_contiguous_run_is_preferred_over_scattered_segments(sentences):
    # given: all clean, and room for about three sentences
    recording = build(sentences, [CLEAN] * 6)
    room = recording.seconds(2, 4) + 0.05

    # when
    reference = choose_reference(recording.samples, recording.segments, max_seconds=room)

    # then: three consecutive sentences as one stretch of the recording, pauses and all
    chosen = [i for i, text in enumerate(SENTENCES) if text in reference.text]
    assert len(chosen) == 3
    assert chosen == list(range(chosen[0], chosen[0] + 3))
    assert_is_audio_of(reference, recording, chosen[0], chosen[-1])
    assert reference.text == " ".join(SENTENCES[chosen[0] : chosen[-1] + 1])


@pytest.mark.parametrize("max_seconds", [3.5, 6.0, 9.0, 12.0])
def test_the_reference_never_exceeds_max_seconds(sentences, max_seconds):
    # given: clean and noisy segments
    recording = build(sentences, [CLEAN, 8.0, CLEAN, CLEAN, 8.0, CLEAN])

    # when
    reference = choose_reference(recording.samples, recording.segments, max_seconds=max_seconds)

    # then
    assert 0 < reference.seconds <= max_seconds
    assert reference.samples.size == round(reference.seconds * RATE)
    assert reference.samples.dtype == np.float32


def test_text_is_the_chosen_segments_in_chronological_order(sentences):
    # given: segments handed over out of order, with stray whitespace, the last ones noisy
    recording = build(sentences, [CLEAN, CLEAN, CLEAN, CLEAN, 5.0, 5.0])
    shuffled = [recording.segments[i] for i in (3, 0, 5, 2, 4, 1)]
    padded = [TranscriptSegment(s.start, s.end, f"  {s.text} ") for s in shuffled]

    # when
    reference = choose_reference(recording.samples, padded, max_seconds=60.0)

    # then
    assert reference.text == " ".join(SENTENCES[:4])
    assert_is_audio_of(reference, recording, 0, 3)


def test_clipped_segments_are_avoided(sentences):
    # given: the first three sentences clipped, the last three clean
    recording = build(sentences, [CLEAN] * 6, clipped=frozenset({0, 1, 2}))

    # when
    reference = choose_reference(recording.samples, recording.segments, max_seconds=60.0)

    # then
    assert reference.text == " ".join(SENTENCES[3:])
    assert_is_audio_of(reference, recording, 3, 5)


def test_segments_without_text_or_too_short_are_skipped(sentences):
    # given: a segment with no words, and a sliver of a segment, among clean ones
    recording = build(sentences[:3], [CLEAN] * 3)
    first, second, third = recording.segments
    segments = [
        first,
        TranscriptSegment(second.start, second.end, "   "),
        TranscriptSegment(third.start, third.start + 0.1, "A"),
    ]

    # when
    reference = choose_reference(recording.samples, segments, max_seconds=60.0)

    # then
    assert reference.text == SENTENCES[0]
    assert_is_audio_of(reference, recording, 0, 0)


def test_long_segments_are_left_out_when_shorter_ones_fit(sentences):
    # given: one segment spanning the first three sentences, then single sentences
    recording = build(sentences, [CLEAN] * 6)
    segments = [
        TranscriptSegment(
            recording.segments[0].start, recording.segments[2].end, " ".join(SENTENCES[:3])
        ),
        *recording.segments[3:],
    ]
    room = recording.seconds(0, 2) - 0.5

    # when
    reference = choose_reference(recording.samples, segments, max_seconds=room)

    # then: whole segments only, so the text matches the audio
    assert SENTENCES[0] not in reference.text
    assert reference.seconds <= room
    assert reference.text.startswith(SENTENCES[3])


def test_a_single_segment_longer_than_max_seconds_is_cut(sentences):
    # given: nothing but one long segment
    recording = build(sentences[:3], [CLEAN] * 3)
    whole = TranscriptSegment(0.0, recording.samples.size / RATE, " ".join(SENTENCES[:3]))

    # when
    reference = choose_reference(recording.samples, [whole], max_seconds=4.0)

    # then: its first four seconds, with its text
    assert reference.seconds == pytest.approx(4.0)
    assert reference.text == " ".join(SENTENCES[:3])


@pytest.mark.parametrize(
    "segments",
    [
        pytest.param([], id="no-segments"),
        pytest.param([TranscriptSegment(0.0, 2.0, "  ")], id="no-text"),
        pytest.param([TranscriptSegment(60.0, 65.0, "Hello.")], id="past-the-end"),
        pytest.param([TranscriptSegment(1.0, 1.2, "Hi.")], id="too-short"),
    ],
)
def test_nothing_usable_is_refused(sentences, segments):
    # given: a recording whose transcript offers nothing to use
    recording = build(sentences[:2], [CLEAN] * 2)

    # when
    with pytest.raises(IngestError) as caught:
        choose_reference(recording.samples, segments, max_seconds=20.0)

    # then
    assert caught.value.code == "no_usable_speech"


def test_a_segment_over_digital_silence_is_refused():
    # given: text over nothing but zeros
    samples = np.zeros(5 * RATE, dtype=np.float32)
    segments = [TranscriptSegment(0.5, 4.5, "Is anybody there?")]

    # when
    with pytest.raises(IngestError) as caught:
        choose_reference(samples, segments, max_seconds=20.0)

    # then
    assert caught.value.code == "no_usable_speech"


def test_a_given_transcript_takes_the_whole_recording(sentences):
    # given: cleaned audio and the caller's transcript
    samples = np.concatenate(sentences[:2]).astype(np.float32)
    text = f"  {SENTENCES[0]} {SENTENCES[1]}\n"

    # when
    reference = reference_from_transcript(samples, text, max_seconds=20.0)

    # then
    np.testing.assert_array_equal(reference.samples, samples)
    assert reference.text == f"{SENTENCES[0]} {SENTENCES[1]}"
    assert reference.seconds == pytest.approx(samples.size / RATE)


def test_a_given_transcript_with_too_much_audio_is_refused(sentences):
    # given: about 17 s of audio and a 10 s limit
    samples = np.concatenate(sentences).astype(np.float32)

    # when
    with pytest.raises(IngestError) as caught:
        reference_from_transcript(samples, " ".join(SENTENCES), max_seconds=10.0)

    # then: the caller learns the limit and the way around it
    assert caught.value.code == "transcript_audio_too_long"
    assert caught.value.param == "transcript"
    assert "at most 10 seconds" in caught.value.message
    assert "leave the transcript out" in caught.value.message


def test_an_empty_transcript_is_refused(sentences):
    # given
    samples = sentences[0].astype(np.float32)

    # when
    with pytest.raises(IngestError) as caught:
        reference_from_transcript(samples, " \n ", max_seconds=20.0)

    # then
    assert caught.value.code == "empty_transcript"
    assert caught.value.param == "transcript"
