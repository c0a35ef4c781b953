"""Choose what a cloned voice keeps as its reference: audio and exactly what it says.

CSM is conditioned on (text, audio) pairs, so the reference is built from whole transcript
segments: the text is then exactly what the audio says. Among the segments, the clean ones
(by an SNR-like estimate, with a penalty for clipping) are preferred, and among those one
contiguous stretch, because prosody flows across sentence boundaries and a spliced reference
teaches the model pauses that were never there.
"""

import math
from dataclasses import dataclass

import numpy as np

from ingest.errors import IngestError
from speech.audio.formats import SAMPLE_RATE

# Segments shorter than this carry too little voice to score or to learn from.
MIN_SEGMENT_SECONDS = 0.4
# Windows that are not adjacent in the recording are joined by this much silence.
JOIN_SILENCE_SECONDS = 0.2
# Consecutive segments further apart than this are not one contiguous stretch (the
# transcriber skipped something between them: music, noise, an untranscribed word).
MAX_INNER_GAP_SECONDS = 1.0
# Each window fades in and out over this long: segment times cut mid-waveform.
FADE_SECONDS = 0.005

# Scoring: 20 ms frames; the quietest NOISE_QUANTILE of the segment's own frames (its pauses
# and closures) stand for its noise floor. Only its own: frames borrowed from a neighbour
# would let a quiet neighbour vouch for a noisy segment.
FRAME_SECONDS = 0.02
NOISE_QUANTILE = 0.1
# Past this, a segment is as clean as can be told apart; capping keeps digital silence in
# one segment's pauses from making it look infinitely better than another clean one.
SNR_CAP_DB = 60.0
# A segment counts as clean when it scores within CLEAN_MARGIN_DB of the best one, or at
# least GOOD_SNR_DB (then it is clean whatever the best one scores).
CLEAN_MARGIN_DB = 10.0
GOOD_SNR_DB = 30.0
# Clipping: samples within 2% of the segment's peak. Unclipped speech has a handful; clipped
# speech (flat tops, even after later gain changes) has many. 10 dB per 1% of samples.
CLIP_NEAR_PEAK = 0.98
CLIP_PENALTY_DB_PER_PERCENT = 10.0


@dataclass(frozen=True)
class TranscriptSegment:
    start: float  # seconds, relative to the audio given to the transcriber
    end: float
    text: str


@dataclass(frozen=True)
class Reference:
    samples: np.ndarray  # float32, mono
    text: str
    seconds: float


@dataclass(frozen=True)
class _Candidate:
    index: int  # position in the chronological segment list
    start: int  # samples
    end: int
    text: str
    score: float  # dB, higher is cleaner


def choose_reference(
    samples: np.ndarray,
    segments: list[TranscriptSegment],
    *,
    max_seconds: float,
    sample_rate: int = SAMPLE_RATE,
) -> Reference:
    """The cleanest speech, up to `max_seconds`, made of whole segments in chronological order.

    Raises IngestError "no_usable_speech" when no segment has both audio and text.
    """
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    audio = np.asarray(samples, dtype=np.float64)
    budget = math.floor(max_seconds * sample_rate)
    candidates = _candidates(audio, segments, sample_rate)
    fitting = [c for c in candidates if c.end - c.start <= budget]
    if fitting:
        chosen = _choose(_clean(fitting), budget, sample_rate)
        return _assemble(audio, chosen, sample_rate)
    if candidates:
        # Every segment is longer than the budget: keep the cleanest one's first max_seconds.
        # Its text then over-covers the audio (it goes on past the cut), which a model
        # conditioned on it may echo; still better than refusing a long monologue outright.
        best = max(candidates, key=lambda c: c.score)
        cut = _Candidate(best.index, best.start, best.start + budget, best.text, best.score)
        return _assemble(audio, [[cut]], sample_rate)
    raise IngestError(
        "No usable speech was found: the recording needs at least one clear, transcribed sentence.",
        code="no_usable_speech",
    )


def reference_from_transcript(
    samples: np.ndarray, text: str, *, max_seconds: float, sample_rate: int = SAMPLE_RATE
) -> Reference:
    """The whole (cleaned) recording with the caller's transcript, when it fits `max_seconds`.

    Without timestamps there is no way to know which part of the text a window of the audio
    says, so the recording cannot be cut: a longer one is refused.
    """
    text = text.strip()
    if not text:
        raise IngestError("The transcript is empty.", code="empty_transcript", param="transcript")
    audio = np.asarray(samples, dtype=np.float32)
    if audio.size == 0:
        raise IngestError("No usable speech was found.", code="no_usable_speech")
    seconds = audio.size / sample_rate
    if audio.size > math.floor(max_seconds * sample_rate):
        raise IngestError(
            f"With a transcript, the speech can be at most {max_seconds:g} seconds long "
            f"(this recording has {seconds:.1f} seconds of speech). Send at most "
            f"{max_seconds:g} seconds of audio with its transcript, or leave the transcript "
            "out to have the recording transcribed and its best part chosen.",
            code="transcript_audio_too_long",
            param="transcript",
        )
    return Reference(samples=audio.copy(), text=text, seconds=seconds)


# --- Candidates and scores -------------------------------------------------------------------


def _candidates(
    audio: np.ndarray, segments: list[TranscriptSegment], sample_rate: int
) -> list[_Candidate]:
    """Segments with text and enough audio, clamped into the recording, scored, in order."""
    minimum = round(MIN_SEGMENT_SECONDS * sample_rate)
    ordered = sorted(segments, key=lambda s: (s.start, s.end))
    candidates = []
    for index, segment in enumerate(ordered):
        text = segment.text.strip()
        start = min(max(round(segment.start * sample_rate), 0), audio.size)
        end = min(max(round(segment.end * sample_rate), start), audio.size)
        if not text or end - start < minimum:
            continue
        score = _score(audio, start, end, sample_rate)
        if score == -math.inf:
            continue  # digital silence under a transcript: nothing to learn from
        candidates.append(_Candidate(index, start, end, text, score))
    return candidates


def _score(audio: np.ndarray, start: int, end: int, sample_rate: int) -> float:
    """An SNR-like cleanliness in dB, less a clipping penalty."""
    frame = max(1, round(FRAME_SECONDS * sample_rate))
    segment = audio[start:end]
    count = max(1, segment.size // frame)  # segments are at least MIN_SEGMENT_SECONDS long
    frame = min(frame, segment.size)
    energies = np.sort(np.mean(segment[: count * frame].reshape(count, frame) ** 2, axis=1))
    noise = float(np.mean(energies[: max(1, round(count * NOISE_QUANTILE))]))
    signal = float(np.mean(segment**2))
    if signal <= 0.0:
        return -math.inf
    snr = SNR_CAP_DB if noise <= 0.0 else min(10 * math.log10(signal / noise), SNR_CAP_DB)
    return snr - _clipping_penalty(segment)


def _clipping_penalty(segment: np.ndarray) -> float:
    magnitude = np.abs(segment)
    peak = float(magnitude.max())
    if peak == 0.0:
        return 0.0
    near_peak = float(np.mean(magnitude >= CLIP_NEAR_PEAK * peak))
    return CLIP_PENALTY_DB_PER_PERCENT * near_peak * 100


def _clean(candidates: list[_Candidate]) -> list[_Candidate]:
    best = max(c.score for c in candidates)
    threshold = min(best - CLEAN_MARGIN_DB, GOOD_SNR_DB)
    return [c for c in candidates if c.score >= threshold]


# --- Choosing windows ------------------------------------------------------------------------


def _choose(clean: list[_Candidate], budget: int, sample_rate: int) -> list[list[_Candidate]]:
    """Windows of whole clean segments that fit `budget` samples, in chronological order.

    The longest contiguous run that fits goes first (the cleaner one on a tie); then, while
    room is left, the longest run that fits in what remains, after a short silence.
    """
    join = round(JOIN_SILENCE_SECONDS * sample_rate)
    max_gap = round(MAX_INNER_GAP_SECONDS * sample_rate)
    windows: list[list[_Candidate]] = []
    remaining = list(clean)
    room = budget
    while remaining:
        run = _longest_run(remaining, room, max_gap)
        if not run:
            break
        windows.append(run)
        taken = {c.index for c in run}
        remaining = [c for c in remaining if c.index not in taken]
        room -= _span(run) + join
    windows.sort(key=lambda run: run[0].index)
    return _merge_neighbours(windows, budget, join, max_gap)


def _merge_neighbours(
    windows: list[list[_Candidate]], budget: int, join: int, max_gap: int
) -> list[list[_Candidate]]:
    """Windows that meet in the recording become one (their natural pause instead of the
    silence), where the real pause still fits the budget."""
    total = sum(_span(w) for w in windows) + join * (len(windows) - 1)
    merged: list[list[_Candidate]] = []
    for window in windows:
        if merged:
            previous = merged[-1][-1]
            gap = window[0].start - previous.end
            follows = window[0].index == previous.index + 1 and gap <= max_gap
            if follows and total - join + gap <= budget:
                total += gap - join
                merged[-1] = merged[-1] + window
                continue
        merged.append(window)
    return merged


def _longest_run(candidates: list[_Candidate], room: int, max_gap: int) -> list[_Candidate]:
    """The longest run of consecutive segments spanning at most `room` samples."""
    best: list[_Candidate] = []
    best_key = (0, -math.inf)
    for block in _contiguous_blocks(candidates, max_gap):
        # A sliding window over the block: spans only grow as the run extends.
        first = 0
        for last in range(len(block)):
            while first <= last and block[last].end - block[first].start > room:
                first += 1
            if first > last:
                continue
            run = block[first : last + 1]
            key = (_span(run), _mean_score(run))
            if key > best_key:
                best, best_key = run, key
    return best


def _contiguous_blocks(candidates: list[_Candidate], max_gap: int) -> list[list[_Candidate]]:
    """Maximal runs of candidates that follow each other in the transcript and the audio."""
    blocks: list[list[_Candidate]] = []
    for candidate in candidates:
        previous = blocks[-1][-1] if blocks else None
        if (
            previous is not None
            and candidate.index == previous.index + 1
            and candidate.start - previous.end <= max_gap
        ):
            blocks[-1].append(candidate)
        else:
            blocks.append([candidate])
    return blocks


def _span(run: list[_Candidate]) -> int:
    return run[-1].end - run[0].start


def _mean_score(run: list[_Candidate]) -> float:
    weights = [c.end - c.start for c in run]
    return sum(c.score * w for c, w in zip(run, weights, strict=True)) / sum(weights)


# --- Assembling ------------------------------------------------------------------------------


def _assemble(audio: np.ndarray, windows: list[list[_Candidate]], sample_rate: int) -> Reference:
    """The windows' audio joined by short silences, and their segments' text in order."""
    join = np.zeros(round(JOIN_SILENCE_SECONDS * sample_rate))
    pieces: list[np.ndarray] = []
    for window in windows:
        if pieces:
            pieces.append(join)
        piece = audio[window[0].start : window[-1].end].copy()
        _fade(piece, round(FADE_SECONDS * sample_rate))
        pieces.append(piece)
    joined = np.concatenate(pieces).astype(np.float32)
    text = " ".join(c.text for window in windows for c in window).strip()
    return Reference(samples=joined, text=text, seconds=joined.size / sample_rate)


def _fade(piece: np.ndarray, length: int) -> None:
    length = min(length, piece.size // 2)
    if length == 0:
        return
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, length))
    piece[:length] *= ramp
    piece[-length:] *= ramp[::-1]
