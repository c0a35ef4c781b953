"""Engine name → dotted path, imported and built on first use, one instance per process.

Nothing is built at import time: importing this module costs nothing, so management commands
and tests that never speak never load a model.

Each engine is built with the process's reference provider (stored voices' references), which
whoever stores voices registers at start-up with `engines_use_references`: the engine layer
itself knows no database.
"""

import threading
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from speech.engines.base import Engine, EngineState
from speech.engines.references import ReferenceProvider, StoredReference

ENGINES: dict[str, str] = {
    "csm": "speech.engines.csm.engine.CsmEngine",
    "espeak": "speech.engines.espeak.EspeakEngine",
}
# DEFAULT_ENGINE=auto: the generative engine once it is ready, the always-there one when it
# cannot load.
AUTO = "auto"
_AUTO_PREFERRED = "csm"
_AUTO_FALLBACK = "espeak"

_instances: dict[str, Engine] = {}
_instances_lock = threading.Lock()
_references: ReferenceProvider | None = None


class UnknownEngine(LookupError):
    pass


def engines_use_references(provider: ReferenceProvider) -> None:
    """Build every engine from now on with `provider` (the speech app's, set when it is ready)."""
    global _references
    _references = provider


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
            engine = import_string(ENGINES[name])(references=_references)
            _instances[name] = engine
            _start_loading(engine)
    return engine


def engines_all_built() -> bool:
    """Whether every engine is built, so that engine_get returns at once for any name.

    Until then a call may import an engine's libraries (seconds for CSM) or wait for the preload
    thread that is doing so: async callers make it off the event loop.
    """
    return all(name in _instances for name in ENGINES)


def _start_loading(engine: Engine) -> None:
    if engine.loads_in_background:
        threading.Thread(target=engine.load, name=f"load-{engine.name}", daemon=True).start()
    else:
        engine.load()


def engine_default_name() -> str:
    """The engine OpenAI's model names mean now (under "auto" this changes once CSM loads)."""
    if settings.DEFAULT_ENGINE != AUTO:
        return settings.DEFAULT_ENGINE
    preferred = engine_get(_AUTO_PREFERRED)
    if preferred.state is EngineState.UNAVAILABLE:
        return _AUTO_FALLBACK
    return _AUTO_PREFERRED


def engine_preload_default() -> None:
    """Start loading what the default may need, so the first request does not wait for it.

    The model engine is built on a thread of its own: importing it (torch, transformers) takes
    seconds, and the server starts answering meanwhile (a request that needs it waits for it).
    """
    auto = settings.DEFAULT_ENGINE == AUTO
    for name in [_AUTO_FALLBACK, _AUTO_PREFERRED] if auto else [settings.DEFAULT_ENGINE]:
        if name == _AUTO_PREFERRED:
            threading.Thread(target=engine_get, args=(name,), name="build-csm", daemon=True).start()
        else:
            engine_get(name)


def engines_reference_created(reference: StoredReference) -> None:
    """Tell the engines this process has loaded that a voice was created with `reference`."""
    for engine in list(_instances.values()):
        if engine.state is EngineState.READY:
            engine.reference_created(reference)


def engines_reset() -> None:
    """Forget every engine instance, so the next use loads afresh with the current settings.

    For tests and management commands that change the model settings within one process.
    """
    with _instances_lock:
        for engine in _instances.values():
            engine.close()
        _instances.clear()


def engine_states() -> dict[str, dict[str, Any]]:
    """State of every engine this process has started (others are simply not loaded yet), with
    how each runs where it says (`runtime`)."""
    states: dict[str, dict[str, Any]] = {}
    for name in ENGINES:
        engine = _instances.get(name)
        if engine is None:
            states[name] = {"state": "not_loaded", "reason": ""}
            continue
        states[name] = {"state": str(engine.state), "reason": engine.reason}
        runtime = engine.runtime_details()
        if runtime:
            states[name]["runtime"] = runtime
    return states


def engine_is_ready(name: str) -> bool:
    """Whether engine `name` is ready; asking starts it loading if nothing has yet."""
    return engine_get(name).state is EngineState.READY
