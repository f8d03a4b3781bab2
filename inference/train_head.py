"""Train the embedded model's head: `python -m inference.train_head [--data-dir DIR]`.

Recipe (chosen by measurement on a 15 % stratified held-out split, see docs/inference.md):
a logistic regression on the frozen sentence embedding reaches ~0.78, an MLP over the last three
layers' mean pools ~0.81, and adding rank-8 LoRA adapters to the top two encoder layers 0.83.
Only the top layers train, so the bottom four run once (their outputs are cached) and one epoch
costs about one plain forward pass over the data: 6.5 minutes in all on 2 shared cores.

Deterministic: fixed seeds, fixed thread count, deterministic torch algorithms, fixed batch
order; the same torch build and `--threads` reproduce bit-identical tensors and metadata.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .catalog import CANONICAL_LABELS
from .classifier import TransformersClassifier
from .datasets import FIQA_FILE, TWITTER_FILE, default_datasets_dir
from .head import (
    HEAD_FORMAT,
    HEAD_WEIGHTS_PATH,
    MINILM_SHA256,
    FinHeadModel,
    build_finhead_model,
    find_minilm,
    finhead_config,
    load_minilm_encoder,
)
from .headeval import report, score_rows
from .loader import LoadOptions
from .splits import SplitRow, build_split, train_key_hashes

__all__ = ["TRAIN_PRECISION", "LoRALinear", "main", "train"]

logger = logging.getLogger("inference.train_head")

TRAIN_PRECISION = "fp32"  # trained and evaluated in fp32 on CPU; stored with the weights

_ADAPTED = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


class LoRALinear(nn.Module):
    """y = base(x) + scale * x A^T B^T, with the base frozen; B starts at 0 so training starts at base."""

    def __init__(self, base: nn.Linear, rank: int, scale: float, generator: torch.Generator) -> None:
        super().__init__()
        self.base = base
        self.scale = scale
        self.A = nn.Parameter(
            torch.randn(rank, base.in_features, generator=generator) / math.sqrt(base.in_features)
        )
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.base(x) + (x @ self.A.T @ self.B.T) * self.scale
        return out


def _attach_lora(
    model: FinHeadModel, top_layers: int, rank: int, scale: float, generator: torch.Generator
) -> dict[str, LoRALinear]:
    layers = model.bert.encoder.layer
    adapters: dict[str, LoRALinear] = {}
    for index in range(len(layers) - top_layers, len(layers)):
        for path in _ADAPTED:
            parent_path, _, attr = path.rpartition(".")
            parent = layers[index].get_submodule(parent_path)
            adapter = LoRALinear(getattr(parent, attr), rank, scale, generator)
            setattr(parent, attr, adapter)
            adapters[f"encoder.layer.{index}.{path}"] = adapter
    return adapters


def _batches(texts: Sequence[str], indices: Sequence[int], size: int) -> list[list[int]]:
    ordered = sorted(indices, key=lambda i: (len(texts[i]), i))
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


def _row_weights(rows: Sequence[SplitRow], balance: bool) -> torch.Tensor:
    """Per-row loss weights: 1, or (balance) n^-1/2 of the row's (subset, label) group, mean 1.

    The square root moves part of the weight from the 6,500 news tweets to the few hundred FiQA
    posts and to the rarer classes without letting a handful of posts dominate the loss.
    """
    if not balance:
        return torch.ones(len(rows))
    sizes: dict[tuple[str, str], int] = {}
    for row in rows:
        sizes[(row.subset, row.label)] = sizes.get((row.subset, row.label), 0) + 1
    weights = torch.tensor([sizes[(row.subset, row.label)] ** -0.5 for row in rows], dtype=torch.float32)
    return weights / weights.mean()


def train(
    data_dir: Path,
    out: Path = HEAD_WEIGHTS_PATH,
    *,
    seed: int = 0,
    epochs: int = 3,
    rank: int = 8,
    top_layers: int = 2,
    hidden: int = 256,
    batch_size: int = 32,
    max_length: int = 128,
    threads: int = 2,
    limit: int | None = None,
    split_seed: int = 0,
    balance: bool = False,
) -> dict[str, object]:
    """Train on the train split, save the head to `out`, evaluate the saved file on validation.

    The test split is never read here: `python -m inference.evaluate` measures it once.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    # Denormals appear as LoRA deltas shrink and can slow CPU matmuls tenfold.
    torch.set_flush_denormal(True)
    started = time.monotonic()

    split = build_split(data_dir, seed=split_seed)
    train_rows, validation_rows = split.train, split.validation
    if limit is not None:  # a quick reproducibility check, not a model to ship
        train_rows, validation_rows = train_rows[:limit], validation_rows[:limit]
    texts = [row.text for row in train_rows]
    train_idx = list(range(len(texts)))
    target = torch.tensor([CANONICAL_LABELS.index(row.label) for row in train_rows])
    row_weights = _row_weights(train_rows, balance)
    # Offline on purpose: the pinned digest makes the cached/packaged copy the same bytes as the hub's.
    source = find_minilm(LoadOptions(offline=True))
    logger.info(
        "train: %d train texts, %d validation (test split untouched), MiniLM from %s",
        len(train_rows),
        len(validation_rows),
        source.origin,
    )

    from transformers import AutoTokenizer
    from transformers.masking_utils import create_bidirectional_mask

    tokenizer = AutoTokenizer.from_pretrained(source.path, local_files_only=True)
    n_layers = 6
    pool_layers = list(range(n_layers - top_layers, n_layers + 1))
    model = FinHeadModel(finhead_config(source.path, pool_layers=pool_layers, hidden=hidden))
    load_minilm_encoder(model, source.path)
    for parameter in model.bert.parameters():
        parameter.requires_grad = False
    generator = torch.Generator().manual_seed(seed)
    scale = 2.0  # alpha / rank with alpha = 2 * rank
    adapters = _attach_lora(model, top_layers, rank, scale, generator) if rank > 0 else {}
    bottom = n_layers - top_layers
    layers = model.bert.encoder.layer

    # Cache the frozen bottom layers once: they never change, so every epoch starts above them.
    cached = []
    model.eval()  # type: ignore[no-untyped-call]
    with torch.no_grad():  # not inference_mode: these tensors feed autograd later
        for batch in _batches(texts, train_idx, batch_size):
            encoded = tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden_states = model.bert.embeddings(
                input_ids=encoded["input_ids"], token_type_ids=encoded["token_type_ids"]
            )
            mask = create_bidirectional_mask(
                config=model.config, inputs_embeds=hidden_states, attention_mask=encoded["attention_mask"]
            )
            for index in range(bottom):
                hidden_states = layers[index](hidden_states, mask)
            cached.append((batch, hidden_states, encoded["attention_mask"], mask))
    logger.info(
        "train: cached %d layers for %d batches in %.0fs", bottom, len(cached), time.monotonic() - started
    )

    lora_params = [p for adapter in adapters.values() for p in (adapter.A, adapter.B)]
    groups: list[dict[str, Any]] = [{"params": list(model.head.parameters()), "lr": 2e-3}]
    if lora_params:
        groups.append({"params": lora_params, "lr": 1e-3})
    optimizer = torch.optim.AdamW(groups, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[group["lr"] for group in groups], total_steps=epochs * len(cached), pct_start=0.1
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05, reduction="none")
    order_gen = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        epoch_start, total = time.monotonic(), 0.0
        for k in torch.randperm(len(cached), generator=order_gen).tolist():
            batch, hidden_states, attention, mask = cached[k]
            states = [hidden_states]
            for index in range(bottom, n_layers):
                states.append(layers[index](states[-1], mask))
            by_index = dict(zip(range(bottom, n_layers + 1), states, strict=True))
            logits = model.head(model.pooled_features(by_index, attention))  # type: ignore[arg-type]
            weights = row_weights[batch]
            loss = (loss_fn(logits, target[batch]) * weights).sum() / weights.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.detach().item()
        logger.info(
            "train: epoch %d/%d loss %.4f in %.0fs",
            epoch + 1,
            epochs,
            total / len(cached),
            time.monotonic() - epoch_start,
        )

    tensors = {
        f"head.{key}": value.detach().clone().contiguous() for key, value in model.head.state_dict().items()
    }
    for name, adapter in adapters.items():
        tensors[f"lora.{name}.A"] = adapter.A.detach().clone().contiguous()
        tensors[f"lora.{name}.B"] = adapter.B.detach().clone().contiguous()
    config = {
        "seed": seed,
        "epochs": epochs,
        "rank": rank,
        "top_layers": top_layers,
        "hidden": hidden,
        "batch_size": batch_size,
        "max_length": max_length,
        "threads": threads,
        "limit": limit,
        "balance": balance,
        "torch": torch.__version__,
        "data": [TWITTER_FILE, FIQA_FILE],
    }
    metadata = {
        "format": HEAD_FORMAT,
        "pool_layers": ",".join(map(str, pool_layers)),
        "hidden": str(hidden),
        "lora_scale": str(scale if adapters else 0.0),
        "max_length": str(max_length),
        "labels": ",".join(CANONICAL_LABELS),
        "base_sha256": MINILM_SHA256,
        "train_config": json.dumps(config),
        # The split and precision travel with the weights: inference.evaluate rebuilds and checks them.
        "split": split.definition.to_json(),
        "train_keys": train_key_hashes(split.train),
        "train_precision": TRAIN_PRECISION,
        "eval_precision": TRAIN_PRECISION,
    }
    _save(tensors, metadata, out)

    # Evaluate the file as saved, through the same loading path as the service (fp32 here), on
    # validation only: this is the number recipes are compared by.
    saved = build_finhead_model(source.path, out)
    classifier = TransformersClassifier("embedded", saved, tokenizer, CANONICAL_LABELS, max_length=max_length)
    metrics: dict[str, object] = {"validation": report(validation_rows, score_rows(classifier, validation_rows))}
    metadata["metrics"] = json.dumps(metrics)  # no timings in the file: its contents must reproduce
    _save(tensors, metadata, out)
    return metrics | {"train_seconds": round(time.monotonic() - started, 1)}


def _save(tensors: dict[str, torch.Tensor], metadata: dict[str, str], out: Path) -> None:
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=metadata)
    out.chmod(0o644)  # safetensors writes 0600; the file is meant to be committed and shared


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_datasets_dir(os.environ),
        help="folder holding twitter_financial_news_sentiment/ (default: DATASETS_DIR or "
        "../shared/datasets beside the repo)",
    )
    parser.add_argument("--out", type=Path, default=HEAD_WEIGHTS_PATH)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank; 0 trains the MLP head only")
    parser.add_argument("--top-layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="first N rows only (reproducibility check)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation/test split")
    parser.add_argument(
        "--balance", action="store_true", help="weight rows by n^-1/2 of their (subset, label) group"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in (TWITTER_FILE, FIQA_FILE):
        if not (args.data_dir / name).is_file():
            print(f"error: {args.data_dir / name} not found; pass --data-dir or set DATASETS_DIR", file=sys.stderr)
            return 2
    metrics = train(
        args.data_dir,
        args.out,
        seed=args.seed,
        epochs=args.epochs,
        rank=args.rank,
        top_layers=args.top_layers,
        threads=args.threads,
        limit=args.limit,
        split_seed=args.split_seed,
        balance=args.balance,
    )
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
