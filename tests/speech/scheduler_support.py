"""Helpers for tests that drive the batching scheduler."""

import threading

from speech.engines.scheduler import FrameScheduler


def hold(scheduler: FrameScheduler) -> threading.Event:
    """Keep the model thread busy until the returned event is set (jobs queue up meanwhile)."""
    release, held = threading.Event(), threading.Event()

    def wait() -> None:
        held.set()
        release.wait(30)

    threading.Thread(target=scheduler.call, args=(wait,), daemon=True).start()
    assert held.wait(10)
    return release
