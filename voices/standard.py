"""The standard voice names: OpenAI's, so that clients' voice pickers work unchanged."""

STANDARD_VOICES: tuple[str, ...] = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
DEFAULT_VOICE = "alloy"


def standard_voice_name(name: str) -> str | None:
    """The standard voice `name` denotes (case-insensitive), or None."""
    lowered = name.strip().lower()
    return lowered if lowered in STANDARD_VOICES else None
