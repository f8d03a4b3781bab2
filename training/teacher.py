"""Fine-tune a larger encoder as the embedded model's teacher: `python -m training.teacher --model-dir DIR`.

The teacher is sentence-transformers/all-mpnet-base-v2 (12 layers, 768 wide, 110 M parameters,
Apache-2.0), read from a local folder whose `model.safetensors` must hash to the hub's file at
revision `MPNET_REVISION`. It is fine-tuned whole (mean pool of the last layer, then one linear
layer) on the rows the student's train-only run trains on (the train part, and with
`--extra-tweets` the extra tweets), scored on validation after each epoch, and its logits for
those rows and for the validation part are written to an `.npz` (arrays `texts`, `logits`) that
`python -m training.train_head --teacher FILE` distils from. The test part is never read.
`--save-models DIR` keeps the trained teacher, so that `python -m training.variants` can have it
answer new texts: the shipped weights learn from both (docs/inference.md).

The student's refit (train + validation) learns validation's rows from this train-only teacher's
answers, which it gave without having seen them. Autocast to bf16 (`--precision`, default bf16)
trains 1.7x faster than fp32 on the 2-core development machine, which has AVX-512 bf16 and no AMX
(docs/inference.md); the logits are stored in fp32.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inference.catalog import CANONICAL_LABELS
from inference.head import sha256_of

from .command import run_training_command
from .datasets import TWITTER_EXTRA_FILE, default_datasets_dir
from .headeval import report
from .splits import SplitRow, build_split, extra_training_rows
from .train_head import label_rows, one_cycle_adamw, softmax

__all__ = ["MPNET_REVISION", "MPNET_SHA256", "TeacherModel", "load_kept_teacher", "teacher_logits", "train_teacher"]

logger = logging.getLogger("training.teacher")

MPNET_REVISION = "e8c3b32edf5434bc2275fc9bab85f82640a19130"
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"


class TeacherModel(nn.Module):
    """An encoder, the attention-masked mean of its last layer, dropout and one linear layer."""

    def __init__(self, model_dir: Path, classes: int) -> None:
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(model_dir, local_files_only=True)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(self.encoder.config.hidden_size, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        logits: torch.Tensor = self.classifier(self.dropout(pooled.float()))
        return logits


def _length_sorted_batches(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Indices in batches of similar length: far less padding than batches in file order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[start : start + size] for start in range(0, len(order), size)]


def train_teacher(
    data_dir: Path,
    model_dir: Path,
    out: Path,
    *,
    epochs: int = 3,
    lr: float = 4e-5,
    head_lr: float = 1e-3,
    batch_size: int = 32,
    max_length: int = 64,
    seed: int = 0,
    threads: int = 2,
    precision: str = "bf16",
    extra_tweets: bool = False,
    folds: int = 1,
    save_models: Path | None = None,
    expected_sha256: str = MPNET_SHA256,
) -> dict[str, Any]:
    """Fine-tune the teacher, write its logits to `out` and return validation's report per epoch.

    Raises:
        ValueError: the folder's `model.safetensors` is not the expected file.
    """
    digest = sha256_of(model_dir / "model.safetensors")
    if digest != expected_sha256:
        raise ValueError(
            f"{model_dir / 'model.safetensors'} has SHA-256 {digest}, not all-mpnet-base-v2's {expected_sha256}"
        )
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    from transformers import AutoTokenizer

    split = build_split(data_dir, seed=0)
    train_rows = list(split.train) + (extra_training_rows(data_dir) if extra_tweets else [])
    validation_rows = list(split.validation)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    autocast = _autocast(precision)

    def logits_of(model: TeacherModel, rows: Sequence[SplitRow]) -> np.ndarray:
        logits = teacher_logits(model, tokenizer, [row.text for row in rows], max_length=max_length,
                                precision=precision)
        model.train()
        return logits

    def fit(rows: Sequence[SplitRow], name: str) -> tuple[TeacherModel, list[dict[str, Any]]]:
        model = TeacherModel(model_dir, len(CANONICAL_LABELS))
        batches = _length_sorted_batches(_token_counts(tokenizer, [row.text for row in rows], max_length), batch_size)
        target = torch.tensor([CANONICAL_LABELS.index(row.label) for row in rows])
        optimizer, schedule = one_cycle_adamw(
            model.encoder.parameters(), lr, model.classifier.parameters(), head_lr, epochs * len(batches)
        )
        loss_fn = nn.CrossEntropyLoss()
        order = torch.Generator().manual_seed(seed)
        logger.info("teacher %s: %d training texts, %d validation, test untouched", name, len(rows),
                    len(validation_rows))
        model.train()
        epochs_report: list[dict[str, Any]] = []
        for epoch in range(epochs):
            started, total = time.monotonic(), 0.0
            for step, k in enumerate(torch.randperm(len(batches), generator=order).tolist()):
                batch = batches[k]
                with autocast():
                    logits = model(*_encode(tokenizer, [rows[i].text for i in batch], max_length))
                loss = loss_fn(logits.float(), target[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.detach().item()
                if step % 50 == 0:
                    elapsed = time.monotonic() - started
                    logger.info("teacher %s: epoch %d step %d/%d %.0fs", name, epoch + 1, step, len(batches), elapsed)
            figures = report(validation_rows, label_rows(softmax(logits_of(model, validation_rows))))
            epochs_report.append({"loss": round(total / len(batches), 4),
                                  "seconds": round(time.monotonic() - started), "validation": figures})
            logger.info("teacher %s: epoch %d/%d loss %.4f, validation %s", name, epoch + 1, epochs,
                        total / len(batches), json.dumps(figures.get("overall")))
        return model, epochs_report

    train_logits = np.zeros((len(train_rows), len(CANONICAL_LABELS)), dtype=np.float32)
    validation_logits = np.zeros((len(validation_rows), len(CANONICAL_LABELS)), dtype=np.float32)
    reports: dict[str, list[dict[str, Any]]] = {}
    if folds == 1:  # one teacher, which answers the texts it trained on
        model, reports["all"] = fit(train_rows, "all")
        _save_model(model, save_models, "teacher")
        train_logits, validation_logits = logits_of(model, train_rows), logits_of(model, validation_rows)
    else:  # each training text answered by the teacher that did not train on it; validation by their mean
        fold_of = np.random.default_rng(seed).permutation(len(train_rows)) % folds
        for fold in range(folds):
            held_out = [i for i in range(len(train_rows)) if fold_of[i] == fold]
            kept = [train_rows[i] for i in range(len(train_rows)) if fold_of[i] != fold]
            model, reports[f"fold {fold + 1}"] = fit(kept, f"fold {fold + 1}/{folds}")
            _save_model(model, save_models, f"teacher-fold{fold + 1}")
            train_logits[held_out] = logits_of(model, [train_rows[i] for i in held_out])
            validation_logits += logits_of(model, validation_rows) / folds
            del model
    reports["validation"] = [{"validation": report(validation_rows, label_rows(softmax(validation_logits)))}]
    config = {"model_sha256": digest, "revision": MPNET_REVISION, "epochs": epochs, "lr": lr, "head_lr": head_lr,
              "batch_size": batch_size, "max_length": max_length, "seed": seed, "precision": precision,
              "extra_tweets": extra_tweets, "folds": folds, "split": split.definition.to_json(),
              "torch": torch.__version__}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        texts=np.array([row.text for row in train_rows + validation_rows], dtype=np.str_),
        logits=np.concatenate([train_logits, validation_logits]),
        config=np.array(json.dumps(config)),
    )
    return {"teachers": reports, "config": config}


def teacher_logits(
    model: TeacherModel, tokenizer: Any, texts: Sequence[str], *, max_length: int = 64, precision: str = "bf16"
) -> np.ndarray:
    """The model's logits (fp32) for `texts`, in evaluation mode, in batches of 64 sorted by length."""
    model.eval()
    logits = np.zeros((len(texts), len(CANONICAL_LABELS)), dtype=np.float32)
    with torch.no_grad(), _autocast(precision)():
        for batch in _length_sorted_batches(_token_counts(tokenizer, texts, max_length), 64):
            logits[batch] = model(*_encode(tokenizer, [texts[i] for i in batch], max_length)).float().numpy()
    return logits


def _token_counts(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[int]:
    return [len(tokenizer(text, truncation=True, max_length=max_length)["input_ids"]) for text in texts]


def _encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of `texts`, padded to the longest and cut at `max_length`."""
    encoded = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def load_kept_teacher(model_dir: Path, weights: Path) -> TeacherModel:
    """A teacher kept by `--save-models`: the base folder's architecture with the kept weights."""
    from safetensors.torch import load_file

    model = TeacherModel(model_dir, len(CANONICAL_LABELS))
    model.load_state_dict(load_file(str(weights)))
    model.eval()
    return model


def _save_model(model: TeacherModel, folder: Path | None, name: str) -> None:
    """Keep a trained teacher (`TeacherModel.load_state_dict` reads it back), so it can label new texts later."""
    if folder is None:
        return
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.contiguous() for key, value in model.state_dict().items()}
    save_file(tensors, str(folder / f"{name}.safetensors"))


def _autocast(precision: str) -> Any:
    if precision == "fp32":
        return contextlib.nullcontext
    return lambda: torch.autocast("cpu", dtype=torch.bfloat16)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_datasets_dir(os.environ))
    parser.add_argument("--model-dir", type=Path, required=True,
                        help="a folder with all-mpnet-base-v2's config, tokenizer and model.safetensors")
    parser.add_argument("--out", type=Path, default=Path("teacher.npz"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=4e-5, help="peak learning rate of the encoder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--extra-tweets", action="store_true", help=f"also train on {TWITTER_EXTRA_FILE}")
    parser.add_argument("--save-models", type=Path, default=None,
                        help="a folder to keep each trained teacher in (teacher[-foldK].safetensors)")
    parser.add_argument("--folds", type=int, default=1,
                        help="K > 1: K teachers, each answering the training texts it did not train on")
    args = parser.parse_args(argv)
    return run_training_command(args.data_dir, extra_tweets=args.extra_tweets, work=lambda: train_teacher(
        args.data_dir, args.model_dir, args.out, epochs=args.epochs, lr=args.lr, seed=args.seed, threads=args.threads,
        precision=args.precision, extra_tweets=args.extra_tweets, folds=args.folds, save_models=args.save_models))


if __name__ == "__main__":
    raise SystemExit(main())
