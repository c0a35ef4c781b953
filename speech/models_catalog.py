"""Model names the API answers to, and the engine each one means."""

from speech.engines.registry import ENGINES, engine_default_name

# OpenAI's speech model names mean "the default engine".
DEFAULT_MODEL_ALIASES: tuple[str, ...] = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
# The original server's model name, and ours: always CSM, never a stand-in.
NAMED_MODELS: dict[str, str] = {"csm-1b": "csm"}


def model_ids() -> list[str]:
    return [*NAMED_MODELS, *DEFAULT_MODEL_ALIASES, *ENGINES]


def engine_name_for_model(model: str) -> str | None:
    """The engine a model name means, or None when no such model exists."""
    if model in DEFAULT_MODEL_ALIASES:
        return engine_default_name()
    if model in NAMED_MODELS:
        return NAMED_MODELS[model]
    if model in ENGINES:
        return model
    return None
