"""Draw the shipped evaluation sample, `inference/evalset/sample.jsonl`: `python -m training.evalsample`.

Its rows are those `inference/evalsample.py` reads: `{"text", "label", "domain", "source"}`. Drawn
only from the test part of the embedded model's split (`training/splits.py`, seed 0: normalised
duplicates removed before splitting). The shipped model was refit on train +
validation, so the test part is the only one whose texts, after normalisation, it never saw:

- news: 300 tweets of financial news headlines (zeroshot/twitter-financial-news-sentiment) and
  100 FiQA headlines;
- social: the 168 FiQA microblog posts (StockTwits-style) of the test part. FiQA gives a score in
  [-1, 1]: > 0 is bullish, < 0 bearish, 0 is dropped, so FiQA rows carry no neutral class.

Draws are seeded: the same data gives the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from inference.catalog import FIQA_2018, TWITTER_FINANCIAL_NEWS
from inference.evalsample import SAMPLE_PATH, SampleRow

from .datasets import default_datasets_dir
from .splits import build_split

__all__ = ["FIQA_SOURCE", "TWITTER_SOURCE", "build_sample", "main"]

TWITTER_SOURCE = TWITTER_FINANCIAL_NEWS  # the catalog records which models were trained on each source
FIQA_SOURCE = FIQA_2018
_SOURCES = {"twitter_news": TWITTER_SOURCE, "fiqa_headline": FIQA_SOURCE, "fiqa_post": FIQA_SOURCE}


def build_sample(
    data_dir: Path,
    *,
    news: int = 300,
    headlines: int = 100,
    social: int = 168,
    seed: int = 0,
    split_seed: int = 0,
) -> list[SampleRow]:
    """Draw the sample from the test part of the head's split (see the module docstring).

    Raises:
        ValueError: a part holds fewer rows than asked for.
    """
    rng = random.Random(seed)
    split = build_split(data_dir, seed=split_seed)
    trained = {row.key for row in split.train + split.validation}
    held = sorted(split.test, key=lambda row: row.id)
    rows: list[SampleRow] = []
    for subset, count in (("twitter_news", news), ("fiqa_headline", headlines), ("fiqa_post", social)):
        pool = [row for row in held if row.subset == subset and row.key not in trained]
        if len(pool) < count:
            raise ValueError(f"only {len(pool)} test {subset} rows, {count} asked for")
        rows += [SampleRow(row.text, row.label, row.domain, _SOURCES[subset]) for row in rng.sample(pool, count)]
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
