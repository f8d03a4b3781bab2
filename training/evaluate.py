"""Measure the embedded head on its own test split, or any models on a labelled CSV.

Without `--data`: `python -m training.evaluate [--split test|validation] [--head FILE]` reads the
split definition and precision stored with the head weights (`training.train_head` writes them),
rebuilds the split from `../shared/datasets` (or `--data-dir`), refuses weights whose split is
missing or does not match the data, and reports accuracy with its Wilson 95 % interval, macro-F1,
per-class recall, and the same per subset, per domain (news / social) and for crypto mentions.

With `--data FILE`: accuracy, macro-F1 and the confusion matrix (rows gold, columns predicted,
order bearish/neutral/bullish) for every available model and for the ensemble. Models that are
not available (offline and not cached) are listed with their reason instead of numbers.

Neither mode scores a text the embedded head was trained on unless `--allow-training-rows` says
so: the head's split is checked against the `train_keys` stored with its weights (whichever weights
ship), and with `--data` those rows are left out for every model, so all are compared on the same
rows. `--dataset fiqa|twitter-financial-news` names the file's public dataset: a hub model whose
card says it was fine-tuned on it (`catalog.TRAINING_DATA`) is then listed as not scored.

Examples::

    python -m training.evaluate                      # the embedded head on its test split
    python -m training.evaluate --data ../shared/datasets/fiqa_sentiment/fiqa.csv \\
        --text-col sentence --label-col score --signed --dataset fiqa
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.config import InferenceSection
from core.records import SentimentResult
from inference.catalog import (
    CANONICAL_LABELS,
    DEFAULT_MODELS,
    EMBEDDED_MODEL_ID,
    FIQA_2018,
    LEXICON_MODEL_ID,
    TWITTER_FINANCIAL_NEWS,
    training_data,
)
from inference.errors import ModelLoadError
from inference.head import HEAD_WEIGHTS_PATH, load_embedded_classifier, read_head_file, sha256_of
from inference.loader import LoadOptions, hub_offline, resolve_device
from inference.service import InferenceService
from inference.trainingrows import head_train_keys, key_hash, training_overlap

from .datasets import LabelledTexts, default_datasets_dir, parse_label_map, read_labelled_csv, read_signed_csv
from .headeval import report as split_report, score_rows
from .splits import SPLITS, SplitMismatch, definition_summary, verify_split

__all__ = ["DATASETS", "check_head_split", "evaluate_head", "leave_out_training_rows", "main", "metrics_for", "run"]

# `--dataset` names, as the catalog records what each model was fine-tuned on.
DATASETS = {"fiqa": FIQA_2018, "twitter-financial-news": TWITTER_FINANCIAL_NEWS}


def metrics_for(gold: Sequence[str], results: Sequence[SentimentResult], *, signed: bool) -> dict[str, Any]:
    """Accuracy, macro-F1 and confusion matrix; `signed` compares the sign of the score instead."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    if signed:
        predicted = ["bullish" if result.score > 0 else "bearish" for result in results]
        labels = ["bearish", "bullish"]
    else:
        predicted = [result.label for result in results]
        labels = list(CANONICAL_LABELS)
    return {
        "n": len(gold),
        "accuracy": round(float(accuracy_score(gold, predicted)), 4),
        "macro_f1": round(
            float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)), 4
        ),
        "labels": labels,
        "confusion": confusion_matrix(gold, predicted, labels=labels).tolist(),
    }


async def run(
    data: LabelledTexts,
    *,
    models: Sequence[str],
    domain: str,
    signed: bool,
    batch: int = 256,
    device: str = "auto",
    precision: str = "auto",
    weights: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """Score the data with each available model (no fallback) and with the ensemble."""
    section = InferenceSection(
        models=tuple(models) or (LEXICON_MODEL_ID,),  # none named: the lexicon alone
        device=device,
        inference_precision=precision,
        self_evaluate=False,
        hf_hub_offline=hub_offline(),
    )
    service = InferenceService(section, runtime_dir=None, stats_store=None, weights=weights)
    await service.start()
    try:
        await service.wait_until_loaded()
        report: dict[str, Any] = {}
        for described in service.describe_models():
            model_id = described["id"]
            if described["status"] != "available":
                report[model_id] = {"status": described["status"], "error": described["error"]}
                continue
            results: list[SentimentResult] = []
            for start in range(0, len(data.texts), batch):
                results += await service.score(
                    data.texts[start : start + batch],
                    domain=domain,  # type: ignore[arg-type]
                    model=model_id,
                    fallback=False,
                )
            report[model_id] = metrics_for(data.labels, results, signed=signed)
        ensemble: list[SentimentResult] = []
        for start in range(0, len(data.texts), batch):
            ensemble += await service.score(data.texts[start : start + batch], domain=domain)  # type: ignore[arg-type]
        report["ensemble"] = metrics_for(data.labels, ensemble, signed=signed) | {"model": ensemble[0].model}
        return report
    finally:
        await service.stop()


def check_head_split(head: Path, data_dir: Path) -> tuple[dict[str, str], Any]:
    """Read the head's metadata and rebuild its stored split from `data_dir`.

    Raises:
        SplitMismatch: no split or precision stored, or a split that differs from the data's.
        ModelLoadError: the weights file is missing or unreadable.
        OSError, ValueError: the data cannot be read.
    """
    _, metadata = read_head_file(head)
    split = verify_split(metadata.get("split"), data_dir)
    if not metadata.get("eval_precision"):
        raise SplitMismatch(f"{head}: no eval_precision stored with the weights; retrain with training.train_head")
    return metadata, split


def evaluate_head(
    head: Path,
    data_dir: Path,
    *,
    part: str = "test",
    device: str = "cpu",
    precision: str | None = None,
    allow_training_rows: bool = False,
) -> dict[str, Any]:
    """Score the head on one part of its verified split, in the stored precision unless told otherwise.

    Raises:
        SplitMismatch, ModelLoadError, OSError, ValueError: see `check_head_split`.
    """
    metadata, split = check_head_split(head, data_dir)
    trained_on = metadata.get("trained_on", "train").split(",")
    if part in trained_on:
        raise SplitMismatch(
            f"{head} was trained on the {part} part ({'+'.join(trained_on)}); only the others measure it"
        )
    stored = metadata["eval_precision"]
    used = precision or stored
    rows = split.part(part)
    trained = head_train_keys(head) or set()
    seen = sum(key_hash(row.key) in trained for row in rows)
    if seen and not allow_training_rows:
        raise SplitMismatch(
            f"{seen} of the {len(rows)} {part} texts are among the texts these weights were trained on "
            "(train_keys stored with them); pass --allow-training-rows to score them anyway"
        )
    classifier = load_embedded_classifier(
        LoadOptions(device=resolve_device(device), precision=used, offline=True), head
    )
    groups = split_report(rows, score_rows(classifier, rows))
    return {
        EMBEDDED_MODEL_ID: {
            **{key: groups["overall"][key] for key in ("n", "accuracy", "macro_f1")},
            "split": part,
            "precision": used,
            "stored_precision": stored,
            "weights_sha256": sha256_of(head),
            "trained_on": trained_on,
            "temperature": float(metadata.get("temperature", "1.0")),
            "split_definition": definition_summary(split.definition),
            "groups": groups,
        }
    }


def leave_out_training_rows(
    data: LabelledTexts, models: Sequence[str], head: Path, dataset: str | None
) -> tuple[LabelledTexts, list[str], dict[str, dict[str, Any]], str | None]:
    """Drop the rows the embedded head was trained on (for every model), and the models trained on `dataset`.

    Returns:
        (the rows to score, the models to score, {model left out: its report entry}, a note on the
        rows left out or None).
    """
    source = DATASETS[dataset] if dataset else None
    kept_models: list[str] = []
    left_out: dict[str, dict[str, Any]] = {}
    for model_id in models:
        seen = training_data(model_id).datasets or ()
        if source in seen and model_id != EMBEDDED_MODEL_ID:  # the head's own rows are matched one by one below
            evidence = training_data(model_id).evidence
            left_out[model_id] = {"status": "excluded", "error": f"not scored: fine-tuned on {source} ({evidence})"}
        else:
            kept_models.append(model_id)
    if EMBEDDED_MODEL_ID not in kept_models:
        return data, kept_models, left_out, None
    overlap = training_overlap(EMBEDDED_MODEL_ID, data.texts, None, train_keys=head_train_keys(head))
    if not overlap.excluded:
        return data, kept_models, left_out, None
    keep = [i for i in range(len(data.texts)) if i not in overlap.excluded]
    note = (
        f"left out {len(overlap.excluded)} of {len(data.texts)} rows for every model: {EMBEDDED_MODEL_ID} "
        f"was trained on them (train_keys stored in {head.name}); --allow-training-rows keeps them"
    )
    return LabelledTexts([data.texts[i] for i in keep], [data.labels[i] for i in keep]), kept_models, left_out, note


def _print_head_report(report: dict[str, Any]) -> None:
    for model_id, numbers in report.items():
        note = "" if numbers["precision"] == numbers["stored_precision"] else " (NOT the stored precision)"
        definition = numbers["split_definition"]
        print(
            f"{model_id} on its {numbers['split']} split (seed {definition['seed']}, "
            f"{definition['normalisation']}, test digest {definition['test_digest']}), "
            f"precision {numbers['precision']}{note}"
        )
        print(
            f"  {'group':<22} {'n':>5} {'accuracy':>8} {'95% CI':>15} {'macro-F1':>8} {'95% CI':>15} {'ECE':>6}"
            f" {'if cal.':>7} {'p':>5}  recall bear/neu/bull  sign"
        )
        for name, group in numbers["groups"].items():
            low, high = group["accuracy_ci95"]
            f1_low, f1_high = group["macro_f1_ci95"]
            recall = "/".join("-" if value is None else f"{value:.2f}" for value in group["recall"].values())
            sign = f"{group['sign_accuracy']:.4f}" if "sign_accuracy" in group else ""
            print(
                f"  {name:<22} {group['n']:>5} {group['accuracy']:>8.4f} [{low:.3f}, {high:.3f}] "
                f"{group['macro_f1']:>8.4f} [{f1_low:.3f}, {f1_high:.3f}] {group['ece']:>6.4f} "
                f"{group['ece_if_calibrated']:>7.4f} {group['ece_p']:>5.2f}  {recall:<20} {sign}"
            )


def _main_head(args: argparse.Namespace) -> int:
    try:
        report = evaluate_head(
            args.head,
            args.data_dir,
            part=args.split,
            device=args.device,
            precision=args.precision,
            allow_training_rows=args.allow_training_rows,
        )
    except SplitMismatch as exc:
        print(f"error: refusing to evaluate {args.head}: {exc}", file=sys.stderr)
        return 2
    except (ModelLoadError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
    else:
        _print_head_report(report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description="Evaluate the embedded head on its stored split, or models on a labelled CSV (--data)."
    )
    parser.add_argument("--data", type=Path, default=None, help="a labelled CSV; without it: the head's split")
    parser.add_argument("--split", choices=SPLITS[1:], default="test", help="without --data: which part")
    parser.add_argument("--head", type=Path, default=HEAD_WEIGHTS_PATH, help="without --data: the head weights")
    parser.add_argument(
        "--data-dir", type=Path, default=default_datasets_dir(os.environ), help="without --data: the datasets folder"
    )
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--label-col", default="label")
    parser.add_argument(
        "--label-map",
        default="0=bearish,1=bullish,2=neutral",
        help="class code -> label pairs (default: twitter-financial-news-sentiment)",
    )
    parser.add_argument(
        "--signed", action="store_true", help="the label column is a score in [-1, 1]: compare signs (FiQA)"
    )
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N texts only")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model ids")
    parser.add_argument("--domain", choices=["news", "social"], default="news")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precision",
        default=None,
        help="auto, fp32, bf16, fp16 (CUDA) or int8 (CPU); default: the stored one for the head, else auto",
    )
    parser.add_argument(
        "--weights",
        type=json.loads,
        default=None,
        help='ensemble weight overrides as JSON, e.g. \'{"lexicon": {"social": 0.2}}\'',
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument(
        "--allow-training-rows",
        action="store_true",
        help="score texts the embedded head was trained on (and models trained on --dataset) anyway",
    )
    parser.add_argument(
        "--dataset", choices=sorted(DATASETS), default=None, help="with --data: the public dataset the file is from"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.data is None:
        return _main_head(args)

    try:
        if args.signed:
            data = read_signed_csv(args.data, text_col=args.text_col, score_col=args.label_col)
        else:
            data = read_labelled_csv(
                args.data,
                text_col=args.text_col,
                label_col=args.label_col,
                label_map=parse_label_map(args.label_map),
            )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        data = LabelledTexts(data.texts[: args.limit], data.labels[: args.limit])
    models = [model for model in args.models.split(",") if model.strip()]
    left_out: dict[str, dict[str, Any]] = {}
    if not args.allow_training_rows:
        data, models, left_out, note = leave_out_training_rows(data, models, args.head, args.dataset)
        if note:
            print(f"note: {note}", file=sys.stderr)
        if not data.texts:
            print("error: no row left to score once the training rows are out", file=sys.stderr)
            return 2
    report = left_out | asyncio.run(
        run(
            data,
            models=models,
            domain=args.domain,
            signed=args.signed,
            device=args.device,
            precision=args.precision or "auto",
            weights=args.weights,
        )
    )
    if args.json:
        print(json.dumps(report))
        return 0
    for model_id, numbers in report.items():
        if "accuracy" not in numbers:
            print(f"{model_id}: {numbers['status']} ({numbers['error']})")
            continue
        print(
            f"{model_id}: n={numbers['n']} accuracy={numbers['accuracy']:.4f} "
            f"macro_f1={numbers['macro_f1']:.4f}"
        )
        print("  confusion (rows gold, cols predicted: " + "/".join(numbers["labels"]) + ")")
        for label, row in zip(numbers["labels"], numbers["confusion"], strict=True):
            print(f"    {label:>8} {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
