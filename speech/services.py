"""Turning a validated speech request into a plan an engine can run."""

from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from speech.audio.decode import AudioDecodeError, AudioTooLong, decode_audio
from speech.audio.formats import FORMATS, AudioFormat
from speech.engines.base import (
    ContextTurn,
    Engine,
    EngineNotReady,
    EngineState,
    SynthesisParams,
    VoiceSpec,
)
from speech.engines.registry import engine_get, engines_all_built
from speech.errors import EngineUnavailable, InvalidInput, SpeechErrorCode, UnknownModel
from speech.models_catalog import engine_name_for_model
from speech.text import chunk_text, normalise_text
from speech.verbalise import verbalise
from voices.selectors import voice_resolve
from voices.standard import STANDARD_VOICES, standard_voice_name

# Seconds to suggest before retrying while an engine loads.
_LOADING_RETRY_AFTER = 10
# Longest audio of one conversation context turn.
CONTEXT_MAX_AUDIO_SECONDS = 120.0


@dataclass(frozen=True)
class SpeechPlan:
    engine: Engine
    chunks: list[str]
    voice: VoiceSpec
    params: SynthesisParams
    # The part of the requested speed the engine cannot render natively: time-stretched after.
    stretch: float
    audio_format: AudioFormat
    # Cap on generated audio, in engine samples.
    max_samples: int
    input_tokens: int
    # The request's input as sent, for usage accounting.
    input_characters: int


async def speech_plan(*, user: AbstractBaseUser | None, data: dict[str, Any]) -> SpeechPlan:
    """Resolve model, voice and text of a validated request; raise SpeechError for what is wrong.

    Async because only a stored voice needs the database: a standard voice costs no thread hop.
    """
    engine = await _engine_for_request(data["model"])
    voice = await _voice_for(user, data["voice"], engine)
    return _plan(engine, voice, data["input"], "input", data, owner=_owner(user))


async def conversation_plan(
    *, data: dict[str, Any], user: AbstractBaseUser | None = None
) -> SpeechPlan:
    """The next turn of a conversation: `text` spoken by `speaker_id` after the context turns."""
    engine = await _engine_for_request(data["model"])
    if not engine.capabilities.context:
        raise InvalidInput(
            f"The '{engine.name}' engine cannot take conversation context; use model 'csm-1b'.",
            field="model",
            code=SpeechErrorCode.MODEL_NOT_SUPPORTED,
        )
    # Decoding is CPU work on untrusted data: off the event loop.
    turns = await sync_to_async(_context_turns, thread_sensitive=False)(
        data["context"], engine.capabilities.sample_rate, settings.CONVERSATION_CONTEXT_MAX_SECONDS
    )
    voice = VoiceSpec(
        name=f"speaker {data['speaker_id']}", speaker_id=data["speaker_id"], context=turns
    )
    return _plan(engine, voice, data["text"], "text", {**data, "speed": 1.0}, owner=_owner(user))


def _owner(user: AbstractBaseUser | None) -> str:
    """Whom a request is for, as engines share their capacity between callers."""
    return str(user.pk) if user is not None and user.is_authenticated else ""


def _context_turns(
    items: list[dict[str, Any]], sample_rate: int, budget_seconds: float
) -> tuple[ContextTurn, ...]:
    """The newest turns whose audio fits `budget_seconds` together, oldest first.

    An engine keeps the newest whole turns that fit its window and drops every older one, so
    turns are decoded newest first, each under what is left of the budget, and the first that
    does not fit ends the context: no turn is decoded past the budget, and older ones not at
    all. A turn longer than CONTEXT_MAX_AUDIO_SECONDS itself is the caller's error.
    """
    turns: list[ContextTurn] = []
    remaining = budget_seconds
    for index in reversed(range(len(items))):
        item = items[index]
        limit = min(CONTEXT_MAX_AUDIO_SECONDS, remaining)
        if limit <= 0:
            break
        try:
            samples = decode_audio(item["audio"], sample_rate=sample_rate, max_seconds=limit)
        except AudioTooLong as exc:
            if limit < CONTEXT_MAX_AUDIO_SECONDS:
                break  # it does not fit beside the newer turns: it and older ones go
            raise _invalid_turn(index, exc) from exc
        except AudioDecodeError as exc:
            raise _invalid_turn(index, exc) from exc
        remaining -= samples.size / sample_rate
        text = verbalise(normalise_text(item["text"]))
        turns.append(ContextTurn(speaker=item["speaker"], text=text, samples=samples))
    turns.reverse()
    return tuple(turns)


def _invalid_turn(index: int, exc: AudioDecodeError) -> InvalidInput:
    return InvalidInput(
        f"Context item {index}: {exc}",
        field=f"context[{index}].audio",
        code=SpeechErrorCode.INVALID_AUDIO,
    )


def _plan(
    engine: Engine,
    voice: VoiceSpec,
    raw_text: str,
    text_field: str,
    data: dict[str, Any],
    *,
    owner: str,
) -> SpeechPlan:
    text = verbalise(normalise_text(raw_text))
    if not text:
        raise InvalidInput(
            f"The {text_field} contains nothing that can be spoken.",
            field=text_field,
            code=SpeechErrorCode.EMPTY_TEXT,
        )
    capabilities = engine.capabilities
    native_speed, stretch = _split_speed(data["speed"], capabilities.native_speed_range)
    max_ms = settings.SPEECH_MAX_AUDIO_SECONDS * 1000
    if data.get("max_audio_length_ms") is not None:
        max_ms = min(max_ms, data["max_audio_length_ms"])
    params = SynthesisParams(
        speed=native_speed,
        instructions=data.get("instructions") or None,
        temperature=data.get("temperature"),
        topk=data.get("topk"),
        seed=data.get("seed"),
        voice_consistency=data.get("voice_consistency"),
        max_audio_ms=int(max_ms),
        owner=owner,
    )
    return SpeechPlan(
        engine=engine,
        chunks=chunk_text(text, capabilities.max_chunk_chars),
        voice=voice,
        params=params,
        stretch=stretch,
        audio_format=FORMATS[data["response_format"]],
        # The cap is on the audio delivered: stretching by `stretch` shortens it that much.
        max_samples=int(max_ms * capabilities.sample_rate / 1000 * stretch),
        input_tokens=engine.count_input_tokens(text),
        input_characters=len(raw_text),
    )


async def _engine_for_request(model: str) -> Engine:
    """_engine_for, from the event loop: on a thread while some engine is not built yet, since
    building one imports its libraries (seconds for CSM, maybe on the preload thread already,
    holding the registry's lock) and every other connection would wait meanwhile."""
    if engines_all_built():
        return _engine_for(model)
    return await sync_to_async(_engine_for, thread_sensitive=False)(model)


def _engine_for(model: str) -> Engine:
    name = engine_name_for_model(model)
    if name is None:
        raise UnknownModel(
            f"The model '{model}' does not exist. See GET /v1/models for the models served here.",
            field="model",
        )
    engine = engine_get(name)
    try:
        engine.ensure_ready()
    except EngineNotReady as exc:
        loading = exc.state is EngineState.LOADING
        raise EngineUnavailable(
            exc.message, loading=loading, retry_after=_LOADING_RETRY_AFTER
        ) from exc
    return engine


async def _voice_for(user: AbstractBaseUser | None, requested: str, engine: Engine) -> VoiceSpec:
    standard = standard_voice_name(requested)
    if standard is not None:
        return VoiceSpec(name=standard, standard=standard)
    voice = await sync_to_async(voice_resolve)(user=user, name_or_id=requested)
    if voice is None or not voice.reference_audio:
        raise InvalidInput(
            f"Voice '{requested}' not found. Use one of {', '.join(STANDARD_VOICES)}, "
            "or a voice listed by GET /v1/audio/voices.",
            field="voice",
            code=SpeechErrorCode.VOICE_NOT_FOUND,
        )
    if not engine.capabilities.cloning:
        raise InvalidInput(
            f"Voice '{requested}' is a cloned voice, which the '{engine.name}' engine cannot "
            "speak. Use a model served by an engine that clones voices.",
            field="voice",
            code=SpeechErrorCode.VOICE_NOT_SUPPORTED,
        )
    return VoiceSpec(
        name=voice.name,
        reference_audio=voice.reference_audio.name,
        reference_text=voice.reference_text,
        speaker_id=voice.speaker_id,
        voice_id=str(voice.pk),
    )


def _split_speed(speed: float, native_range: tuple[float, float] | None) -> tuple[float, float]:
    """(speed the engine renders itself, remaining factor to time-stretch afterwards)."""
    if native_range is None:
        return 1.0, speed
    low, high = native_range
    native = min(max(speed, low), high)
    return native, speed / native
