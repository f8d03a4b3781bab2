"""The shipped evaluation sample, `inference/evalset/sample.jsonl`, read for self-evaluation.

One JSON object per line: `{"text", "label": bearish|neutral|bullish, "domain": news|social, "source"}`.
`python -m training.evalsample` draws it from the test part of the embedded model's split, the
only part whose texts the shipped model never saw (`training/evalsample.py` says how).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.records import SentimentLabel

__all__ = ["SAMPLE_PATH", "SampleRow", "read_sample"]

SAMPLE_PATH = Path(__file__).resolve().parent / "evalset" / "sample.jsonl"
_LABELS = ("bearish", "neutral", "bullish")


@dataclass(frozen=True)
class SampleRow:
    """One labelled text of the evaluation sample."""

    text: str
    label: SentimentLabel
    domain: str
    source: str


def read_sample(path: Path = SAMPLE_PATH) -> list[SampleRow]:
    """Read the sample; an absent file is an empty sample.

    Raises:
        ValueError: a line that is not a row of the documented shape.
    """
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            row = SampleRow(str(raw["text"]), raw["label"], str(raw["domain"]), str(raw["source"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a sample row: {exc}") from exc
        if row.label not in _LABELS:
            raise ValueError(f"{path}:{number}: label {row.label!r} is not one of {_LABELS}")
        rows.append(row)
    return rows
