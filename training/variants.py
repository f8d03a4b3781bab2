"""New texts for distillation, answered by a kept teacher: `python -m training.variants --teacher FILE`.

A distilled student learns from the teacher what the gold labels do not say, and it can only do
so on texts whose answer the teacher has not memorised: the teacher answers its own training texts
with their gold labels (docs/inference.md). So this command writes variants of the training texts,
each with some words swapped for a near neighbour in the teacher's word-embedding table (TinyBERT's
augmentation, with the teacher's own table standing in for GloVe) or dropped, and the kept teacher
(`python -m training.teacher --save-models`) answers every variant. A swap that turns "rises" into
"falls" is then labelled as what the text now says, not with its original's gold label.

The `.npz` it writes holds `texts` (the variants), `origins` (the text each came from), `logits`
and `config`. `python -m training.train_head --teacher-variants FILE` adds the variants of its own
training texts to its rows, with the teacher's answer as their only target. Variants are made for
the train and validation parts (a refit trains on both) and, with `--extra-tweets`, the extra
tweets; none is a text of the
split, so none can be a validation or test text.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference.head import sha256_of
from inference.trainingrows import normalise_text

from .command import run_training_command
from .datasets import TWITTER_EXTRA_FILE, default_datasets_dir
from .splits import build_split, extra_training_rows
from .teacher import load_kept_teacher, teacher_logits

__all__ = ["make_variant", "make_variants", "neighbour_table", "write_variants"]

logger = logging.getLogger("training.variants")

# A word that may be swapped: letters with punctuation around them; cashtags, hashtags, mentions,
# numbers and links are kept as they are.
_SWAPPABLE = re.compile(r"^([^A-Za-z$#@]*)([A-Za-z]{3,})([^A-Za-z]*)$")


def neighbour_table(
    vocab: Sequence[str], embeddings: np.ndarray, words: Iterable[str], k: int = 8
) -> dict[str, list[str]]:
    """For each word that is one whole entry of `vocab`, its `k` nearest whole-word entries by cosine."""
    index = {token: i for i, token in enumerate(vocab[: len(embeddings)])}
    candidates = np.array([i for token, i in index.items() if token.isascii() and token.isalpha() and len(token) >= 3])
    table = embeddings[candidates] / np.linalg.norm(embeddings[candidates], axis=1, keepdims=True)
    wanted = sorted({word for word in words if word in index})
    out: dict[str, list[str]] = {}
    for start in range(0, len(wanted), 512):
        chunk = wanted[start : start + 512]
        rows = embeddings[[index[word] for word in chunk]]
        similarity = (rows / np.linalg.norm(rows, axis=1, keepdims=True)) @ table.T
        for word, scores in zip(chunk, similarity, strict=True):
            order = np.argsort(-scores)[: k + 1]
            out[word] = [vocab[candidates[j]] for j in order if vocab[candidates[j]] != word][:k]
    return out


def make_variant(
    text: str, neighbours: Mapping[str, Sequence[str]], rng: random.Random, *, swap: float = 0.3, drop: float = 0.05
) -> str:
    """`text` with each swappable word replaced by a neighbour with probability `swap`, or dropped with `drop`.

    Case follows the original word's first letter; a text of three words or fewer loses none.
    """
    words = text.split()
    out = []
    for word in words:
        match = _SWAPPABLE.match(word)
        roll = rng.random()
        if match and match.group(2).lower() in neighbours and roll < swap:
            lead, core, tail = match.groups()
            choice = rng.choice(neighbours[core.lower()])
            out.append(lead + (choice.capitalize() if core[0].isupper() else choice) + tail)
        elif len(words) > 3 and roll > 1 - drop:
            continue
        else:
            out.append(word)
    return " ".join(out)


def make_variants(
    texts: Sequence[str],
    neighbours: Mapping[str, Sequence[str]],
    taken_keys: set[str],
    *,
    per_text: int = 1,
    seed: int = 0,
    tries: int = 5,
) -> list[tuple[str, str]]:
    """(origin, variant) pairs: up to `per_text` variants of each text whose normalised form is new.

    `taken_keys` holds the normalised texts already in use (every split's, so no variant is a
    validation or test text); each variant's key joins it, so no two variants are the same text.
    """
    rng = random.Random(seed)
    pairs = []
    for text in texts:
        made = 0
        for _ in range(per_text * tries):
            variant = make_variant(text, neighbours, rng)
            key = normalise_text(variant)
            if key and key not in taken_keys:
                taken_keys.add(key)
                pairs.append((text, variant))
                made += 1
                if made == per_text:
                    break
    return pairs


def write_variants(
    data_dir: Path,
    model_dir: Path,
    teacher: Path,
    out: Path,
    *,
    per_text: int = 1,
    seed: int = 0,
    threads: int = 2,
    precision: str = "bf16",
    extra_tweets: bool = False,
) -> dict[str, Any]:
    """Make variants of the train and validation texts (and extra tweets); write the teacher's answers."""
    torch.set_num_threads(threads)
    from transformers import AutoTokenizer

    split = build_split(data_dir, seed=0)
    extra = extra_training_rows(data_dir) if extra_tweets else []
    sources = [row.text for row in split.train + split.validation + extra]
    taken = {row.key for row in split.train + split.validation + split.test + extra}
    model = load_kept_teacher(model_dir, teacher)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    vocab = [token for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])]
    words = {word.lower() for text in sources for word in re.findall(r"[A-Za-z]{3,}", text)}
    embeddings = model.encoder.get_input_embeddings().weight.detach().float().numpy()
    pairs = make_variants(sources, neighbour_table(vocab, embeddings, words), taken, per_text=per_text, seed=seed)
    logger.info("variants: %d of %d texts; the teacher answers them", len(pairs), len(sources))
    logits = teacher_logits(model, tokenizer, [variant for _, variant in pairs], precision=precision)
    config = {"teacher_sha256": sha256_of(teacher), "per_text": per_text, "seed": seed, "precision": precision,
              "extra_tweets": extra_tweets, "split": split.definition.to_json()}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        texts=np.array([variant for _, variant in pairs], dtype=np.str_),
        origins=np.array([origin for origin, _ in pairs], dtype=np.str_),
        logits=logits,
        config=np.array(json.dumps(config)),
    )
    return {"variants": len(pairs), "texts": len(sources), "config": config}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_datasets_dir(os.environ))
    parser.add_argument("--model-dir", type=Path, required=True, help="the teacher's base folder (all-mpnet-base-v2)")
    parser.add_argument("--teacher", type=Path, required=True,
                        help="a teacher kept by python -m training.teacher --save-models (teacher.safetensors)")
    parser.add_argument("--out", type=Path, default=Path("variants.npz"))
    parser.add_argument("--per-text", type=int, default=1, help="variants made of each text")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--extra-tweets", action="store_true", help=f"also make variants of {TWITTER_EXTRA_FILE}")
    args = parser.parse_args(argv)

    def work() -> dict[str, Any]:
        if not args.teacher.is_file():
            raise ValueError(f"{args.teacher} not found; python -m training.teacher --save-models DIR keeps it")
        return write_variants(args.data_dir, args.model_dir, args.teacher, args.out, per_text=args.per_text,
                              seed=args.seed, threads=args.threads, precision=args.precision,
                              extra_tweets=args.extra_tweets)

    return run_training_command(args.data_dir, extra_tweets=args.extra_tweets, work=work)


if __name__ == "__main__":
    raise SystemExit(main())
