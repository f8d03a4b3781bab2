"""The embedded head's data split: normalised duplicates removed first, then train / validation / test.

Rows come from `../shared/datasets` (`training/datasets.py` finds it): the
twitter-financial-news-sentiment tweets (domain news) and FiQA 2018 task 1, whose headlines are news
and whose microblog posts are the only social texts in the data (FiQA score > 0 bullish, < 0
bearish, 0 dropped).

1. Normalise every text (`normalise_text` of `inference/trainingrows.py`, version
   `NORMALISATION_VERSION`): NFKC, lower case, URLs and @mentions removed, every non-word character
   (the `$` of cashtags, `#`, the `…` of truncated tweets) turned into a space, whitespace collapsed.
2. Group rows by normalised text across all files. A group whose rows disagree on the label is
   dropped whole (no trustworthy gold); otherwise its first row (file order) is kept.
3. Split each subset (file and FiQA type) stratified by label and seeded into train / validation
   / test with that subset's fractions.
4. Optionally (`extra_training_rows`), the tweet dataset's own validation file adds training rows:
   those of its tweets whose normalised text none of the files above holds. They never enter the
   split, so its definition, validation and test are the same with or without that file.

The definition (`SplitDefinition`: seed, fractions, normalisation version, per-subset counts and
a digest per split) is stored with the weights; `verify_split` rebuilds the split from the data
and refuses a definition that does not match it, so no evaluation silently uses another split.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.records import SentimentLabel
from inference.trainingrows import NORMALISATION_VERSION, key_hash, normalise_text

from .datasets import FIQA_FILE, TWITTER_EXTRA_FILE, TWITTER_FILE, TWITTER_LABELS

__all__ = [
    "DEFAULT_FRACTIONS",
    "SPLITS",
    "SplitDefinition",
    "SplitMismatch",
    "SplitRow",
    "build_split",
    "definition_summary",
    "extra_training_rows",
    "read_rows",
    "split_rows",
    "train_key_hashes",
    "verify_split",
]

SPLITS = ("train", "validation", "test")
# Subset -> (train, validation, test). FiQA holds out more: its test posts and headlines also feed
# the shipped evaluation sample (168 posts, 100 headlines), which must stay out of training.
DEFAULT_FRACTIONS: Mapping[str, tuple[float, float, float]] = {
    "twitter_news": (0.70, 0.15, 0.15),
    "fiqa_headline": (0.50, 0.25, 0.25),
    "fiqa_post": (0.50, 0.25, 0.25),
}
SUBSET_DOMAIN: Mapping[str, str] = {"twitter_news": "news", "fiqa_headline": "news", "fiqa_post": "social"}


class SplitMismatch(ValueError):
    """The split stored with the weights is missing or differs from the one the data gives."""


@dataclass(frozen=True)
class SplitRow:
    """One labelled text with a stable id: `<subset>:<0-based data row in its file>`."""

    id: str
    subset: str
    text: str
    label: SentimentLabel
    key: str  # normalise_text(text)

    @property
    def domain(self) -> str:
        """news or social."""
        return SUBSET_DOMAIN[self.subset]


@dataclass
class SplitDefinition:
    """What is stored with the weights: enough to rebuild the split and to check it is the same."""

    seed: int
    fractions: dict[str, list[float]]
    normalisation: str = NORMALISATION_VERSION
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise (sorted keys: the same split gives the same bytes)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SplitDefinition:
        """Parse a stored definition.

        Raises:
            SplitMismatch: not a definition.
        """
        try:
            raw = json.loads(text)
            return cls(
                seed=int(raw["seed"]),
                fractions={k: [float(x) for x in v] for k, v in raw["fractions"].items()},
                normalisation=str(raw["normalisation"]),
                counts={k: {s: int(n) for s, n in v.items()} for k, v in raw["counts"].items()},
                digests={k: str(v) for k, v in raw["digests"].items()},
                files={k: str(v) for k, v in raw.get("files", {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SplitMismatch(f"the stored split definition is unreadable: {exc}") from exc


@dataclass
class Split:
    """The rows of each split and the definition that describes them."""

    train: list[SplitRow]
    validation: list[SplitRow]
    test: list[SplitRow]
    definition: SplitDefinition

    def part(self, name: str) -> list[SplitRow]:
        """Return the rows of `train`, `validation` or `test`."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        rows: list[SplitRow] = getattr(self, name)
        return rows


def _read_tweets(path: Path, id_prefix: str) -> list[SplitRow]:
    """The rows of a twitter-financial-news-sentiment CSV (`text,label`), ids `<id_prefix>:<row>`."""
    rows: list[SplitRow] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for index, record in enumerate(csv.DictReader(handle)):
            code = (record.get("label") or "").strip()
            if code not in TWITTER_LABELS or record.get("text") is None:
                raise ValueError(f"{path}: row {index}: label {code!r} not in {dict(TWITTER_LABELS)}")
            text, label = record["text"], TWITTER_LABELS[code]
            rows.append(SplitRow(f"{id_prefix}:{index}", "twitter_news", text, label, normalise_text(text)))
    return rows


def read_rows(data_dir: Path) -> tuple[list[SplitRow], dict[str, int]]:
    """Read every labelled row (file order) and the raw row count per subset.

    Raises:
        OSError: a data file is missing. ValueError: a malformed file.
    """
    rows = _read_tweets(data_dir / TWITTER_FILE, "twitter_news")
    raw: dict[str, int] = {subset: 0 for subset in DEFAULT_FRACTIONS}
    raw["twitter_news"] = len(rows)
    with (data_dir / FIQA_FILE).open(encoding="utf-8", newline="") as handle:
        for index, record in enumerate(csv.DictReader(handle)):
            subset = "fiqa_post" if record.get("type") == "post" else "fiqa_headline"
            raw[subset] += 1
            score = float(record["score"])
            if score == 0:  # FiQA has no neutral class: a zero score has no sign to learn
                continue
            text = record["sentence"]
            label: SentimentLabel = "bullish" if score > 0 else "bearish"
            rows.append(SplitRow(f"{subset}:{index}", subset, text, label, normalise_text(text)))
    return rows, raw


def _deduplicate(rows: Sequence[SplitRow]) -> tuple[list[SplitRow], dict[str, dict[str, int]]]:
    labels: dict[str, set[str]] = {}
    for row in rows:
        labels.setdefault(row.key, set()).add(row.label)
    kept: list[SplitRow] = []
    seen: set[str] = set()
    stats = {subset: {"duplicates": 0, "conflicting": 0} for subset in DEFAULT_FRACTIONS}
    for row in rows:
        if len(labels[row.key]) > 1:
            stats[row.subset]["conflicting"] += 1
        elif row.key in seen:
            stats[row.subset]["duplicates"] += 1
        else:
            seen.add(row.key)
            kept.append(row)
    return kept, stats


def _stratified(
    rows: Sequence[SplitRow], fractions: Sequence[float], seed: int
) -> tuple[list[SplitRow], list[SplitRow], list[SplitRow]]:
    from sklearn.model_selection import train_test_split

    _, validation_share, test_share = fractions
    labels = [row.label for row in rows]
    rest, test = train_test_split(list(rows), test_size=test_share, random_state=seed, stratify=labels)
    rest_labels = [row.label for row in rest]
    train, validation = train_test_split(
        rest, test_size=validation_share / (1 - test_share), random_state=seed, stratify=rest_labels
    )
    return train, validation, test


def _digest(rows: Sequence[SplitRow]) -> str:
    """SHA-256 of the sorted `id<TAB>label<TAB>normalised text` lines: ids, labels and texts must all agree."""
    lines = sorted(f"{row.id}\t{row.label}\t{row.key}" for row in rows)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split_rows(
    rows: Sequence[SplitRow],
    raw_counts: Mapping[str, int],
    *,
    seed: int = 0,
    fractions: Mapping[str, Sequence[float]] = DEFAULT_FRACTIONS,
) -> Split:
    """Deduplicate `rows` (normalised text), then split each subset stratified by label and seeded."""
    kept, stats = _deduplicate(rows)
    parts: dict[str, list[SplitRow]] = {name: [] for name in SPLITS}
    counts: dict[str, dict[str, int]] = {}
    for subset, shares in fractions.items():
        members = [row for row in kept if row.subset == subset]
        dropped = stats.get(subset, {"duplicates": 0, "conflicting": 0})
        rows_read = int(raw_counts.get(subset, 0))
        counts[subset] = {
            "rows": rows_read,
            # FiQA rows with score 0 (no sign), dropped by read_rows
            "no_sign": rows_read - len(members) - dropped["duplicates"] - dropped["conflicting"],
            **dropped,
            "kept": len(members),
        }
        if not members:
            counts[subset].update({name: 0 for name in SPLITS})
            continue
        for name, chunk in zip(SPLITS, _stratified(members, shares, seed), strict=True):
            parts[name] += sorted(chunk, key=lambda row: row.id)
            counts[subset][name] = len(chunk)
    definition = SplitDefinition(
        seed=seed,
        fractions={subset: [float(x) for x in shares] for subset, shares in fractions.items()},
        counts=counts,
        digests={name: _digest(parts[name]) for name in SPLITS},
    )
    return Split(parts["train"], parts["validation"], parts["test"], definition)


def build_split(
    data_dir: Path, *, seed: int = 0, fractions: Mapping[str, Sequence[float]] = DEFAULT_FRACTIONS
) -> Split:
    """Read the data files and split them (see the module docstring).

    Raises:
        OSError: a data file is missing. ValueError: a malformed file.
    """
    rows, raw = read_rows(data_dir)
    split = split_rows(rows, raw, seed=seed, fractions=fractions)
    split.definition.files = {name: _file_digest(data_dir / name) for name in (TWITTER_FILE, FIQA_FILE)}
    return split


def verify_split(stored: str | None, data_dir: Path) -> Split:
    """Rebuild the split that `stored` (the weights' `split` metadata) describes and check it matches.

    Raises:
        SplitMismatch: no definition, another normalisation, or counts/digests that differ from the data's.
        OSError, ValueError: the data cannot be read.
    """
    if not stored:
        raise SplitMismatch(
            "the weights carry no split definition (metadata key 'split'), so nothing says which texts "
            "they were trained on; retrain with python -m training.train_head"
        )
    definition = SplitDefinition.from_json(stored)
    if definition.normalisation != NORMALISATION_VERSION:
        raise SplitMismatch(
            f"the weights' split used normalisation {definition.normalisation!r}, this code has "
            f"{NORMALISATION_VERSION!r}; retrain with python -m training.train_head"
        )
    split = build_split(
        data_dir, seed=definition.seed, fractions={k: tuple(v) for k, v in definition.fractions.items()}
    )
    rebuilt = split.definition
    problems = [
        f"{subset} counts {definition.counts.get(subset)} != data's {rebuilt.counts.get(subset)}"
        for subset in sorted(set(definition.counts) | set(rebuilt.counts))
        if definition.counts.get(subset) != rebuilt.counts.get(subset)
    ]
    problems += [
        f"{name} digest {definition.digests.get(name, '')[:12]} != data's {rebuilt.digests[name][:12]}"
        for name in SPLITS
        if definition.digests.get(name) != rebuilt.digests[name]
    ]
    if problems:
        raise SplitMismatch(f"the weights' stored split does not match the data in {data_dir}: " + "; ".join(problems))
    return split


def train_key_hashes(rows: Sequence[SplitRow], texts: Sequence[str] = ()) -> str:
    """The sorted `key_hash` of every training row, concatenated: stored with the weights so that any
    text (the shipped sample's, say) can be checked against the training split without the data.
    `texts` are further training texts without a row (a teacher's variants)."""
    keys = {row.key for row in rows} | {normalise_text(text) for text in texts}
    return "".join(sorted({key_hash(key) for key in keys}))


def definition_summary(definition: SplitDefinition) -> dict[str, Any]:
    """A short, printable view: seed, normalisation, test digest prefix and per-subset counts."""
    return {
        "seed": definition.seed,
        "normalisation": definition.normalisation,
        "test_digest": definition.digests.get("test", "")[:16],
        "counts": definition.counts,
    }


def extra_training_rows(data_dir: Path) -> list[SplitRow]:
    """The tweets of `TWITTER_EXTRA_FILE` (the dataset's own validation split) that the split never saw.

    Training rows only, so the validation and test parts stay what the split made them: a tweet
    whose normalised text is anywhere in the split's files (kept, duplicate or conflicting) is left
    out, and so is a group of the file's own copies that disagree on the label; of agreeing copies
    the first is kept. Ids are `twitter_valid:<row>`.

    Raises:
        OSError: the file is missing. ValueError: a malformed file.
    """
    known = {row.key for row in read_rows(data_dir)[0]}
    fresh = [row for row in _read_tweets(data_dir / TWITTER_EXTRA_FILE, "twitter_valid") if row.key not in known]
    kept, _ = _deduplicate(fresh)
    return kept
