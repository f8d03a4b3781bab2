"""Write the model lock from the hub: `python -m training.lock [--models a,b] [--out PATH]`.

Resolves each model's `main` on the hub (HF_ENDPOINT is honoured), downloads the files loading
reads at that commit (`inference/hubfiles.py`: config, tokenizer, one set of weights) into the hub
cache, hashes them and writes the lock that `inference/lock.py` reads and checks loads against.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inference.lock import LOCK_PATH, LOCK_VERSION, LockEntry, hash_file, read_lock

__all__ = ["lock_model", "main", "write_lock"]

logger = logging.getLogger(__name__)


def lock_model(model_id: str, cache_dir: Path | None = None) -> LockEntry:
    """Resolve `main` of one model on the hub, download the files loading reads at that commit, hash them.

    Only the files `hubfiles.loaded_files` names are fetched and locked: the config, the
    tokenizer's files and one set of weights, never the README or other exports.
    """
    from huggingface_hub import HfApi, snapshot_download

    from inference.hubfiles import loaded_files

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
        "note": "written by `python -m training.lock`; loading passes `revision` and checks each sha256",
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

    from inference.catalog import CATALOG

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
