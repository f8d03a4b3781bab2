"""Read the labelled sentiment CSVs in `../shared/datasets` (never copied into the repo)."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.records import SentimentLabel

__all__ = [
    "FIQA_FILE",
    "TWITTER_EXTRA_FILE",
    "TWITTER_FILE",
    "TWITTER_LABELS",
    "LabelledTexts",
    "default_datasets_dir",
    "missing_data_file",
    "parse_label_map",
    "read_labelled_csv",
    "read_signed_csv",
]

TWITTER_FILE = "twitter_financial_news_sentiment/train.csv"
FIQA_FILE = "fiqa_sentiment/fiqa.csv"
# The same dataset's own validation split: optional, training rows only (`splits.extra_training_rows`).
TWITTER_EXTRA_FILE = "twitter_financial_news_sentiment/valid.csv"
# zeroshot/twitter-financial-news-sentiment: 0 Bearish, 1 Bullish, 2 Neutral.
TWITTER_LABELS: Mapping[str, SentimentLabel] = {"0": "bearish", "1": "bullish", "2": "neutral"}
_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with one gold label each."""

    texts: list[str]
    labels: list[SentimentLabel]


def default_datasets_dir(environ: Mapping[str, str]) -> Path:
    """Return DATASETS_DIR from `environ` (a script's, read at its start), else `../shared/datasets`."""
    configured = environ.get("DATASETS_DIR")
    return Path(configured) if configured else _REPO_ROOT.parent / "shared" / "datasets"


def missing_data_file(data_dir: Path, *, extra_tweets: bool) -> str | None:
    """Return the error a training command prints when a file it reads is not in `data_dir`, else None."""
    for name in (TWITTER_FILE, FIQA_FILE, *([TWITTER_EXTRA_FILE] if extra_tweets else [])):
        if not (data_dir / name).is_file():
            return f"error: {data_dir / name} not found; pass --data-dir or set DATASETS_DIR"
    return None


def parse_label_map(text: str) -> dict[str, SentimentLabel]:
    """Parse `0=bearish,1=bullish,2=neutral` into a mapping.

    Raises:
        ValueError: malformed pairs or a label that is not bearish/neutral/bullish.
    """
    mapping: dict[str, SentimentLabel] = {}
    for pair in text.split(","):
        raw, sep, label = pair.partition("=")
        label = label.strip().lower()
        if not sep or label not in ("bearish", "neutral", "bullish"):
            raise ValueError(f"expected pairs like 0=bearish, got {pair!r} in {text!r}")
        mapping[raw.strip()] = label  # type: ignore[assignment]
    return mapping


def _rows(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in columns if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; has {reader.fieldnames}")
        return list(reader)


def read_labelled_csv(
    path: Path,
    *,
    text_col: str = "text",
    label_col: str = "label",
    label_map: Mapping[str, SentimentLabel] = TWITTER_LABELS,
) -> LabelledTexts:
    """Read a CSV whose label column holds class codes mapped by `label_map`.

    Raises:
        ValueError: missing columns or a code absent from `label_map`.
    """
    texts: list[str] = []
    labels: list[SentimentLabel] = []
    for line, row in enumerate(_rows(path, [text_col, label_col]), start=2):
        code = row[label_col].strip()
        if code not in label_map:
            raise ValueError(f"{path}:{line}: label {code!r} not in the label map {dict(label_map)}")
        texts.append(row[text_col])
        labels.append(label_map[code])
    return LabelledTexts(texts, labels)


def read_signed_csv(path: Path, *, text_col: str = "sentence", score_col: str = "score") -> LabelledTexts:
    """Read a CSV with a numeric score in [-1, 1]: > 0 bullish, < 0 bearish, 0 dropped (FiQA)."""
    texts: list[str] = []
    labels: list[SentimentLabel] = []
    for row in _rows(path, [text_col, score_col]):
        value = float(row[score_col])
        if value == 0:
            continue
        texts.append(row[text_col])
        labels.append("bullish" if value > 0 else "bearish")
    return LabelledTexts(texts, labels)

