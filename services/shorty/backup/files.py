"""The backup archives in a folder: their names, listing, pruning.

A backup is ``shorty-<UTC time>.dump`` (``shorty-20261206T013000Z.dump``): names sort
as times do. While being written it is ``.shorty-<UTC time>.dump.partial``, which no
listing or pruning counts, so a dump that fails or is killed never looks like a
backup."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

STAMP = "%Y%m%dT%H%M%SZ"
NAME = re.compile(r"shorty-(\d{8}T\d{6}Z)\.dump")
PARTIAL = re.compile(r"\.shorty-\d{8}T\d{6}Z\.dump\.partial")


@dataclass(frozen=True)
class Backup:
    path: Path
    taken_at: datetime
    size: int


def backup_name(now: datetime) -> str:
    return f"shorty-{now.astimezone(UTC).strftime(STAMP)}.dump"


def partial_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial")


def backups_in(folder: Path) -> list[Backup]:
    """The backups in ``folder``, oldest first; other files are not ours and ignored."""
    found = []
    for path in folder.iterdir():
        match = NAME.fullmatch(path.name)
        if match and path.is_file():
            taken_at = datetime.strptime(match[1], STAMP).replace(tzinfo=UTC)
            found.append(Backup(path, taken_at, path.stat().st_size))
    return sorted(found, key=lambda backup: backup.taken_at)


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest backups in ``folder``; the deleted paths."""
    old = backups_in(folder)[:-keep] if keep > 0 else backups_in(folder)
    for backup in old:
        backup.path.unlink(missing_ok=True)
    return [backup.path for backup in old]


def remove_stale_partials(folder: Path, older_than: float) -> None:
    """Delete what a killed dump left (``.partial`` files older than ``older_than``
    seconds: a dump still running elsewhere is younger than its timeout)."""
    limit = time.time() - older_than
    for path in folder.iterdir():
        if PARTIAL.fullmatch(path.name) and path.stat().st_mtime < limit:
            path.unlink(missing_ok=True)
