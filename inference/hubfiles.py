"""Which files of a hub model repository loading reads: its config, its tokenizer, one set of weights.

The lock hashes exactly these, `inference.fetch` and the Space's `preload_from_hub` download only
these, so a repository's README, ONNX, TensorFlow or Flax exports and training leftovers are never
fetched nor trusted. The names are those `transformers` reads from a model directory for a
sequence classifier: `config.json`; the tokenizer's own files (BERT's `vocab.txt`, RoBERTa's
`vocab.json` + `merges.txt`, BERTweet's `vocab.txt` + `bpe.codes`, SentencePiece models, the fast
`tokenizer.json`) and their configs; and the weights `from_pretrained` prefers: a single
`model.safetensors`, else its sharded index and shards, else `pytorch_model.bin` (or its shards).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["CONFIG_FILE", "TOKENIZER_FILES", "loaded_files", "weight_files"]

CONFIG_FILE = "config.json"
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "bpe.codes",
        "spiece.model",
        "sentencepiece.bpe.model",
        "tokenizer.model",
    }
)
# In from_pretrained's order of preference: the first family present is the one loaded.
_WEIGHT_FAMILIES = (
    ("model.safetensors", None),
    ("model.safetensors.index.json", re.compile(r"^model-\d+-of-\d+\.safetensors$")),
    ("pytorch_model.bin", None),
    ("pytorch_model.bin.index.json", re.compile(r"^pytorch_model-\d+-of-\d+\.bin$")),
)


def weight_files(names: Iterable[str]) -> list[str]:
    """Return the weight files loading reads among top-level file names (empty when none)."""
    present = set(names)
    for first, shards in _WEIGHT_FAMILIES:
        if first in present:
            return [first, *sorted(name for name in present if shards is not None and shards.match(name))]
    return []


def loaded_files(repo_files: Iterable[str]) -> list[str]:
    """Return, sorted, the files of a repository listing that loading a sequence classifier reads.

    Raises:
        ValueError: the listing has no top-level `config.json` or no weights loading can read.
    """
    top_level = {name for name in repo_files if "/" not in name}  # subfolders hold other exports
    if CONFIG_FILE not in top_level:
        raise ValueError(f"no {CONFIG_FILE} at the top of the repository (files: {sorted(top_level)[:12]})")
    weights = weight_files(top_level)
    if not weights:
        raise ValueError(
            "no weights transformers loads (model.safetensors or pytorch_model.bin, single or sharded) "
            f"at the top of the repository (files: {sorted(top_level)[:12]})"
        )
    return sorted({CONFIG_FILE, *(top_level & TOKENIZER_FILES), *weights})
