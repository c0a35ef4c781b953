"""Speech's part of /readyz (core/health.py): ready once the default engine is loaded."""

from typing import Any

from speech.engines.registry import engine_default_name, engine_is_ready, engine_states
from speech.watermark import watermark_status


def speech_readiness() -> tuple[bool, dict[str, Any]]:
    default_engine = engine_default_name()
    # First: asking starts the default engine, whose state is then reported.
    ready = engine_is_ready(default_engine)
    details = {
        "default_engine": default_engine,
        "engines": engine_states(),
        # Reported, not required: without its weights speech goes out unmarked.
        "watermark": watermark_status(),
    }
    return ready, details
