"""Waiting for an engine that loads in the background."""

import time

from speech.engines.base import Engine, EngineState


def wait_while_loading(engine: Engine, seconds: float = 60) -> Engine:
    """Return `engine` once it is no longer loading, or after `seconds` (a hang guard: the
    caller asserts the state it expects)."""
    deadline = time.monotonic() + seconds
    while engine.state is EngineState.LOADING and time.monotonic() < deadline:
        time.sleep(0.02)
    return engine
