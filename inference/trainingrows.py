"""Which rows of a labelled set a model was trained on, so that no score grades a model on its own training data.

Two kinds of evidence, both recorded with the model rather than guessed from the scores:

- the embedded head: the `train_keys` stored with its weights (a 16-hex-digit hash of every
  training text's normalised form, `training.splits.train_key_hashes`), checked row by row. Whatever
  weights ship (refit on more data or not), their own hashes say which rows they saw;
- a hub model: the public datasets its card says it was fine-tuned on
  (`catalog.TRAINING_DATA`), matched against each row's `source`. A card that does not say
  leaves the model's training data unknown: its rows are kept and the score says "unknown".

A text's key is defined here (`normalise_text`, then `key_hash`): `training/splits.py` hashes the
training rows with it, and the running service finds the sample's rows among those hashes.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.protocol import SampleExclusion

from .catalog import EMBEDDED_MODEL_ID, training_data

__all__ = [
    "NORMALISATION_VERSION",
    "TrainingOverlap",
    "head_train_keys",
    "key_hash",
    "normalise_text",
    "parse_key_hashes",
    "training_overlap",
]

# The key a training text is known by: training hashes its rows' keys into the weights, the
# runtime hashes the sample's texts the same way to find them there.
NORMALISATION_VERSION = "finnorm/2"
_URL = re.compile(r"(?:https?://|www\.)\S+")
_MENTION = re.compile(r"@\w+")
_NON_WORD = re.compile(r"[^\w\s]")


def normalise_text(text: str) -> str:
    """Fold case, Unicode forms, URLs, @mentions, cashtags' `$` and punctuation, and whitespace."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _URL.sub(" ", text)
    text = _MENTION.sub(" ", text)
    text = _NON_WORD.sub(" ", text)
    return " ".join(text.split())


def key_hash(key: str) -> str:
    """The first 16 hex digits of the SHA-256 of a normalised text (collisions: ~1e-11 for 7,000 keys)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def parse_key_hashes(stored: str) -> set[str]:
    """Inverse of `training.splits.train_key_hashes`: the 16-hex-digit hashes of a concatenation."""
    return {stored[start : start + 16] for start in range(0, len(stored), 16)}


@dataclass(frozen=True)
class TrainingOverlap:
    """The rows of a labelled set a model was trained on (left out of its score) and why."""

    model_id: str
    excluded: frozenset[int]
    total: int
    reason: str
    known: bool = True  # False: the model's training data is unknown, nothing could be left out

    def exclusion(self) -> SampleExclusion:
        """The `excluded` field of a model's evaluation in `models_status`."""
        return SampleExclusion(
            rows=len(self.excluded), of=self.total, reason=self.reason, training_data_known=self.known
        )


def head_train_keys(path: Path | None = None) -> set[str] | None:
    """Return the training-text hashes stored with the embedded head's weights; None when none are stored."""
    from .head import HEAD_WEIGHTS_PATH, read_head_file

    _, metadata = read_head_file(path or HEAD_WEIGHTS_PATH)
    stored = metadata.get("train_keys")
    return parse_key_hashes(stored) if stored else None


def training_overlap(
    model_id: str,
    texts: Sequence[str],
    sources: Sequence[str] | None,
    *,
    train_keys: set[str] | None = None,
) -> TrainingOverlap:
    """Return which of these rows `model_id` was trained on.

    Args:
        texts: the rows' texts (the embedded head's rows are matched by text).
        sources: each row's dataset, named as `catalog.TRAINING_DATA` names them; None when the
            rows' dataset is not known (a CSV given on the command line), so only the embedded
            head's rows can be found.
        train_keys: the embedded head's `train_keys` (`head_train_keys()`); needed for it only.
    """
    total = len(texts)
    if model_id == EMBEDDED_MODEL_ID:
        if train_keys is None:
            return TrainingOverlap(model_id, frozenset(), total, "the weights store no train_keys", known=False)
        excluded = frozenset(i for i, text in enumerate(texts) if key_hash(normalise_text(text)) in train_keys)
        return TrainingOverlap(model_id, excluded, total, "in its training split (train_keys stored in its weights)")
    data = training_data(model_id)
    if data.datasets is None:
        return TrainingOverlap(model_id, frozenset(), total, f"training data unknown: {data.evidence}", known=False)
    if sources is None or not data.datasets:
        return TrainingOverlap(model_id, frozenset(), total, data.evidence)
    seen = set(data.datasets)
    excluded = frozenset(i for i, source in enumerate(sources) if source in seen)
    names = sorted({sources[i] for i in excluded})
    reason = f"fine-tuned on {' and '.join(names)}: {data.evidence}" if names else data.evidence
    return TrainingOverlap(model_id, excluded, total, reason)
