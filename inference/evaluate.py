"""Measure models on a labelled CSV: `python -m inference.evaluate --data FILE ...`.

Prints accuracy, macro-F1 and the confusion matrix (rows gold, columns predicted, order
bearish/neutral/bullish) for every available model and for the ensemble. Models that are not
available (offline and not cached) are listed with their reason instead of numbers.

Examples::

    python -m inference.evaluate --data ../shared/datasets/twitter_financial_news_sentiment/train.csv \\
        --text-col text --label-col label --label-map 0=bearish,1=bullish,2=neutral --heldout
    python -m inference.evaluate --data ../shared/datasets/fiqa_sentiment/fiqa.csv \\
        --text-col sentence --label-col score --signed
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.records import SentimentResult

from .catalog import CANONICAL_LABELS, DEFAULT_MODELS
from .datasets import LabelledTexts, heldout_split, parse_label_map, read_labelled_csv, read_signed_csv
from .service import InferenceService

__all__ = ["main", "metrics_for", "run"]


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
    **service_kwargs: Any,
) -> dict[str, Any]:
    """Score the data with each available model (no fallback) and with the ensemble."""
    service = InferenceService(models, data_dir=None, **service_kwargs)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Evaluate sentiment models on a labelled CSV.")
    parser.add_argument("--data", type=Path, required=True)
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
    parser.add_argument(
        "--heldout",
        action="store_true",
        help="only the 15%% held-out split used by inference.train_head (seed 0)",
    )
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N texts only")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model ids")
    parser.add_argument("--domain", choices=["news", "social"], default="news")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16, fp16 (CUDA) or int8 (CPU)")
    parser.add_argument(
        "--weights",
        type=json.loads,
        default=None,
        help='ensemble weight overrides as JSON, e.g. \'{"lexicon": {"social": 0.2}}\'',
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

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
    if args.heldout:
        _, held = heldout_split(data.labels)
        data = LabelledTexts([data.texts[i] for i in held], [data.labels[i] for i in held])
    if args.limit:
        data = LabelledTexts(data.texts[: args.limit], data.labels[: args.limit])
    models = [model for model in args.models.split(",") if model.strip()]
    report = asyncio.run(
        run(
            data,
            models=models,
            domain=args.domain,
            signed=args.signed,
            device=args.device,
            precision=args.precision,
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
