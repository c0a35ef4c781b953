"""Model names the API answers to, the engine each one means, and which of them can speak now."""

import datetime
import re

from django.conf import settings

from speech.engines.base import EngineState
from speech.engines.registry import AUTO, ENGINES, engine_default_name, engine_states
from speech.errors import UnknownModel

# OpenAI's speech model names mean "the default engine".
DEFAULT_MODEL_ALIASES: tuple[str, ...] = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
# The dated snapshots OpenAI's SDKs name, listed as OpenAI lists them; each means its base.
DATED_MODEL_ALIASES: dict[str, str] = {
    "tts-1-1106": "tts-1",
    "tts-1-hd-1106": "tts-1-hd",
    "gpt-4o-mini-tts-2025-03-20": "gpt-4o-mini-tts",
    "gpt-4o-mini-tts-2025-12-15": "gpt-4o-mini-tts",
}
# Later snapshots follow the same shape; any real date from the first one on is accepted, so
# a client pinned to a snapshot newer than this list still works. ASCII digits only.
_DATED_SNAPSHOT = re.compile(r"(gpt-4o-mini-tts)-([0-9]{4})-([0-9]{2})-([0-9]{2})")
_FIRST_SNAPSHOT = datetime.date(2025, 3, 20)
# The original server's model name, and ours: always CSM, never a stand-in.
NAMED_MODELS: dict[str, str] = {"csm-1b": "csm"}

# An engine can speak (or will, once loaded) in these states; "unavailable" cannot, and an
# engine this process has not started is unknown until a request names it.
_OFFERED_STATES = frozenset({str(EngineState.LOADING), str(EngineState.READY)})
# A caller's id echoed in a message is cut to this length.
_SHOWN_CHARS = 128


def model_ids() -> list[str]:
    """Every base model name, whether its engine can speak now or not."""
    return [*NAMED_MODELS, *DEFAULT_MODEL_ALIASES, *ENGINES]


def model_base(model: str) -> str | None:
    """The base name a model name means (a dated snapshot means its base), or None."""
    if model in DATED_MODEL_ALIASES:
        return DATED_MODEL_ALIASES[model]
    dated = _DATED_SNAPSHOT.fullmatch(model)
    if dated is not None:
        base, year, month, day = dated.groups()
        try:
            when = datetime.date(int(year), int(month), int(day))
        except ValueError:
            return None
        return base if when >= _FIRST_SNAPSHOT else None
    return model if model in model_ids() else None


def engine_name_for_model(model: str) -> str | None:
    """The engine a model name means, or None when no such model exists."""
    base = model_base(model)
    if base in DEFAULT_MODEL_ALIASES:
        return engine_default_name()
    if base in NAMED_MODELS:
        return NAMED_MODELS[base]
    if base in ENGINES:
        return base
    return None


def models_offered(*, dated: bool) -> list[str]:
    """The model names whose engine is loading or ready, in catalog order; with `dated`, each
    OpenAI name followed by its dated snapshots.

    Reads the engines' states only: a list never starts loading a model.
    """
    states = engine_states()
    offered = []
    for base in model_ids():
        if _unavailable_reason(base, states) is not None:
            continue
        offered.append(base)
        if dated:
            offered += [name for name, of in DATED_MODEL_ALIASES.items() if of == base]
    return offered


def model_check_offered(model: str) -> str:
    """`model`'s base name when it can speak now; UnknownModel saying why not otherwise.

    As the lists: a model that cannot speak is not offered, whatever the reason.
    """
    base = model_base(model)
    shown = model if len(model) <= _SHOWN_CHARS else f"{model[:_SHOWN_CHARS]}…"
    if base is None:
        raise UnknownModel(
            f"The model '{shown}' does not exist. See GET /v1/models for the models served here.",
            field="model",
        )
    reason = _unavailable_reason(base, engine_states())
    if reason is not None:
        raise UnknownModel(f"The model '{shown}' is not available: {reason}", field="model")
    return base


def _unavailable_reason(base: str, states: dict[str, dict[str, str]]) -> str | None:
    """Why the engine behind base name `base` cannot speak now, or None when it can."""
    engine = _engine_now(base, states)
    state = states[engine]
    if state["state"] in _OFFERED_STATES:
        return None
    if state["state"] == str(EngineState.UNAVAILABLE):
        return f"the {engine} engine is unavailable: {state['reason']}"
    return (
        f"the {engine} engine is not loaded in this server. A speech request for this model "
        "starts loading it."
    )


def _engine_now(base: str, states: dict[str, dict[str, str]]) -> str:
    """The engine `base` means, found without starting one (engine_default_name may start
    one)."""
    if base in NAMED_MODELS:
        return NAMED_MODELS[base]
    if base in ENGINES:
        return base
    if settings.DEFAULT_ENGINE != AUTO:
        return settings.DEFAULT_ENGINE
    # "auto", as engine_default_name decides it: the preferred engine (CSM, first in ENGINES)
    # while it loads or speaks, else the always-there one (last). A CSM not built yet (its
    # imports take seconds after start-up) does not hide the names while eSpeak NG speaks.
    for engine, state in states.items():
        if state["state"] in _OFFERED_STATES:
            return engine
    # None can speak: the engine whose reason the caller should read.
    for engine, state in states.items():
        if state["state"] != str(EngineState.UNAVAILABLE):
            return engine
    return list(ENGINES)[-1]
