"""`python manage.py reap_orphans [--dry-run] [--grace-seconds N]`

Files can outlive their rows (a database write that failed after the file was written, a crash
between the two) and rows can outlive their files (storage lost or restored from an older
backup). This walks the stored voices, consents and job uploads, removes every file no row
points at, and reports every row whose file is gone. Files younger than the grace period are
left alone: a request or job may have written one and not yet saved its row.
"""

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.files.storage import Storage, default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models
from django.utils import timezone

from ingest.models import IngestJob
from voices.models import Voice, VoiceConsent

# The top-level folders the server writes to; anything else in storage is not ours to judge.
PREFIXES = ("voices", "consents", "ingest")
# Every file field that points into those folders.
FILE_FIELDS: list[tuple[type[models.Model], str]] = [
    (Voice, "reference_audio"),
    (Voice, "original_audio"),
    (VoiceConsent, "recording"),
    (IngestJob, "input_audio"),
]


@dataclass
class Report:
    removed: list[str] = field(default_factory=list)
    too_young: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    removed_bytes: int = 0


def stored_files(storage: Storage, folder: str) -> Iterator[str]:
    """Every file under `folder`, recursively, as storage names."""
    # Not storage.exists(folder): an object store has no folders, only keys with a common
    # prefix, and answers False for one. Listing works on both.
    try:
        directories, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{folder}/{name}"
    for name in directories:
        yield from stored_files(storage, f"{folder}/{name}")


def referenced_files() -> dict[str, str]:
    """Storage name → the row that points at it ("Voice 1234… reference_audio")."""
    names: dict[str, str] = {}
    for model, field_name in FILE_FIELDS:
        rows = model.objects.exclude(**{field_name: ""}).values_list("pk", field_name)
        for pk, name in rows.iterator():
            names[name] = f"{model.__name__} {pk} {field_name}"
    return names


def _remove_empty_folders(storage: Storage, names: list[str]) -> None:
    """Storage on local disk keeps the emptied per-voice folders: remove those, best effort."""
    try:
        root = storage.path("")
    except NotImplementedError:
        return
    for name in names:
        folder = os.path.dirname(storage.path(name))
        while folder.startswith(root) and os.path.normpath(folder) != os.path.normpath(root):
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = os.path.dirname(folder)


def reap(*, storage: Storage, grace: datetime.timedelta, dry_run: bool) -> Report:
    report = Report()
    referenced = referenced_files()
    cutoff = timezone.now() - grace
    for prefix in PREFIXES:
        for name in stored_files(storage, prefix):
            if name in referenced:
                continue
            if storage.get_modified_time(name) > cutoff:
                report.too_young.append(name)
                continue
            report.removed_bytes += storage.size(name)
            report.removed.append(name)
            if not dry_run:
                storage.delete(name)
    if not dry_run:
        _remove_empty_folders(storage, report.removed)
    report.missing = [
        f"{row}: {name}" for name, row in referenced.items() if not storage.exists(name)
    ]
    return report


class Command(BaseCommand):
    help = "Remove stored files no row points at, and report rows whose file is missing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Only say what would be removed."
        )
        parser.add_argument(
            "--grace-seconds",
            type=int,
            default=3600,
            help="Leave files younger than this alone (they may be in the middle of a save).",
        )

    def handle(self, *args: object, dry_run: bool, grace_seconds: int, **options: object) -> None:
        if grace_seconds < 0:
            raise CommandError("--grace-seconds must not be negative")
        report = reap(
            storage=default_storage,
            grace=datetime.timedelta(seconds=grace_seconds),
            dry_run=dry_run,
        )
        verb = "would remove" if dry_run else "removed"
        for name in report.removed:
            self.stdout.write(f"{verb} orphan file {name}")
        for line in report.missing:
            self.stdout.write(self.style.WARNING(f"missing file for {line}"))
        self.stdout.write(
            f"{len(report.removed)} orphan file(s) {'would be ' if dry_run else ''}removed "
            f"({report.removed_bytes} bytes), "
            f"{len(report.too_young)} younger than {grace_seconds} s kept, "
            f"{len(report.missing)} row(s) with a missing file."
        )
