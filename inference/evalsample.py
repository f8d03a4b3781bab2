"""The shipped evaluation sample: `inference/evalset/sample.jsonl`, built by `python -m inference.evalsample`.

One JSON object per line: `{"text", "label": bearish|neutral|bullish, "domain": news|social, "source"}`.

- news: 300 tweets of financial news headlines from the embedded head's held-out split of
  zeroshot/twitter-financial-news-sentiment (`datasets.heldout_split`, seed 0, 15 %), minus any
  whose normalised text also occurs in the training part, plus 100 FiQA headlines;
- social: 300 FiQA microblog posts (StockTwits-style). FiQA gives a score in [-1, 1]: > 0 is
  bullish, < 0 bearish, 0 is dropped, so FiQA rows carry no neutral class.

The head never trained on FiQA, and never on these tweets, so scoring the head on the sample is
a clean measurement. Draws are seeded: the same data gives the same file.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.records import SentimentLabel

from .datasets import FIQA_FILE, TWITTER_FILE, default_datasets_dir, heldout_split, read_labelled_csv

__all__ = [
    "SAMPLE_PATH",
    "SampleRow",
    "build_sample",
    "main",
    "normalise_text",
    "read_sample",
]

SAMPLE_PATH = Path(__file__).resolve().parent / "evalset" / "sample.jsonl"
TWITTER_SOURCE = "zeroshot/twitter-financial-news-sentiment"
FIQA_SOURCE = "FiQA-2018 task 1 (ChanceFocus/fiqa-sentiment-classification)"
_LABELS = ("bearish", "neutral", "bullish")


@dataclass(frozen=True)
class SampleRow:
    """One labelled text of the evaluation sample."""

    text: str
    label: SentimentLabel
    domain: str
    source: str


def normalise_text(text: str) -> str:
    """Fold case, accents, URLs, cashtags' `$` and whitespace, so near-copies compare equal."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


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


def _fiqa(path: Path, kind: str) -> list[tuple[str, SentimentLabel]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["type"] == kind and float(row["score"]) != 0]
    return [(row["sentence"], "bullish" if float(row["score"]) > 0 else "bearish") for row in rows]


def build_sample(
    data_dir: Path, *, news: int = 300, headlines: int = 100, social: int = 300, seed: int = 0
) -> list[SampleRow]:
    """Draw the sample from the licensed datasets (see the module docstring)."""
    rng = random.Random(seed)
    twitter = read_labelled_csv(data_dir / TWITTER_FILE)
    train_idx, held_idx = heldout_split(twitter.labels, fraction=0.15, seed=0)  # the head's own split
    trained = {normalise_text(twitter.texts[i]) for i in train_idx}
    seen: set[str] = set()
    clean = []
    for i in held_idx:
        key = normalise_text(twitter.texts[i])
        if key in trained or key in seen:
            continue
        seen.add(key)
        clean.append(i)
    rows = [SampleRow(twitter.texts[i], twitter.labels[i], "news", TWITTER_SOURCE) for i in rng.sample(clean, news)]
    for kind, count, domain in (("headline", headlines, "news"), ("post", social, "social")):
        pool = [(text, label) for text, label in _fiqa(data_dir / FIQA_FILE, kind) if normalise_text(text) not in seen]
        for text, label in rng.sample(pool, min(count, len(pool))):
            seen.add(normalise_text(text))
            rows.append(SampleRow(text, label, domain, FIQA_SOURCE))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Write the sample file from `../shared/datasets` (or --data-dir)."""
    parser = argparse.ArgumentParser(description="Build inference/evalset/sample.jsonl.")
    parser.add_argument("--data-dir", type=Path, default=default_datasets_dir(os.environ))
    parser.add_argument("--out", type=Path, default=SAMPLE_PATH)
    args = parser.parse_args(argv)
    rows = build_sample(args.data_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(
                json.dumps(
                    {"text": row.text, "label": row.label, "domain": row.domain, "source": row.source},
                    ensure_ascii=False,
                )
                + "\n"
            )
    print(json.dumps({"rows": len(rows), "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
