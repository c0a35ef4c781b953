"""Building an engine imports its libraries (seconds for CSM: torch, transformers), on the
preload thread while the server already answers. A request arriving meanwhile waits for the
build off the event loop: every other connection goes on being served."""

import asyncio
import threading

import pytest

from speech.engines import registry
from speech.errors import EngineUnavailable
from speech.services import speech_plan

# Bounds that only stop a test that would otherwise hang; nothing is timed.
WAIT = 10
building = threading.Event()
release = threading.Event()


def held_csm_build(references):
    """Stands in for CsmEngine's import and construction: held until the test releases it."""
    building.set()
    release.wait(WAIT)
    return registry.import_string("speech.engines.csm.engine.CsmEngine")(references=references)


@pytest.fixture
def csm_build_held(monkeypatch, settings):
    building.clear()
    release.clear()
    monkeypatch.setitem(registry.ENGINES, "csm", f"{__name__}.held_csm_build")
    settings.DEFAULT_ENGINE = "auto"
    yield
    release.set()


def test_a_request_waits_for_a_building_engine_off_the_event_loop(csm_build_held):
    # given the server started: eSpeak built, CSM's build under way on the preload thread
    registry.engine_preload_default()
    assert building.wait(WAIT)

    async def meanwhile() -> tuple[bool, str]:
        # when a request needs to know what tts-1 means now
        plan = asyncio.ensure_future(
            speech_plan(user=None, data=_request(model="tts-1", voice="alloy"))
        )
        # then the loop goes on turning while the build is held
        for _ in range(5):
            await asyncio.sleep(0.01)
        waited = not plan.done()
        release.set()
        try:
            return waited, (await plan).engine.name
        except EngineUnavailable as exc:
            return waited, exc.message

    waited, answer = asyncio.run(meanwhile())
    assert waited
    # and once built, the request is answered: CSM (no checkpoint here) still loading, or
    # already given up on, which makes tts-1 eSpeak
    assert answer in {"espeak", "The csm engine is still loading; retry shortly."}


def _request(**fields) -> dict:
    return {
        "input": "Hello there.",
        "response_format": "wav",
        "speed": 1.0,
        "instructions": "",
        **fields,
    }
