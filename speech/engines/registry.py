"""Engine name → dotted path, imported and built on first use, one instance per process.

Nothing is built at import time: importing this module costs nothing, so management commands
and tests that never speak never load a model.
"""

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from speech.engines.base import Engine, EngineState

ENGINES: dict[str, str] = {
    "espeak": "speech.engines.espeak.EspeakEngine",
}

_instances: dict[str, Engine] = {}
_instances_lock = threading.Lock()


class UnknownEngine(LookupError):
    pass


def engine_get(name: str) -> Engine:
    """The process's instance of engine `name`, created (and set loading) on first use."""
    engine = _instances.get(name)
    if engine is not None:
        return engine
    if name not in ENGINES:
        raise UnknownEngine(name)
    with _instances_lock:
        engine = _instances.get(name)
        if engine is None:
            engine = import_string(ENGINES[name])()
            _instances[name] = engine
            _start_loading(engine)
    return engine


def _start_loading(engine: Engine) -> None:
    if engine.loads_in_background:
        threading.Thread(target=engine.load, name=f"load-{engine.name}", daemon=True).start()
    else:
        engine.load()


def engine_default_name() -> str:
    return settings.DEFAULT_ENGINE


def engine_preload_default() -> None:
    engine_get(engine_default_name())


def engine_states() -> dict[str, dict[str, str]]:
    """State of every engine this process has started (others are simply not loaded yet)."""
    states = {}
    for name in ENGINES:
        engine = _instances.get(name)
        if engine is None:
            states[name] = {"state": "not_loaded", "reason": ""}
        else:
            states[name] = {"state": str(engine.state), "reason": engine.reason}
    return states


def engine_is_ready(name: str) -> bool:
    engine = _instances.get(name)
    return engine is not None and engine.state is EngineState.READY
