"""Speech streams held open by a test: each started, read by a thread of its own as the audio
comes (as a real player does), until the test closes it."""

import contextlib
import threading

import httpx

SPEECH = {"model": "tts-1", "input": "Hi.", "response_format": "pcm"}


class HeldStreams:
    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._stack = contextlib.ExitStack()

    def open(self, key: str, route: str = "/v1/audio/speech") -> httpx.Response:
        """The answer; a 200 stays open (holding its slots) until `close`."""
        stack = contextlib.ExitStack()
        client = stack.enter_context(httpx.Client(base_url=self._base_url, timeout=60))
        response = stack.enter_context(
            client.stream("POST", route, json=SPEECH, headers={"Authorization": f"Bearer {key}"})
        )
        if response.status_code != 200:
            response.read()
            stack.close()
            return response
        chunks = response.iter_raw()
        assert next(chunks)
        threading.Thread(target=_drain, args=(chunks,), daemon=True).start()
        self._stack.push(stack)
        return response

    def close(self) -> None:
        self._stack.close()


def _drain(chunks) -> None:
    with contextlib.suppress(httpx.HTTPError, ValueError, OSError):
        for _ in chunks:
            pass
