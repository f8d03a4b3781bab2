"""Download the served hub models into the HF cache ahead of time: `python -m inference.fetch`.

The Dockerfile runs it at build time, so a container starts with every model cached and makes no
download request. Models are those of MODELS (else the catalog's hub models), each at its locked
commit with its files checked (`inference/models.lock.json`); prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from core.config import InferenceSection

from .catalog import get_spec, resolve_model_ids
from .errors import ModelLoadError
from .loader import LoadOptions, resolve_model_source
from .lock import LOCK_PATH, read_lock

__all__ = ["fetch_models", "main"]

logger = logging.getLogger(__name__)


def fetch_models(
    model_ids: Sequence[str], *, lock_path: Path = LOCK_PATH, cache_dir: Path | None = None
) -> dict[str, dict[str, object]]:
    """Fetch each hub model into the cache (or find it there); return a report per model."""
    locks = read_lock(lock_path)
    options = LoadOptions(cache_dir=cache_dir, offline=False)
    report: dict[str, dict[str, object]] = {}
    for model_id in model_ids:
        if get_spec(model_id).kind != "transformers":
            continue
        started = time.monotonic()
        lock = locks.get(model_id)
        try:
            source = resolve_model_source(model_id, options, lock)
        except ModelLoadError as exc:
            report[model_id] = {"ok": False, "reason": exc.reason}
            logger.error("fetch %s: %s", model_id, exc.reason)
            continue
        report[model_id] = {
            "ok": True,
            "origin": source.origin,
            "path": str(source.path),
            "locked": lock is not None,
            "revision": lock.revision if lock is not None else None,
            "seconds": round(time.monotonic() - started, 2),
        }
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Fetch the configured models; exit 1 when any failed (unless --allow-missing)."""
    config = InferenceSection.from_env(os.environ)  # MODELS and MODEL_LOCK, read the way the app reads them
    parser = argparse.ArgumentParser(description="Fetch the served models into the HF cache.")
    parser.add_argument("--models", default=",".join(config.models or ()), help="comma-separated ids")
    parser.add_argument("--lock", type=Path, default=config.model_lock or LOCK_PATH)
    parser.add_argument("--allow-missing", action="store_true", help="exit 0 even when a model failed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    wanted = [part.strip() for part in args.models.split(",") if part.strip()] or None
    report = fetch_models(resolve_model_ids(wanted), lock_path=args.lock)
    print(json.dumps(report, indent=2))
    failed = [model_id for model_id, entry in report.items() if not entry["ok"]]
    return 1 if failed and not args.allow_missing else 0


if __name__ == "__main__":
    sys.exit(main())
