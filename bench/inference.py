"""Inference speed and fidelity against fair baselines: `python -m bench.inference [--quick]`.

For each model, on the same texts, in the same process:

- (a) `pipeline_one_by_one_fp32`: a transformers `pipeline`, one text per call, fp32 (naive);
- (b) `pipeline_batched_sorted_fp32`: the same pipeline with `batch_size` and the inputs sorted by
  length, fp32 (the strong baseline: what anyone would write in ten minutes);
- (c) `engine_<variant>`: our `BatchEngine` fed by 32 concurrent callers of one text each, for
  every variant the device offers (torch fp32/bf16/int8, ONNX Runtime fp32/int8 on CPU;
  fp32/fp16/bf16 on CUDA), and `engine_auto`, the variant `auto` chose by measuring (the service's
  default; its gate reads a held-out slice written as a temporary evaluation file).

Models: a RoBERTa-base-shaped classifier (125M parameters, random weights, a byte-level BPE
tokenizer trained here; nothing is downloaded) for speed, and the embedded model (real weights)
for speed and label agreement against (a) on held-out texts. Random weights say nothing about
labels, which is why agreement is measured on the real model.

Then the service: one text at a time through `InferenceService` and through `POST /api/sentiment`
on a real uvicorn (loopback), against the embedded model's own single-text forward time; and 32
concurrent HTTP callers against one sequential caller, with the labels compared.

The machine is shared and timings wander: every cell gets a warm-up, cells run in alternating
rounds, and each keeps its best round (the same rule for all). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import logging
import multiprocessing
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from bench.figures import percentile
from inference.autotune import AutotuneOptions, machine_fingerprint, prepare_classifier
from inference.catalog import CANONICAL_LABELS, EMBEDDED_MODEL_ID
from inference.classifier import TransformersClassifier
from inference.engine import BatchEngine
from inference.executors import ModelExecutor
from inference.head import build_finhead_model, embedded_digest, find_minilm, load_embedded_classifier
from inference.loader import LoadOptions
from inference.runtimes import VARIANTS, build_variant, variants_for
from testbed.inference_fixtures import roberta_config, train_roberta_tokenizer
from training.datasets import FIQA_FILE, TWITTER_FILE, default_datasets_dir
from training.splits import build_split

__all__ = ["main"]

ROBERTA_LABELS = {0: "negative", 1: "neutral", 2: "positive"}
_CANONICAL = {"negative": "bearish", "positive": "bullish"}


def build_roberta_base(texts: Sequence[str], seed: int = 0) -> tuple[Any, Any]:
    """Return (fp32 RobertaForSequenceClassification with roberta-base shape, tokenizer)."""
    from transformers import RobertaForSequenceClassification

    tokenizer = train_roberta_tokenizer(texts, vocab_size=8000, min_frequency=2)
    torch.manual_seed(seed)
    # roberta-base: 12 layers, 768 wide, 50,265-token vocabulary (our tokenizer uses the first 8,000 ids).
    config = roberta_config(ROBERTA_LABELS, vocab_size=50265, max_position_embeddings=514)
    model = RobertaForSequenceClassification(config)
    model.eval()  # type: ignore[no-untyped-call]
    return model, tokenizer


def _top(probs: dict[str, float]) -> str:
    return max(CANONICAL_LABELS, key=lambda name: probs[name])


def run_pipeline_one_by_one(pipe: Any, texts: Sequence[str]) -> tuple[list[str], float]:
    """Call the pipeline one text at a time; return (canonical top labels, seconds)."""
    labels = []
    started = time.perf_counter()
    for text in texts:
        scores = pipe(text, top_k=None, truncation=True, max_length=128)
        top = max(scores, key=lambda item: item["score"])["label"]
        labels.append(_CANONICAL.get(top, top))
    return labels, time.perf_counter() - started


def run_pipeline_batched(pipe: Any, texts: Sequence[str], batch_size: int) -> tuple[list[str], float]:
    """Call the pipeline once with `batch_size` on length-sorted texts; return (labels, seconds)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    labels = [""] * len(texts)
    started = time.perf_counter()
    outputs = pipe([texts[i] for i in order], batch_size=batch_size, top_k=None, truncation=True, max_length=128)
    seconds = time.perf_counter() - started
    for index, scores in zip(order, outputs, strict=True):
        top = max(scores, key=lambda item: item["score"])["label"]
        labels[index] = _CANONICAL.get(top, top)
    return labels, seconds


async def run_engine(
    classifier: TransformersClassifier, texts: Sequence[str], *, concurrency: int, max_batch: int, max_wait_ms: float
) -> dict[str, Any]:
    """Feed the engine from `concurrency` callers, one text per request; return labels and timings."""
    executor = ModelExecutor(f"bench:{classifier.model_id}")
    engine = BatchEngine(
        classifier.predict_probs,
        name=classifier.model_id,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        executor=executor,
    )
    engine.start()
    labels: list[str] = [""] * len(texts)
    latencies: list[float] = []
    cursor = iter(range(len(texts)))

    async def caller() -> None:
        for index in cursor:  # shared iterator: each text is taken by exactly one caller
            sent = time.perf_counter()
            [probs] = await engine.submit([texts[index]])
            latencies.append((time.perf_counter() - sent) * 1000.0)
            labels[index] = _top(probs)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    await engine.stop()
    executor.shutdown()
    ordered = sorted(latencies)
    return {
        "labels": labels,
        "seconds": seconds,
        "p50_ms": round(statistics.median(ordered), 1),
        "p99_ms": percentile(ordered, 0.99, digits=1),
        "mean_batch": round(engine.texts_run / max(engine.batches_run, 1), 1),
    }


def _agreement(labels: Sequence[str], reference: Sequence[str]) -> float:
    return round(sum(a == b for a, b in zip(labels, reference, strict=True)) / len(reference), 4)


def write_evalset(path: Path, texts: Sequence[str], labels: Sequence[str]) -> Path:
    """Write texts in the bundled evaluation file's format (JSON lines: text, label, domain, source)."""
    with path.open("w", encoding="utf-8") as handle:
        for text, label in zip(texts, labels, strict=True):
            row = {"text": text, "label": label, "domain": "news", "source": "twitter-financial-news held-out"}
            handle.write(json.dumps(row) + "\n")
    return path


def measure_model(
    name: str,
    base: TransformersClassifier,
    pipe: Any,
    texts: Sequence[str],
    *,
    args: argparse.Namespace,
    autotune: AutotuneOptions,
    digest: str,
    rounds: int,
) -> dict[str, Any]:
    """Run (a), (b) and every engine cell on `texts` in alternating rounds; keep each cell's best."""
    engine_kwargs = {"concurrency": args.concurrency, "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms}
    variants: dict[str, TransformersClassifier] = {}
    errors: dict[str, str] = {}
    for variant in variants_for(args.device, args.exclude):
        try:
            variants[variant] = build_variant(variant, base, cache_dir=autotune.cache_dir, digest=digest)
        except Exception as exc:  # a runtime that cannot run this model is a finding
            errors[variant] = f"{type(exc).__name__}: {exc}"[:200]
    started = time.perf_counter()
    auto = prepare_classifier(base, "auto", autotune, digest=digest)
    auto_seconds = time.perf_counter() - started
    cells: dict[str, Callable[[], tuple[list[str], float, dict[str, Any]]]] = {
        "pipeline_one_by_one_fp32": lambda: (*run_pipeline_one_by_one(pipe, texts), {}),
        "pipeline_batched_sorted_fp32": lambda: (*run_pipeline_batched(pipe, texts, args.max_batch), {}),
    }

    def engine_cell(classifier: TransformersClassifier) -> Callable[[], tuple[list[str], float, dict[str, Any]]]:
        def run() -> tuple[list[str], float, dict[str, Any]]:
            out = asyncio.run(run_engine(classifier, texts, **engine_kwargs))
            return out.pop("labels"), out.pop("seconds"), out

        return run

    for variant, classifier in variants.items():
        cells[f"engine_{variant}"] = engine_cell(classifier)
    cells["engine_auto"] = engine_cell(auto)
    results: dict[str, dict[str, Any]] = {}
    for round_index in range(rounds + 1):  # round 0 is the warm-up, not kept
        for cell, run in cells.items():
            labels, seconds, extra = run()
            if round_index == 0:
                results[cell] = {"labels": labels, "rounds": []}
                continue
            results[cell]["rounds"].append(round(len(texts) / seconds, 2))
            if len(texts) / seconds >= max(results[cell]["rounds"]):
                results[cell].update(extra)
    reference = results["pipeline_one_by_one_fp32"]["labels"]
    report: dict[str, Any] = {"texts": len(texts), "cells": {}}
    for cell, numbers in results.items():
        labels = numbers.pop("labels")
        report["cells"][cell] = {
            "texts_per_s": max(numbers["rounds"]),
            **numbers,
            "label_agreement_vs_a": _agreement(labels, reference),
        }
    report["cells"]["engine_auto"]["variant"] = auto.precision
    report["auto_choice"] = {**auto.runtime_choice.as_dict(), "seconds_to_choose": round(auto_seconds, 1)}
    report["variant_errors"] = errors
    cells_out = report["cells"]
    auto_tps = cells_out["engine_auto"]["texts_per_s"]
    report["speedup_vs_pipeline"] = round(auto_tps / cells_out["pipeline_one_by_one_fp32"]["texts_per_s"], 2)
    report["speedup_vs_batched_pipeline"] = round(
        auto_tps / cells_out["pipeline_batched_sorted_fp32"]["texts_per_s"], 2
    )
    report["label_agreement"] = cells_out["engine_auto"]["label_agreement_vs_a"]
    print(f"# {name}: {json.dumps({k: v['texts_per_s'] for k, v in cells_out.items()})}", file=sys.stderr)
    return report


def _connect(port: int) -> http.client.HTTPConnection:
    """A keep-alive connection that is up (the server may still be binding its port)."""
    deadline = time.monotonic() + 60
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.connect()
            return connection
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(port: int, options: dict[str, Any], texts: Sequence[str], report: Any) -> None:
    """The server process: the service on the app's uvicorn setup (uvloop and httptools if installed).

    Before it listens it times `texts` through `InferenceService.score` in its own loop and sends
    that and the variant it serves back through `report`.
    """
    import uvicorn
    from fastapi import FastAPI

    from api.inference import build_inference_router
    from core.config import InferenceSection
    from inference import InferenceService
    from inference.loader import hub_offline

    section = InferenceSection(
        models=(EMBEDDED_MODEL_ID,), device=options["device"], self_evaluate=False, hf_hub_offline=hub_offline(),
        **options["section"],
    )
    service = InferenceService(section, runtime_dir=options["runtime_dir"], stats_store=None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        await service.wait_until_loaded(600)
        await service.score([texts[0]])  # warm-up
        service_ms = []
        for text in texts:
            started = time.perf_counter()
            await service.score([text])
            service_ms.append((time.perf_counter() - started) * 1000.0)
        report.send({"service_ms": service_ms, "variant": service.describe_models()[0]["precision"]})
        yield
        await service.stop()

    app = FastAPI(lifespan=lifespan)
    app.include_router(build_inference_router(service))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop="auto", http="auto")
    uvicorn.Server(config).run()


_JSON = {"Content-Type": "application/json"}


def _post_one(connection: http.client.HTTPConnection, text: str) -> str:
    connection.request("POST", "/api/sentiment", body=json.dumps({"texts": [text]}), headers=_JSON)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"POST /api/sentiment answered {response.status}: {body[:200]!r}")
    return str(json.loads(body)["results"][0]["label"])


def measure_service(
    texts: Sequence[str], *, args: argparse.Namespace, autotune: AutotuneOptions, forward: TransformersClassifier
) -> dict[str, Any]:
    """Single-text latency through the service and `POST /api/sentiment`; 32 concurrent HTTP callers.

    The server runs in its own process, as the app does; the clients are plain keep-alive
    `http.client` connections (one per thread), whose own cost is a few hundred microseconds.
    """
    # The model's own forward: the chosen variant, one text per call, no engine, no event loop.
    forward.predict_probs([texts[0]])
    own_ms = []
    for text in texts:
        started = time.perf_counter()
        forward.predict_probs([text])
        own_ms.append((time.perf_counter() - started) * 1000.0)

    options = {
        "device": args.device,
        "runtime_dir": autotune.cache_dir,  # the choice measured above is reused from the cache
        "section": {
            "inference_evalset": autotune.evalset,
            "inference_exclude": tuple(args.exclude),
            "inference_max_wait_ms": args.max_wait_ms,
        },
    }
    port = _free_port()
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    server = context.Process(target=_serve, args=(port, options, list(texts), sender), daemon=True)
    server.start()
    try:
        if not receiver.poll(900):
            raise RuntimeError("the service did not load the embedded model within 900 s")
        measured = receiver.recv()
        connection = _connect(port)
        _post_one(connection, texts[0])
        http_ms, sequential_labels = [], []
        started_all = time.perf_counter()
        for text in texts:
            started = time.perf_counter()
            sequential_labels.append(_post_one(connection, text))
            http_ms.append((time.perf_counter() - started) * 1000.0)
        sequential_s = time.perf_counter() - started_all
        connection.close()

        concurrent_labels = [""] * len(texts)
        cursor = iter(range(len(texts)))
        lock = threading.Lock()

        def caller() -> None:
            own = _connect(port)
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    break
                concurrent_labels[index] = _post_one(own, texts[index])
            own.close()

        callers = [threading.Thread(target=caller) for _ in range(args.concurrency)]
        started = time.perf_counter()
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join()
        concurrent_s = time.perf_counter() - started
    finally:
        server.terminate()
        server.join(30)
    own, via_service, via_http = (statistics.median(v) for v in (own_ms, measured["service_ms"], http_ms))
    return {
        "model": EMBEDDED_MODEL_ID,
        "variant": measured["variant"],
        "texts": len(texts),
        "forward_p50_ms": round(own, 2),
        "service_p50_ms": round(via_service, 2),
        "http_p50_ms": round(via_http, 2),
        "service_overhead_ms": round(via_service - own, 2),
        "http_overhead_ms": round(via_http - own, 2),
        "http_sequential_texts_per_s": round(len(texts) / sequential_s, 1),
        "http_concurrent_texts_per_s": round(len(texts) / concurrent_s, 1),
        "http_concurrency": args.concurrency,
        "concurrent_vs_sequential": round(sequential_s / concurrent_s, 2),
        "concurrent_labels_equal_sequential": concurrent_labels == sequential_labels,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer texts: minutes, not tens of minutes")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]: the same grid on that device")
    parser.add_argument("--exclude", default="", help="comma-separated variants to leave out, e.g. bf16")
    parser.add_argument("--data-dir", type=Path, default=default_datasets_dir(os.environ))
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep ONNX graphs and choices here")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=None, help="default: 32 on CPU, 256 on CUDA")
    parser.add_argument("--micro-batch", type=int, default=None, help="default: 8 on CPU, 64 on CUDA")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--skip-roberta", action="store_true", help="only the embedded model and the service")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.exclude = tuple(part.strip() for part in args.exclude.split(",") if part.strip())
    unknown = set(args.exclude) - set(VARIANTS)
    if unknown or "fp32" in args.exclude:
        print(f"error: --exclude takes variants among {VARIANTS} except fp32, got {sorted(unknown)}", file=sys.stderr)
        return 2
    on_cpu = args.device == "cpu"
    args.max_batch = args.max_batch or (32 if on_cpu else 256)
    args.micro_batch = args.micro_batch or (8 if on_cpu else 64)
    if not on_cpu:
        args.concurrency = max(args.concurrency, args.max_batch)

    from transformers import AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    # The pipeline logs an error for FinHeadModel (not in its auto list) although it runs it fine.
    hf_logging.set_verbosity(logging.CRITICAL)
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    if args.threads:
        torch.set_num_threads(args.threads)
    missing = [name for name in (TWITTER_FILE, FIQA_FILE) if not (args.data_dir / name).is_file()]
    if missing:
        print(f"error: {missing} not found in {args.data_dir}; pass --data-dir or set DATASETS_DIR", file=sys.stderr)
        return 2
    # The embedded head's own split (deduplicated; training/splits.py): nothing here was trained on.
    split = build_split(args.data_dir)
    rounds = 2 if args.quick else 3
    speed_n = 96 if args.quick else 512
    agree_n = 400 if args.quick else 1000
    gate_n = 192 if args.quick else 400
    service_n = 64 if args.quick else 200
    # Disjoint slices: agreement on test texts, the `auto` gate on validation texts it never reports.
    held_out = split.test + split.validation
    agree = [row.text for row in random.Random(args.seed).sample(split.test, min(agree_n, len(split.test)))]
    gate_rows = random.Random(args.seed).sample(split.validation, min(gate_n, len(split.validation)))
    speed_texts = [row.text for row in random.Random(args.seed).sample(held_out, speed_n)]
    corpus = [row.text for row in split.train]

    with tempfile.TemporaryDirectory(prefix="bench-inference-") as scratch:
        evalset = write_evalset(
            Path(scratch) / "sample.jsonl", [row.text for row in gate_rows], [row.label for row in gate_rows]
        )
        autotune = AutotuneOptions(
            cache_dir=args.cache_dir or Path(scratch), evalset=evalset, exclude=args.exclude, batch=args.max_batch
        )
        result: dict[str, Any] = {
            "device": args.device,
            "machine": machine_fingerprint(args.device),
            "quick": args.quick,
            "excluded": list(args.exclude),
            "engine": f"BatchEngine max_batch={args.max_batch} max_wait_ms={args.max_wait_ms:g} "
            f"micro_batch={args.micro_batch}, {args.concurrency} concurrent callers of one text",
            "baselines": {
                "a": "pipeline_one_by_one_fp32: transformers pipeline, one text per call, fp32",
                "b": f"pipeline_batched_sorted_fp32: same pipeline, batch_size={args.max_batch}, "
                "inputs sorted by length, fp32",
            },
            "models": {},
        }
        if not args.skip_roberta:
            model, tokenizer = build_roberta_base(corpus, seed=args.seed)
            model.to(args.device)
            pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, device=args.device)
            base = TransformersClassifier(
                "roberta-base-shaped",
                model,
                tokenizer,
                ("bearish", "neutral", "bullish"),
                device=args.device,
                max_length=128,
                micro_batch=args.micro_batch,
            )
            result["models"]["roberta-base-shaped"] = {
                "about": "RoBERTa-base shape, random weights, 124.6M params: speed only",
                **measure_model(
                    "roberta-base-shaped",
                    base,
                    pipe,
                    speed_texts,
                    args=args,
                    autotune=autotune,
                    digest=f"roberta-base-shaped-seed{args.seed}",
                    rounds=rounds,
                ),
            }
            del pipe, model, base
        options = LoadOptions(offline=True, device=args.device, precision="fp32", micro_batch=args.micro_batch)
        embedded = load_embedded_classifier(options)
        source = find_minilm(options)
        reference = pipeline(
            "text-classification",
            model=build_finhead_model(source.path).to(args.device),
            tokenizer=AutoTokenizer.from_pretrained(source.path, local_files_only=True),
            device=args.device,
        )
        digest = embedded_digest()
        result["models"]["embedded"] = {
            "about": f"{EMBEDDED_MODEL_ID} (real weights): speed and label agreement, held-out texts",
            **measure_model(
                "embedded",
                embedded,
                reference,
                agree,
                args=args,
                autotune=autotune,
                digest=digest,
                rounds=rounds,
            ),
        }
        del reference
        chosen = prepare_classifier(embedded, "auto", autotune, digest=digest)
        result["service"] = measure_service(agree[:service_n], args=args, autotune=autotune, forward=chosen)

    headline = result["models"].get("roberta-base-shaped", result["models"]["embedded"])
    result["speedup_vs_pipeline"] = headline["speedup_vs_pipeline"]
    result["speedup_vs_batched_pipeline"] = headline["speedup_vs_batched_pipeline"]
    result["label_agreement"] = result["models"]["embedded"]["label_agreement"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
