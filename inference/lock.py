"""The model lock: per hub model, the commit to download and the SHA-256 of every file it uses.

`python -m training.lock` writes it (`training/lock.py`). Loading passes the locked commit as the
revision and checks every digest, so a changed or corrupted file fails that model with a reason
instead of serving different weights.

A model without an entry is unpinned: it loads from `main` with a visible "unpinned" warning in
`models_status`.
The committed lock holds no entries while it was written where the hub is unreachable: it cannot
know real commits, and says so in its `note` (docs/inference.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelFilesInvalid

__all__ = ["LOCK_PATH", "LOCK_VERSION", "LockEntry", "hash_file", "read_lock", "verify_files"]

LOCK_PATH = Path(__file__).resolve().parent / "models.lock.json"
LOCK_VERSION = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LockEntry:
    """The locked commit of one model and the digests of the files loading uses."""

    revision: str
    files: Mapping[str, str]


def hash_file(path: Path) -> str:
    """Return the SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_lock(path: Path = LOCK_PATH) -> dict[str, LockEntry]:
    """Read the lock file; a missing file means no model is locked.

    Raises:
        ValueError: the file exists but is not a lock of this version.
    """
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != LOCK_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {LOCK_VERSION}")
        return {
            model_id: LockEntry(str(entry["revision"]), {str(k): str(v) for k, v in entry["files"].items()})
            for model_id, entry in data.get("models", {}).items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"model lock {path} is unreadable: {exc}") from exc


def verify_files(directory: Path, entry: LockEntry) -> None:
    """Check every locked file in a snapshot directory against its digest.

    Raises:
        ModelFilesInvalid: a locked file is missing or its SHA-256 differs.
    """
    for name, expected in sorted(entry.files.items()):
        path = directory / name
        if not path.is_file():
            raise ModelFilesInvalid(f"locked file {name} is missing at revision {entry.revision[:12]}")
        actual = hash_file(path)
        if actual != expected:
            raise ModelFilesInvalid(
                f"digest mismatch: {name} has sha256 {actual[:16]}..., the lock expects {expected[:16]}... "
                f"(revision {entry.revision[:12]})"
            )
