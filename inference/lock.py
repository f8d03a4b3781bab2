"""The model lock: per hub model, the commit to download and the SHA-256 of every file it uses.

`python -m inference.lock [--models a,b] [--out PATH]` resolves each model's `main` on the hub
(HF_ENDPOINT is honoured), downloads the files loading reads at that commit (`hubfiles.py`: config,
tokenizer, one set of weights) into the hub cache, hashes them and writes the lock. Loading then
passes the locked commit as the revision and checks every digest, so a changed or corrupted file
fails that model with a reason instead of serving different weights.

A model without an entry is unpinned: it loads from `main` with a visible "unpinned" warning in
`models_status`.
The committed lock holds no entries while it was written where the hub is unreachable: it cannot
know real commits, and says so in its `note` (docs/inference.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ModelFilesInvalid

__all__ = [
    "LOCK_PATH",
    "LockEntry",
    "hash_file",
    "lock_model",
    "main",
    "read_lock",
    "verify_files",
    "write_lock",
]

logger = logging.getLogger(__name__)

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


def lock_model(model_id: str, cache_dir: Path | None = None) -> LockEntry:
    """Resolve `main` of one model on the hub, download the files loading reads at that commit, hash them.

    Only the files `hubfiles.loaded_files` names are fetched and locked: the config, the
    tokenizer's files and one set of weights, never the README or other exports.
    """
    from huggingface_hub import HfApi, snapshot_download

    from .hubfiles import loaded_files

    info = HfApi().model_info(model_id, revision="main")
    commit = info.sha
    if not commit:
        raise ValueError(f"{model_id}: the hub returned no commit for main")
    names = loaded_files(sibling.rfilename for sibling in info.siblings or ())
    path = Path(snapshot_download(model_id, revision=commit, cache_dir=cache_dir, allow_patterns=names))
    missing = [name for name in names if not (path / name).is_file()]
    if missing:
        raise ValueError(f"{model_id}: {', '.join(missing)} listed at {commit[:12]} but not downloaded")
    return LockEntry(commit, {name: hash_file(path / name) for name in names})


def write_lock(entries: Mapping[str, LockEntry], path: Path = LOCK_PATH, *, endpoint: str = "") -> None:
    """Write the lock file atomically, models sorted by id."""
    payload: dict[str, Any] = {
        "version": LOCK_VERSION,
        "note": "written by `python -m inference.lock`; loading passes `revision` and checks each sha256",
        "endpoint": endpoint,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "models": {
            model_id: {"revision": entry.revision, "files": dict(sorted(entry.files.items()))}
            for model_id, entry in sorted(entries.items())
        },
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Lock the hub models of the catalog (or `--models`) and write the lock file."""
    from huggingface_hub import constants

    from .catalog import CATALOG

    parser = argparse.ArgumentParser(description="Write the model lock from the HF hub (HF_ENDPOINT honoured).")
    parser.add_argument("--models", default="", help="comma-separated hub ids; default: every catalog hub model")
    parser.add_argument("--out", type=Path, default=LOCK_PATH)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ids = [part.strip() for part in args.models.split(",") if part.strip()] or [
        spec.id for spec in CATALOG.values() if spec.kind == "transformers"
    ]
    entries = {model_id: entry for model_id, entry in read_lock(args.out).items() if model_id in ids}
    failed: dict[str, str] = {}
    for model_id in ids:
        try:
            entries[model_id] = lock_model(model_id, args.cache_dir)
            logger.info("lock %s: %s, %d files", model_id, entries[model_id].revision, len(entries[model_id].files))
        except Exception as exc:  # report every model, then fail as a whole
            failed[model_id] = f"{type(exc).__name__}: {exc}"
            logger.error("lock %s: failed: %s", model_id, failed[model_id])
    if failed:
        print(json.dumps({"locked": sorted(set(entries) - set(failed)), "failed": failed}, indent=2))
        return 1
    write_lock(entries, args.out, endpoint=constants.ENDPOINT)
    print(json.dumps({"locked": sorted(entries), "out": str(args.out)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
