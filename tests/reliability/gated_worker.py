"""A real Celery worker (`python gated_worker.py -A csmsite worker ...`) whose ingest jobs stop
at one point and wait there while the file RELIABILITY_GATE exists, so that a test can kill the
worker in the middle of a job and know where the job was.

RELIABILITY_GATE_AT says where: "clean" (before the clean-up stage: nothing written yet) or
"save" (after the voice's reference file was written, before its row). Nothing else changes.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csmsite.settings")

import django

django.setup()


def _wait_at_gate() -> None:
    gate = Path(os.environ["RELIABILITY_GATE"])
    while gate.exists():
        time.sleep(0.02)


def _gated(function):
    def gated(*args, **kwargs):
        _wait_at_gate()
        return function(*args, **kwargs)

    return gated


if os.environ.get("RELIABILITY_GATE_AT", "clean") == "save":
    from voices.models import Voice

    Voice.save = _gated(Voice.save)
else:
    from ingest import clean

    clean.clean_audio = _gated(clean.clean_audio)

from celery.__main__ import main  # noqa: E402

sys.exit(main())
