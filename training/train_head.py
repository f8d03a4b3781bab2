"""Train the embedded model: `python -m training.train_head --data-dir DIR [--balance] [--refit ...]`.

Recipe (chosen on the validation part, docs/inference.md): fine-tune all six encoder layers of
all-MiniLM-L6-v2 together with an MLP over the L2-normalised mean pools of the last three layers;
the embeddings (tokens and positions) stay the verified base's, so the weights file holds the six
layers (fp16) and the head. With `--ngram` a logistic regression over word and character n-grams
(`training/ngrams.py`) is fitted on the same rows and stored in the file; the served answer adds
W times its log-probabilities to MiniLM's logits, W fitted on validation with the temperature.
With `--extra-tweets` the tweet dataset's own validation file joins the training rows (only the
tweets the split never saw: `splits.extra_training_rows`), in both steps below. With `--teacher`
the loss also follows a larger model's answers (`training/teacher.py`), and `--teacher-variants`
adds new texts that only the teacher labelled (`training/variants.py`): the shipped weights use
both (docs/inference.md). Training cuts texts at 64 tokens (99.9 % of the data is shorter); the
served model reads 128, as before.

1. `python -m training.train_head --out cand.safetensors [--balance]` trains on the train part,
   scores the saved file on validation and fits one softmax temperature per domain there.
2. `python -m training.train_head --refit --calibration-from cand.safetensors` trains the chosen
   recipe on train + validation (the shipped weights) and carries over the temperatures fitted on
   validation by step 1: a refit model has seen validation, so it cannot be calibrated on it.

The test part is never read here: `python -m training.evaluate` measures it once.

Deterministic: fixed seeds, fixed thread count, deterministic torch algorithms, fixed batch
order; the same torch build and `--threads` reproduce bit-identical tensors and metadata. A
distilled run needs the same teacher files too (their SHA-256 is part of the recipe); the teacher
and its variants reproduce to the digit on the same machine and torch build, but its bf16 kernels
differ between CPUs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inference.catalog import CANONICAL_LABELS
from inference.classifier import TransformersClassifier
from inference.head import (
    HEAD_FORMAT,
    HEAD_WEIGHTS_PATH,
    MINILM_SHA256,
    FinHeadModel,
    build_finhead_model,
    find_minilm,
    finhead_config,
    load_minilm_encoder,
    read_head_file,
    sha256_of,
)
from inference.loader import LoadOptions
from inference.selfeval import expected_calibration_error

from .command import run_training_command
from .datasets import FIQA_FILE, TWITTER_EXTRA_FILE, TWITTER_FILE, default_datasets_dir
from .headeval import report, score_rows
from .ngrams import fit_ngram_model
from .splits import SplitRow, build_split, extra_training_rows, train_key_hashes

__all__ = [
    "TRAIN_PRECISION",
    "fit_blend_weight",
    "fit_temperature",
    "label_rows",
    "main",
    "one_cycle_adamw",
    "softmax",
    "train",
]

logger = logging.getLogger("training.train_head")

TRAIN_PRECISION = "fp32"  # trained in fp32 on CPU; the six layers are stored in fp16 and scored as loaded
STORED_DTYPE = torch.float16
# The window the served model reads: as before, so a long news item costs what it did. Training
# cuts at 64 tokens (longer texts are 0.1 % of the data); the position embeddings stay the base's.
SERVE_MAX_LENGTH = 128
_TEMPERATURES = np.round(np.arange(0.5, 4.0001, 0.01), 2)


def one_cycle_adamw(
    encoder: Iterable[nn.Parameter], lr: float, head: Iterable[nn.Parameter], head_lr: float, total_steps: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.OneCycleLR]:
    """AdamW (weight decay 0.01) with a linear one-cycle schedule, 10 % warm-up, for an encoder and its head."""
    optimizer = torch.optim.AdamW(
        [{"params": list(encoder), "lr": lr}, {"params": list(head), "lr": head_lr}], weight_decay=1e-2
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[lr, head_lr], total_steps=total_steps, pct_start=0.1, anneal_strategy="linear"
    )
    return optimizer, schedule


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


def _matrix(probs: Sequence[Mapping[str, float]]) -> np.ndarray:
    return np.array([[p.get(label, 0.0) for label in CANONICAL_LABELS] for p in probs], dtype=np.float64)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a (texts, classes) matrix."""
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result


def label_rows(matrix: np.ndarray) -> list[dict[str, float]]:
    """One {label: probability} dict per row of a (texts, classes) matrix in CANONICAL_LABELS order."""
    return [dict(zip(CANONICAL_LABELS, map(float, row), strict=True)) for row in matrix]


def _scaled(matrix: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(np.log(np.clip(matrix, 1e-12, 1.0)) / temperature)


def _gold(labels: Sequence[str]) -> np.ndarray:
    return np.array([CANONICAL_LABELS.index(label) for label in labels])


def _log_losses(matrix: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """The log loss of `matrix` rescaled by each temperature of the grid."""
    rows = np.arange(len(gold))
    return np.array([-np.mean(np.log(np.clip(_scaled(matrix, t)[rows, gold], 1e-12, 1.0))) for t in _TEMPERATURES])


def fit_temperature(probs: Sequence[Mapping[str, float]], labels: Sequence[str]) -> dict[str, float]:
    """Fit a softmax temperature by log-loss on a grid (0.50-4.00); report ECE before and after."""
    matrix = _matrix(probs)
    gold = _gold(labels)
    best = float(_TEMPERATURES[int(np.argmin(_log_losses(matrix, gold)))])
    return {
        "temperature": best,
        "n": len(gold),
        "ece_before": round(expected_calibration_error(matrix, gold), 4),
        "ece_after": round(expected_calibration_error(_scaled(matrix, best), gold), 4),
    }


_BLEND_WEIGHTS = np.round(np.arange(0.0, 2.0001, 0.1), 1)


def _blended(matrix: np.ndarray, ngram_log_probs: np.ndarray, weight: float) -> np.ndarray:
    """softmax(log P + weight * n-gram log-probs): what the served classifier answers at T = 1."""
    return softmax(np.log(np.clip(matrix, 1e-12, 1.0)) + weight * ngram_log_probs)


def fit_blend_weight(
    probs: Sequence[Mapping[str, float]], ngram_log_probs: np.ndarray, labels: Sequence[str]
) -> dict[str, object]:
    """Choose the n-gram voice's weight W on a grid (0-2) by the log loss of the blend at its best temperature.

    Log loss rather than accuracy: it moves smoothly with W, so the choice is less at the mercy of a
    few texts near a decision boundary.
    """
    matrix, gold = _matrix(probs), _gold(labels)
    losses = {
        weight: round(float(_log_losses(_blended(matrix, ngram_log_probs, weight), gold).min()), 5)
        for weight in map(float, _BLEND_WEIGHTS)
    }
    best = min(losses, key=lambda weight: (losses[weight], weight))
    return {"weight": best, "log_loss": {str(weight): loss for weight, loss in losses.items()}}


def calibrate(rows: Sequence[SplitRow], probs: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """One temperature per domain and one over all rows, fitted on `rows` (validation)."""
    out = {"all": fit_temperature(probs, [row.label for row in rows])}
    for domain in sorted({row.domain for row in rows}):
        members = [i for i, row in enumerate(rows) if row.domain == domain]
        out[domain] = fit_temperature([probs[i] for i in members], [rows[i].label for i in members])
    return out


def train(
    data_dir: Path,
    out: Path = HEAD_WEIGHTS_PATH,
    *,
    seed: int = 0,
    epochs: int = 3,
    lr: float = 5e-5,
    head_lr: float = 1e-3,
    hidden: int = 256,
    batch_size: int = 32,
    max_length: int = 64,
    threads: int = 2,
    limit: int | None = None,
    split_seed: int = 0,
    balance: bool = False,
    refit: bool = False,
    calibration_from: Path | None = None,
    apply_temperature: str = "news",
    ngram: bool = False,
    ngram_c: float = 5.0,
    ngram_min_df: int = 2,
    extra_tweets: bool = False,
    teacher: Path | None = None,
    distill_weight: float = 0.5,
    distill_temperature: float = 2.0,
    teacher_variants: Path | None = None,
) -> dict[str, object]:
    """Fine-tune the encoder and head, save them to `out` and score the saved file on validation.

    `refit` trains on train + validation; its calibration (and validation figures, labelled as
    those of the train-only run) come from `calibration_from`, a train-only run of the same recipe.
    """
    config: dict[str, object] = {
        "seed": seed,
        "epochs": epochs,
        "lr": lr,
        "head_lr": head_lr,
        "hidden": hidden,
        "batch_size": batch_size,
        "max_length": max_length,
        "threads": threads,
        "limit": limit,
        "balance": balance,
        "ngram": ngram,
        "ngram_c": ngram_c,
        "ngram_min_df": ngram_min_df,
        "refit": refit,
        "torch": torch.__version__,
        "data": [TWITTER_FILE, FIQA_FILE, *([TWITTER_EXTRA_FILE] if extra_tweets else [])],
    }
    if extra_tweets:  # the file's SHA-256: a refit must train on the same extra rows
        config["extra_tweets"] = sha256_of(data_dir / TWITTER_EXTRA_FILE)
    if teacher is not None:  # its SHA-256: a refit must learn from the same answers
        config |= {
            "teacher": sha256_of(teacher),
            "distill_weight": distill_weight,
            "distill_temperature": distill_temperature,
        }
    if teacher_variants is not None:  # its SHA-256, like the teacher's
        if teacher is None:
            raise ValueError("teacher variants are learnt alongside the teacher's answers: pass the teacher too")
        config["teacher_variants"] = sha256_of(teacher_variants)
    donor = _refit_donor(calibration_from, config) if refit else None  # checked before hours of training
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.set_flush_denormal(True)
    started = time.monotonic()

    split = build_split(data_dir, seed=split_seed)
    train_rows = split.train + split.validation if refit else list(split.train)
    if extra_tweets:  # training rows only: validation and test stay the split's
        train_rows += extra_training_rows(data_dir)
    validation_rows = [] if refit else list(split.validation)
    if limit is not None:  # a quick reproducibility check, not a model to ship
        train_rows, validation_rows = train_rows[:limit], validation_rows[:limit]
    texts = [row.text for row in train_rows]
    target = torch.tensor([CANONICAL_LABELS.index(row.label) for row in train_rows])
    row_weights = _row_weights(train_rows, balance)
    teacher_probs = _teacher_probs(teacher, texts, distill_temperature) if teacher is not None else None
    # The share of each row's loss that follows the teacher: a variant has no gold label, only the teacher's answer.
    distill_share = torch.full((len(texts),), distill_weight)
    originals = len(texts)
    if teacher_variants is not None and teacher_probs is not None:
        variant_texts, variant_probs, origin = _variant_rows(teacher_variants, texts, distill_temperature)
        texts += variant_texts
        target = torch.cat([target, torch.full((len(variant_texts),), -100)])
        row_weights = torch.cat([row_weights, row_weights[origin]])
        teacher_probs = torch.cat([teacher_probs, variant_probs])
        distill_share = torch.cat([distill_share, torch.ones(len(variant_texts))])
    # Offline on purpose: the pinned digest makes the cached/packaged copy the same bytes as the hub's.
    source = find_minilm(LoadOptions(offline=True))
    logger.info(
        "train: %d training texts (%s) and %d variants, %d validation, test untouched; MiniLM from %s",
        len(train_rows),
        "train + validation" if refit else "train",
        len(texts) - originals,
        len(validation_rows),
        source.origin,
    )

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.path, local_files_only=True)
    pool_layers = [4, 5, 6]
    model = FinHeadModel(finhead_config(source.path, pool_layers=pool_layers, hidden=hidden))
    load_minilm_encoder(model, source.path)
    for parameter in model.bert.embeddings.parameters():  # the verified base's embeddings are kept
        parameter.requires_grad = False
    batches = []
    for batch in _batches(texts, range(len(texts)), batch_size):
        encoded = tokenizer(
            [texts[i] for i in batch], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        batches.append((batch, dict(encoded)))

    optimizer, schedule = one_cycle_adamw(
        model.bert.encoder.parameters(), lr, model.head.parameters(), head_lr, epochs * len(batches)
    )
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    order_gen = torch.Generator().manual_seed(seed)
    model.train()
    epoch_seconds = []
    for epoch in range(epochs):
        epoch_start, total = time.monotonic(), 0.0
        for step, k in enumerate(torch.randperm(len(batches), generator=order_gen).tolist()):
            batch, encoded = batches[k]
            logits = model(**encoded).logits
            weights = row_weights[batch]
            per_row = loss_fn(logits, target[batch])
            if teacher_probs is not None:  # Hinton et al.'s T^2 keeps the two terms' gradients comparable
                log_student = torch.log_softmax(logits / distill_temperature, dim=-1)
                soft = teacher_probs[batch]
                divergence = (soft * (soft.clamp_min(1e-12).log() - log_student)).sum(-1)
                share = distill_share[batch]
                per_row = (1 - share) * per_row + share * distill_temperature**2 * divergence
            loss = (per_row * weights).sum() / weights.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.detach().item()
            if step % 50 == 0:
                logger.info(
                    "train: epoch %d step %d/%d %.0fs", epoch + 1, step, len(batches), time.monotonic() - epoch_start
                )
        epoch_seconds.append(round(time.monotonic() - epoch_start))
        logger.info("train: epoch %d/%d loss %.4f in %.0fs", epoch + 1, epochs, total / len(batches), epoch_seconds[-1])

    tensors = {
        f"encoder.{key}": value.detach().to(STORED_DTYPE).contiguous()
        for key, value in model.bert.encoder.state_dict().items()
    }
    tensors |= {f"head.{key}": value.detach().clone().contiguous() for key, value in model.head.state_dict().items()}
    # The n-gram voice learns from the same labelled rows as the encoder (not the variants, which have no label).
    voice = (
        fit_ngram_model(texts[:originals], target[:originals].tolist(), min_df=ngram_min_df, c=ngram_c)
        if ngram
        else None
    )
    if voice is not None:
        tensors |= voice.to_tensors()
    metadata = {
        "format": HEAD_FORMAT,
        "pool_layers": ",".join(map(str, pool_layers)),
        "hidden": str(hidden),
        "max_length": str(SERVE_MAX_LENGTH),
        "train_max_length": str(max_length),
        "labels": ",".join(CANONICAL_LABELS),
        "base_sha256": MINILM_SHA256,
        "encoder_dtype": "fp16",
        "train_config": json.dumps(config),
        # The split and precision travel with the weights: training.evaluate rebuilds and checks them.
        "split": split.definition.to_json(),
        "trained_on": "train,validation" if refit else "train",
        "train_keys": train_key_hashes(train_rows, texts[originals:]),
        "train_precision": TRAIN_PRECISION,
        "eval_precision": TRAIN_PRECISION,
        "temperature": "1.0",
        "ngram_weight": "0",  # the blend weight, fitted on validation below (0: MiniLM alone)
    }
    _save(tensors, metadata, out)

    metrics: dict[str, object]
    if donor is not None:
        metadata["ngram_weight"] = donor.get("ngram_weight", "0")
        calibration = json.loads(donor["calibration"])
        metrics = json.loads(donor["metrics"]) | {"validation_of": f"train-only run {donor['train_config']}"}
    else:
        # Score the file as saved (fp16 layers read back), through the service's loading path.
        saved = build_finhead_model(source.path, out)
        classifier = TransformersClassifier("embedded", saved, tokenizer, CANONICAL_LABELS, max_length=max_length)
        probs = score_rows(classifier, validation_rows)
        blend: dict[str, object] = {}
        if voice is not None:
            ngram_log_probs = voice.log_probs([row.text for row in validation_rows])
            blend = fit_blend_weight(probs, ngram_log_probs, [row.label for row in validation_rows])
            metadata["ngram_weight"] = str(blend["weight"])
            blended = _blended(_matrix(probs), ngram_log_probs, float(blend["weight"]))  # type: ignore[arg-type]
            probs = label_rows(blended)
        metrics = {"validation": report(validation_rows, probs)}
        calibration = calibrate(validation_rows, probs) | ({"ngram_blend": blend} if blend else {})
    metadata["calibration"] = json.dumps(calibration)
    metadata["temperature_domain"] = apply_temperature
    if apply_temperature != "none":
        metadata["temperature"] = str(calibration[apply_temperature]["temperature"])
    metadata["metrics"] = json.dumps(metrics)  # no timings in the file: its contents must reproduce
    _save(tensors, metadata, out)
    return metrics | {
        "calibration": calibration,
        "epoch_seconds": epoch_seconds,
        "train_seconds": round(time.monotonic() - started, 1),
    }


# What a refit shares with the train-only run whose blend weight and temperatures it keeps, with
# the value that a run made before the key existed had.
_RECIPE_KEYS: dict[str, object] = {
    "seed": None,
    "epochs": None,
    "lr": None,
    "head_lr": None,
    "hidden": None,
    "batch_size": None,
    "max_length": None,
    "balance": False,
    "ngram": False,
    "ngram_c": 5.0,
    "ngram_min_df": 2,
    "extra_tweets": None,
    "teacher": None,
    "distill_weight": None,
    "distill_temperature": None,
    "teacher_variants": None,
}


def _teacher_probs(teacher: Path, texts: Sequence[str], temperature: float) -> torch.Tensor:
    """The teacher's answers for `texts`, softened at `temperature`, from its logits file.

    Raises:
        ValueError: the file has no answer for some training text.
    """
    stored = np.load(teacher, allow_pickle=False)
    by_text = dict(zip(stored["texts"].tolist(), stored["logits"], strict=True))
    missing = [text for text in texts if text not in by_text]
    if missing:
        raise ValueError(f"{teacher} has no answer for {len(missing)} training texts, e.g. {missing[0]!r}")
    logits = torch.tensor(np.stack([by_text[text] for text in texts]), dtype=torch.float32)
    return torch.softmax(logits / temperature, dim=-1)


def _variant_rows(
    variants: Path, texts: Sequence[str], temperature: float
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """The variants of `texts` in a `training.variants` file: their texts, softened answers and origins' indices."""
    with np.load(variants, allow_pickle=False) as stored:  # each `stored[name]` reads the array from the file
        variant_texts, origins, all_logits = stored["texts"].tolist(), stored["origins"].tolist(), stored["logits"]
    position = {text: i for i, text in enumerate(texts)}
    kept = [i for i, origin in enumerate(origins) if origin in position]
    logits = torch.tensor(all_logits[kept], dtype=torch.float32)
    origin_index = torch.tensor([position[origins[i]] for i in kept], dtype=torch.long)
    return [variant_texts[i] for i in kept], torch.softmax(logits / temperature, dim=-1), origin_index


def _refit_donor(calibration_from: Path | None, config: Mapping[str, object]) -> dict[str, str]:
    """The metadata of the train-only run of the same recipe, whose weight and temperatures a refit keeps.

    Raises:
        ValueError: no such run named, or one made with another recipe (said key by key).
    """
    if calibration_from is None:
        raise ValueError("--refit needs --calibration-from: the train-only run of the same recipe")
    _, donor = read_head_file(calibration_from)
    donor_config = json.loads(donor.get("train_config", "{}"))
    differences = [
        f"{key} {donor_config.get(key, default)!r} there, {config.get(key, default)!r} here"
        for key, default in _RECIPE_KEYS.items()
        if donor_config.get(key, default) != config.get(key, default)
    ]
    if differences:
        raise ValueError(
            f"{calibration_from} was trained with another recipe ({'; '.join(differences)}): "
            "its blend weight and temperatures were fitted for it"
        )
    return donor


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
        help="folder holding twitter_financial_news_sentiment/train.csv and fiqa_sentiment/fiqa.csv "
        "(default: DATASETS_DIR or ../shared/datasets beside the repo)",
    )
    parser.add_argument("--out", type=Path, default=HEAD_WEIGHTS_PATH)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate of the encoder layers")
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="first N rows only (reproducibility check)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation/test split")
    parser.add_argument("--balance", action="store_true", help="weight rows by n^-1/2 of their (subset, label) group")
    parser.add_argument("--refit", action="store_true", help="train on train + validation (the shipped weights)")
    parser.add_argument(
        "--calibration-from",
        type=Path,
        default=None,
        help="with --refit: the train-only run whose temperatures to keep",
    )
    parser.add_argument(
        "--apply-temperature",
        choices=["news", "social", "all", "none"],
        default="news",
        help="which validation-fitted temperature the model applies at load (it does not see the domain)",
    )
    parser.add_argument(
        "--ngram",
        action="store_true",
        help="blend in a logistic regression over word and character n-grams (weight fitted on validation)",
    )
    parser.add_argument("--ngram-c", type=float, default=5.0, help="inverse L2 strength of the n-gram regression")
    parser.add_argument("--ngram-min-df", type=int, default=2, help="keep n-grams found in at least this many texts")
    parser.add_argument(
        "--extra-tweets",
        action="store_true",
        help=f"also train on {TWITTER_EXTRA_FILE} (the tweet dataset's own validation split): "
        "the tweets the split never saw, as training rows only",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        default=None,
        help="an .npz of a larger model's logits (arrays texts, logits) for every training text: distil from it",
    )
    parser.add_argument("--distill-weight", type=float, default=0.5, help="share of the loss that follows the teacher")
    parser.add_argument("--distill-temperature", type=float, default=2.0, help="softmax temperature of both answers")
    parser.add_argument(
        "--teacher-variants",
        type=Path,
        default=None,
        help="with --teacher: a python -m training.variants file; the variants of the training texts join the rows, "
        "learning from the teacher's answer alone",
    )
    args = parser.parse_args(argv)

    def work() -> dict[str, object]:
        if args.teacher is not None and not args.teacher.is_file():
            raise ValueError(f"{args.teacher} not found; python -m training.teacher writes it")
        if args.teacher_variants is not None and (args.teacher is None or not args.teacher_variants.is_file()):
            raise ValueError(f"--teacher-variants needs --teacher and an existing file ({args.teacher_variants}); "
                             "python -m training.variants writes it")
        return train(
            args.data_dir,
            args.out,
            seed=args.seed,
            epochs=args.epochs,
            lr=args.lr,
            head_lr=args.head_lr,
            max_length=args.max_length,
            threads=args.threads,
            limit=args.limit,
            split_seed=args.split_seed,
            balance=args.balance,
            refit=args.refit,
            calibration_from=args.calibration_from,
            apply_temperature=args.apply_temperature,
            ngram=args.ngram,
            ngram_c=args.ngram_c,
            ngram_min_df=args.ngram_min_df,
            extra_tweets=args.extra_tweets,
            teacher=args.teacher,
            distill_weight=args.distill_weight,
            distill_temperature=args.distill_temperature,
            teacher_variants=args.teacher_variants,
        )

    return run_training_command(args.data_dir, extra_tweets=args.extra_tweets, work=work)


if __name__ == "__main__":
    raise SystemExit(main())
