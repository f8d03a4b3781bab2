"""What every training command does around its work: logging, the data check, the JSON result or the error."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .datasets import missing_data_file

__all__ = ["run_training_command"]


def run_training_command(data_dir: Path, *, extra_tweets: bool, work: Callable[[], object]) -> int:
    """Run `work` and print its result as JSON (exit 0), or print `error: ...` and exit 2.

    A missing data file is refused before `work` starts; `work` raises ValueError or OSError for
    what it refuses (a missing teacher file, a model file other than the pinned one, another recipe).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    missing = missing_data_file(data_dir, extra_tweets=extra_tweets)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    try:
        result = work()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0
