"""The embedded model's second voice: a logistic regression over word and character n-grams.

Fine-tuned MiniLM and a bag of n-grams make different mistakes: MiniLM reads phrasing and
negation, the n-grams remember the exact tickers, verbs and headline formulas of financial news
(a six-layer encoder with frozen token vectors forgets many of those). Their log-probabilities,
added with a weight chosen on validation, score better than either alone (docs/inference.md).

Features (`NgramFeaturizer`): lower-cased word 1-2-grams (tokens of two or more word characters)
and character 2-5-grams inside each whitespace-separated word padded with a space; each count
becomes `1 + ln(count)` times a smoothed idf, and the word and character blocks are L2-normalised
separately. The model travels inside the embedded model's weights file as plain tensors
(`ngram.*`: the vocabulary as UTF-8 lines, idf, coefficients, intercepts), never as a pickle.
Texts are cut at `MAX_CHARS` so that one text costs bounded work.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import ModelFilesInvalid

__all__ = ["MAX_CHARS", "NgramFeaturizer", "NgramModel", "build_vocabulary"]

MAX_CHARS = 2000  # longer than any 128-token window MiniLM reads; bounds the work per text
_WORD = re.compile(r"(?u)\b\w\w+\b")
_SPACES = re.compile(r"\s+")
_WORD_PREFIX, _CHAR_PREFIX = "w ", "c "


@dataclass(frozen=True)
class NgramFeaturizer:
    """Turns a text into n-gram counts; the key's prefix says its block (word or character)."""

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)

    def counts(self, text: str) -> Counter[str]:
        """Return the text's n-gram counts, keys prefixed `w ` (words) or `c ` (characters)."""
        lowered = _SPACES.sub(" ", text[:MAX_CHARS].lower())
        found: Counter[str] = Counter()
        words = _WORD.findall(lowered)
        low, high = self.word_ngrams
        for n in range(low, high + 1):
            for start in range(len(words) - n + 1):
                found[_WORD_PREFIX + " ".join(words[start : start + n])] += 1
        low, high = self.char_ngrams
        for word in lowered.split():
            padded = f" {word} "
            for n in range(low, min(high, len(padded)) + 1):
                for start in range(len(padded) - n + 1):
                    found[_CHAR_PREFIX + padded[start : start + n]] += 1
        return found


def build_vocabulary(featurizer: NgramFeaturizer, texts: Iterable[str], min_df: int) -> tuple[list[str], np.ndarray]:
    """Return the n-grams found in at least `min_df` texts (sorted) and their smoothed idf."""
    document_frequency: Counter[str] = Counter()
    n_texts = 0
    for text in texts:
        document_frequency.update(featurizer.counts(text).keys())
        n_texts += 1
    vocabulary = sorted(key for key, df in document_frequency.items() if df >= min_df)
    idf = np.array(
        [math.log((1 + n_texts) / (1 + document_frequency[key])) + 1.0 for key in vocabulary], dtype=np.float32
    )
    return vocabulary, idf


class NgramModel:
    """The n-gram logistic regression: `log_probs(texts)` in the label order it was fitted on."""

    def __init__(
        self,
        vocabulary: Sequence[str],
        idf: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        featurizer: NgramFeaturizer | None = None,
    ) -> None:
        if not (len(vocabulary) == idf.shape[0] == coef.shape[1]) or coef.shape[0] != intercept.shape[0]:
            raise ModelFilesInvalid(
                f"n-gram model shapes disagree: vocabulary {len(vocabulary)}, idf {idf.shape}, "
                f"coef {coef.shape}, intercept {intercept.shape}"
            )
        self.featurizer = featurizer or NgramFeaturizer()
        self.vocabulary = list(vocabulary)  # the n-grams in column order
        self.index = {key: i for i, key in enumerate(self.vocabulary)}
        self.idf = idf.astype(np.float32)
        self.coef = coef.astype(np.float32)
        self.intercept = intercept.astype(np.float32)
        self._is_word = np.array([key.startswith(_WORD_PREFIX) for key in vocabulary])

    def features(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the texts' tf-idf rows in CSR form: (row pointers, columns, values)."""
        pointers, columns, values = [0], [], []
        for text in texts:
            counts = self.featurizer.counts(text).items()
            found = [(self.index[key], count) for key, count in counts if key in self.index]
            cols = np.array([column for column, _ in found], dtype=np.int64)
            weights = np.array([1.0 + math.log(count) for _, count in found], dtype=np.float32) * self.idf[cols]
            for block in (self._is_word[cols], ~self._is_word[cols]):  # each block has unit length
                norm = float(np.sqrt(np.sum(weights[block] ** 2)))
                if norm > 0:
                    weights[block] /= norm
            columns.append(cols)
            values.append(weights)
            pointers.append(pointers[-1] + len(cols))
        return (
            np.array(pointers, dtype=np.int64),
            np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64),
            np.concatenate(values) if values else np.zeros(0, dtype=np.float32),
        )

    def log_probs(self, texts: Sequence[str]) -> np.ndarray:
        """Return log-softmax scores, one row per text."""
        pointers, columns, values = self.features(texts)
        logits = np.tile(self.intercept, (len(texts), 1))
        for row in range(len(texts)):
            span = slice(pointers[row], pointers[row + 1])
            logits[row] += self.coef[:, columns[span]] @ values[span]
        logits -= logits.max(axis=1, keepdims=True)
        result: np.ndarray = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return result

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """The model as `ngram.*` tensors for a safetensors file."""
        vocabulary = "\n".join(self.vocabulary).encode("utf-8")
        return {
            "ngram.vocabulary": torch.frombuffer(bytearray(vocabulary), dtype=torch.uint8).clone(),
            "ngram.idf": torch.from_numpy(self.idf.copy()),
            "ngram.coef": torch.from_numpy(self.coef.copy()),
            "ngram.intercept": torch.from_numpy(self.intercept.copy()),
        }

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor]) -> NgramModel | None:
        """Read the `ngram.*` tensors back; None when the file holds no n-gram model."""
        if "ngram.coef" not in tensors:
            return None
        try:
            vocabulary = bytes(tensors["ngram.vocabulary"].numpy().tobytes()).decode("utf-8").split("\n")
            return cls(
                vocabulary,
                tensors["ngram.idf"].float().numpy(),
                tensors["ngram.coef"].float().numpy(),
                tensors["ngram.intercept"].float().numpy(),
            )
        except (KeyError, UnicodeDecodeError) as exc:
            raise ModelFilesInvalid(f"n-gram model unreadable: {exc}") from exc
