"""Model names the API answers to, and the engine each one means."""

from django.conf import settings

from speech.engines.registry import ENGINES

# OpenAI's speech model names, and the original server's, all mean "the default engine".
DEFAULT_MODEL_ALIASES: tuple[str, ...] = ("csm-1b", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")


def model_ids() -> list[str]:
    return [*DEFAULT_MODEL_ALIASES, *ENGINES]


def engine_name_for_model(model: str) -> str | None:
    """The engine a model name means, or None when no such model exists."""
    if model in DEFAULT_MODEL_ALIASES:
        return settings.DEFAULT_ENGINE
    if model in ENGINES:
        return model
    return None
