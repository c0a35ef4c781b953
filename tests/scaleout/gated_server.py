"""A real server (`python gated_server.py --host H --port P` is `manage.py serve`) whose eSpeak NG
engine a test holds with files, so that it knows where the server is:

- LB_LOAD_GATE: while this file exists, the engine stays loading (on a background thread, as
  CSM-1B loads), so /readyz answers 503 "not ready";
- LB_SPEECH_GATE: while this file exists, every speech stream goes on after its text, with a
  trickle of silence, so it is still being made while the test looks at what has arrived.

And for each request marked `?lb=...` it prints one line, `FORWARDED <marker> <json>`: the
X-Forwarded-For and X-Forwarded-Proto headers exactly as they arrived, and the client address
and scheme that uvicorn's proxy headers made of them. Nothing else changes.
"""

import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csmsite.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402

from speech.engines.espeak import EspeakEngine  # noqa: E402


def _held(variable: str) -> bool:
    gate = os.environ.get(variable)
    return bool(gate) and Path(gate).exists()


def _gated_load(load):
    def gated(self) -> None:
        while _held("LB_LOAD_GATE"):
            time.sleep(0.05)
        load(self)

    return gated


def _gated_synthesize(synthesize):
    def gated(self, chunks, voice, params):
        yield from synthesize(self, chunks, voice, params)
        while _held("LB_SPEECH_GATE"):
            time.sleep(0.02)
            yield np.zeros(24, dtype=np.float32)

    return gated


# Loading waits on a thread of its own, as a slow engine's does, so the server answers meanwhile.
EspeakEngine.loads_in_background = True
EspeakEngine._load = _gated_load(EspeakEngine._load)
EspeakEngine.synthesize = _gated_synthesize(EspeakEngine.synthesize)


def _reporting_forwarded(app):
    async def reporting(scope, receive, send):
        if scope["type"] == "http":
            (marker, *_) = parse_qs(scope["query_string"].decode()).get("lb", [None])
            if marker:
                # Every line of a header, joined as uvicorn joins them (HAProxy adds its own
                # X-Forwarded-For line after any it kept).
                seen = {
                    name: ", ".join(
                        value.decode() for key, value in scope["headers"] if key.decode() == name
                    )
                    or None
                    for name in ("x-forwarded-for", "x-forwarded-proto")
                }
                seen |= {
                    "client": scope["client"][0] if scope.get("client") else None,
                    "scheme": scope["scheme"],
                }
                print(f"FORWARDED {marker} {json.dumps(seen)}", flush=True)
        await app(scope, receive, send)

    return reporting


# `serve` names the application by its module's attribute, and one process imports it once.
# Imported after the engine's gates are in place: importing it starts the engines loading.
import csmsite.asgi  # noqa: E402

csmsite.asgi.application = _reporting_forwarded(csmsite.asgi.application)

call_command("serve", *sys.argv[1:])
