"""A conversation's context is bounded before it is decoded: newest turn first, each under what
is left of CONVERSATION_CONTEXT_MAX_SECONDS, and only once the request holds its generation
slots. A spy on the decoder counts what was decoded; nothing is timed."""

import asyncio
import base64
import functools
from dataclasses import dataclass, field

import numpy as np
import pytest

from accounts.limits import generation_slot_acquire, generation_slot_release, limit_identity
from accounts.models import ApiKey
from speech import services
from speech.admission import speech_slots
from speech.audio.decode import AudioTooLong
from speech.audio.formats import SAMPLE_RATE
from speech.errors import InvalidInput
from tests.support.audio import encoded, tone

pytestmark = pytest.mark.django_db(transaction=True)

ONE_SECOND = {"seed": 1, "max_audio_length_ms": 1000}
# A turn's text names it (digits would be spelt out).
NAMES = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()


@dataclass
class DecodeSpy:
    """Every context decode: the cap it ran under and the seconds it returned (None: it ran
    past the cap and stopped there)."""

    calls: list[tuple[float, float | None]] = field(default_factory=list)

    @property
    def decoded_seconds(self) -> float:
        """An upper bound on what was decoded: a decode stopped at its cap cost at most that."""
        return sum(cap if seconds is None else seconds for cap, seconds in self.calls)


@pytest.fixture
def spy(monkeypatch) -> DecodeSpy:
    record = DecodeSpy()
    decode = services.decode_audio

    def spying(source, *, sample_rate: int, max_seconds: float) -> np.ndarray:
        try:
            samples = decode(source, sample_rate=sample_rate, max_seconds=max_seconds)
        except AudioTooLong:
            record.calls.append((max_seconds, None))
            raise
        record.calls.append((max_seconds, samples.size / sample_rate))
        return samples

    monkeypatch.setattr(services, "decode_audio", spying)
    return record


@functools.cache
def audio(seconds: float, fmt: str = "wav") -> bytes:
    return encoded(tone(seconds), fmt)


def turns(*seconds: float, fmt: str = "wav") -> list[dict]:
    """Context items as the serializer hands them over (audio already bytes), oldest first."""
    return [
        {"speaker": index % 2, "text": f"Turn {NAMES[index]}.", "audio": audio(length, fmt)}
        for index, length in enumerate(seconds)
    ]


def kept_texts(items: list[dict], budget: float) -> list[str]:
    return [turn.text for turn in services._context_turns(items, SAMPLE_RATE, budget)]


# --- what is decoded --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["wav", "flac", "opus", "mp3"])
def test_only_the_newest_turns_that_fit_the_budget_are_decoded(spy, fmt):
    # when twelve turns of two seconds meet a budget of seven
    kept = kept_texts(turns(*[2.0] * 12, fmt=fmt), 7.0)

    # then the newest three are kept, in their order, and one more decode found the fourth
    # too long for what was left: the other eight were never decoded
    assert kept == ["Turn juliet.", "Turn kilo.", "Turn lima."]
    assert len(spy.calls) == 4
    assert spy.calls[-1][1] is None
    assert spy.decoded_seconds <= 7.0 + 0.1


def test_each_decode_is_capped_by_what_is_left_of_the_budget(spy):
    kept_texts(turns(*[3.0] * 8), 10.0)

    left = 10.0
    for cap, seconds in spy.calls:
        assert cap <= left + 1e-9
        if seconds is not None:
            left -= seconds
    assert [cap for cap, _ in spy.calls] == pytest.approx([10.0, 7.0, 4.0, 1.0])


def test_a_turn_that_does_not_fit_ends_the_context_before_older_turns(spy):
    # given the newest turn fits, the one before it does not, and the oldest would
    kept = kept_texts(turns(1.0, 5.0, 2.0), 6.0)

    # then the engine's rule holds (the newest turns that fit, no gaps): the oldest is not
    # even decoded
    assert kept == ["Turn charlie."]
    assert len(spy.calls) == 2


def test_a_newest_turn_longer_than_the_budget_is_cut_off_at_the_budget(spy):
    assert kept_texts(turns(5.0), 3.0) == []
    assert spy.calls == [(3.0, None)]


def test_the_total_is_capped_by_the_setting(spy, settings, monkeypatch):
    # given the setting, read when a plan is made
    settings.CONVERSATION_CONTEXT_MAX_SECONDS = 4.0
    seen: list[float] = []
    context_turns = services._context_turns

    def recording(items, sample_rate, budget):
        seen.append(budget)
        return context_turns(items, sample_rate, budget)

    monkeypatch.setattr(services, "_context_turns", recording)

    # when a plan's context is decoded (the engine check is not what is tested here)
    monkeypatch.setattr(services, "_engine_for", lambda model: _ContextEngine())
    plan = asyncio.run(services.conversation_plan(data=_conversation(turns(*[1.5] * 6))))

    # then two turns of 1.5 s fit in 4 s, and the third was cut off at 1 s
    assert seen == [4.0]
    assert [turn.text for turn in plan.voice.context] == ["Turn echo.", "Turn foxtrot."]
    assert spy.calls[-1] == (pytest.approx(1.0), None)
    assert spy.decoded_seconds <= 4.0 + 0.1


def test_a_turn_longer_than_any_turn_may_be_is_still_refused(spy):
    with pytest.raises(InvalidInput) as caught:
        services._context_turns(
            turns(1.0, services.CONTEXT_MAX_AUDIO_SECONDS + 1), SAMPLE_RATE, 1000.0
        )
    assert caught.value.field == "context[1].audio"


def test_a_damaged_turn_within_the_budget_is_named(spy):
    items = turns(1.0, 1.0, 1.0)
    items[1]["audio"] = b"RIFF but not audio at all"
    with pytest.raises(InvalidInput) as caught:
        services._context_turns(items, SAMPLE_RATE, 100.0)
    assert caught.value.field == "context[1].audio"


# --- over HTTP --------------------------------------------------------------------------------


def test_a_conversation_of_many_long_turns_decodes_only_what_the_window_holds(
    api, csm_engine, spy, settings
):
    # given eight turns of 100 s of Opus (small on the wire, 100 s each once decoded) and the
    # default budget
    assert settings.CONVERSATION_CONTEXT_MAX_SECONDS == 160.0
    turn = _b64(audio(100.0, "opus"))
    context = [{"speaker": i % 2, "text": f"Turn {i}.", "audio": turn} for i in range(8)]

    # when
    response = api.post(
        "/v1/audio/conversation",
        json={"text": "And now?", "context": context, "response_format": "wav", **ONE_SECOND},
    )

    # then it answers after decoding the newest turn and the start of the next one only
    assert response.status_code == 200, response.text
    assert len(spy.calls) == 2
    assert spy.calls[1][1] is None
    assert spy.decoded_seconds <= 160.0 + 0.1


@pytest.mark.parametrize("refusal", ["server_busy", "concurrency_limit_exceeded"])
def test_a_conversation_refused_a_slot_decodes_nothing(
    api, csm_engine, spy, settings, alice, refusal
):
    # given the server's slots, or the key's own, all taken
    settings.SPEECH_MAX_INFLIGHT = 1
    settings.RATE_LIMIT_CONCURRENT = 1
    identity = limit_identity(user=alice, api_key=ApiKey.objects.get(owner=alice))
    if refusal == "server_busy":
        assert speech_slots.try_acquire()
    else:
        assert generation_slot_acquire(identity)
    try:
        # when alice sends a conversation with context
        response = api.post(
            "/v1/audio/conversation",
            json={"text": "Hi.", "context": _wire(turns(2.0, 2.0)), **ONE_SECOND},
        )
    finally:
        if refusal == "server_busy":
            speech_slots.release()
        else:
            generation_slot_release(identity)

    # then she is refused, and none of its audio was decoded
    assert response.status_code in {429, 503}, response.text
    assert response.json()["error"]["code"] == refusal
    assert spy.calls == []


def test_a_conversation_whose_context_is_refused_gives_its_slots_back(api, csm_engine, settings):
    settings.SPEECH_MAX_INFLIGHT = 1
    settings.RATE_LIMIT_CONCURRENT = 1
    bad = _wire(turns(1.0))
    bad[0]["audio"] = _b64(b"RIFF but not audio at all")
    for _ in range(2):
        response = api.post("/v1/audio/conversation", json={"text": "Hi.", "context": bad})
        assert response.status_code == 400, response.text
    assert speech_slots.inflight == 0

    response = api.post(
        "/v1/audio/conversation",
        json={"text": "Hi.", "context": _wire(turns(1.0)), "response_format": "wav", **ONE_SECOND},
    )
    assert response.status_code == 200, response.text


# --- helpers ----------------------------------------------------------------------------------


class _ContextEngine:
    """Just enough of an engine for a plan: takes context, counts no tokens."""

    name = "stand-in"

    class capabilities:
        context = True
        sample_rate = SAMPLE_RATE
        native_speed_range = None
        max_chunk_chars = 200

    @staticmethod
    def count_input_tokens(text: str) -> int:
        return len(text)


def _conversation(context: list[dict]) -> dict:
    return {
        "model": "csm-1b",
        "text": "And now?",
        "speaker_id": 0,
        "context": context,
        "response_format": "wav",
        "max_audio_length_ms": 1000,
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _wire(items: list[dict]) -> list[dict]:
    return [{**item, "audio": _b64(item["audio"])} for item in items]
