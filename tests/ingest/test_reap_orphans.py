"""`manage.py reap_orphans`: stored files no row points at are removed (once old enough), rows
whose file is gone are reported, and nothing else is touched."""

import os
import time
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ingest.models import IngestJob
from voices.models import Voice, VoiceConsent

pytestmark = pytest.mark.django_db

AN_HOUR_AGO = time.time() - 2 * 3600


def _file(root: Path, name: str, *, old: bool = True, data: bytes = b"RIFF") -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if old:
        os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))
    return path


def _reap(*args: str) -> str:
    out = StringIO()
    call_command("reap_orphans", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def stored(media_root, alice) -> dict[str, Path]:
    """One referenced file of every kind, and orphans beside them."""
    voice = Voice.objects.create(
        owner=alice,
        name="kept",
        kind=Voice.Kind.CLONED,
        source=Voice.Source.UPLOAD,
        reference_audio=f"voices/{uuid.uuid4()}/reference.wav",
    )
    consent = VoiceConsent.objects.create(
        id="cons_kept", owner=alice, name="Alice", language="en", recording="consents/x/recording"
    )
    job = IngestJob.objects.create(
        owner=alice, kind=IngestJob.Kind.UPLOAD, input_audio=f"ingest/{uuid.uuid4()}/input"
    )
    return {
        "voice": _file(media_root, voice.reference_audio.name),
        "consent": _file(media_root, consent.recording.name),
        "job": _file(media_root, job.input_audio.name),
        "orphan voice": _file(media_root, f"voices/{uuid.uuid4()}/reference.wav"),
        "orphan original": _file(media_root, f"voices/{uuid.uuid4()}/original"),
        "orphan consent": _file(media_root, "consents/cons_gone/recording"),
        "orphan upload": _file(media_root, f"ingest/{uuid.uuid4()}/input", data=b"x" * 10),
        "young orphan": _file(media_root, f"voices/{uuid.uuid4()}/reference.wav", old=False),
        "not ours": _file(media_root, "elsewhere/file.bin"),
    }


ORPHANS = ["orphan voice", "orphan original", "orphan consent", "orphan upload"]


def test_orphans_are_removed_and_referenced_files_kept(stored, media_root):
    output = _reap()
    for name in ORPHANS:
        assert not stored[name].exists(), name
        # The emptied per-voice / per-job folder goes too.
        assert not stored[name].parent.exists(), name
    for name in ["voice", "consent", "job", "young orphan", "not ours"]:
        assert stored[name].exists(), name
    assert "4 orphan file(s) removed" in output
    assert "1 younger than 3600 s kept" in output
    assert "0 row(s) with a missing file" in output


def test_a_dry_run_removes_nothing(stored):
    output = _reap("--dry-run")
    assert all(path.exists() for path in stored.values())
    assert "4 orphan file(s) would be removed" in output
    for name in ORPHANS:
        assert stored[name].as_posix().split("/media/")[1] in output


def test_a_zero_grace_period_reaps_young_orphans_too(stored):
    _reap("--grace-seconds", "0")
    assert not stored["young orphan"].exists()
    assert stored["voice"].exists()


def test_rows_whose_file_is_missing_are_reported_not_changed(stored, alice):
    stored["voice"].unlink()
    stored["consent"].unlink()
    output = _reap()
    assert "2 row(s) with a missing file" in output
    assert "missing file for Voice" in output
    assert "missing file for VoiceConsent cons_kept recording: consents/x/recording" in output
    assert Voice.objects.filter(name="kept").exists()
    assert VoiceConsent.objects.filter(id="cons_kept").exists()


def test_empty_storage_is_fine(media_root):
    assert "0 orphan file(s) removed" in _reap()


def test_a_negative_grace_period_is_refused(media_root):
    with pytest.raises(CommandError):
        _reap("--grace-seconds", "-1")
