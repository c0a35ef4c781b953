"""What a test reads back from file storage."""

from pathlib import Path


def stored_files(root: Path) -> list[str]:
    """Every file under `root` (MEDIA_ROOT), relative to it, sorted."""
    if not root.exists():
        return []
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())
