"""Cold start of the hub models: `python -m bench.hub_models [--tiny] [--models a,b]`.

Builds a full-size stand-in for every catalog hub model (BERT-base / RoBERTa-base dimensions,
random weights, each model's real label order), serves them from the stand-in Hub
(`testbed/hub_standin.py`) with a lock, and starts the real app on them with an empty cache. It
measures, per model: load time (download + digest check + load, from `/api/models`), the time
since launch at which it became available, the app's resident memory added by it, the time
until a news item was first scored with it, and, once news posting has stopped, the latency
through `/api/sentiment` of one news item (a text filling the 128-token window) and of a headline.

Baseline, in the same run: the app with the embedded MiniLM model alone (the offline default),
measured the same way. Self-evaluation is switched off (SELF_EVALUATE=0; `--self-evaluate` turns it
on and reports each model's figures on the shipped sample and the ensemble's choice) and the precision is
fixed (`--precision fp32` by default: `auto` would add its per-model runtime measurement, which is
cached after the first start) so the numbers are the load alone. Random weights cost the same
time and memory as trained ones. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import torch
import websockets

from core.endpoints import NEWS_PATH
from inference.catalog import CATALOG, EMBEDDED_MODEL_ID
from testbed.harness import FAST_ENV, AppProcess, free_port
from testbed.hub_standin import StandinHub, build_catalog_checkpoint, lock_entry, running_hub

HUB_MODELS = [spec.id for spec in CATALOG.values() if spec.kind == "transformers"]
ADMIN = FAST_ENV["ADMIN_TOKEN"]


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def _watch_news(app: AppProcess, seen: dict[str, float], launched: float, stop: asyncio.Event) -> None:
    async with websockets.connect(app.ws(NEWS_PATH), max_size=2**22) as ws:
        while not stop.is_set():
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except TimeoutError:
                continue
            if message.get("type") != "news":
                continue
            scorer = str(message["data"].get("sentiment_model") or "")
            for model_id in scorer.removeprefix("ensemble(").removesuffix(")").split("+"):
                seen.setdefault(model_id, round(time.monotonic() - launched, 2))


def _post_news_forever(app: AppProcess, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        try:
            httpx.post(
                f"{app.http}/api/news",
                timeout=10,
                headers={"Authorization": f"Bearer {ADMIN}"},
                json={
                    "title": f"Bitcoin rallies as ETF inflows surge ({n})",
                    "description": "Buyers return.",
                    "source": "Bench Wire",
                    "url": f"https://bench.example/{time.time_ns()}",
                },
            )
        except httpx.HTTPError:
            pass
        stop.wait(1.0)


async def _measure(
    models: list[str], env: dict[str, str], data_dir: Path, timeout_s: float, precision: str, evaluate: bool
) -> dict[str, Any]:
    app = AppProcess(
        port=free_port(),
        data_dir=data_dir,
        env={
            **FAST_ENV,
            "ENABLE_INFERENCE": "1",
            "SELF_EVALUATE": "1" if evaluate else "0",
            "INFERENCE_PRECISION": precision,
            "MODELS": ",".join(models),
            **env,
        },
    )
    launched = time.monotonic()
    try:
        app.start(timeout=300)
    except Exception:
        app.stop()  # a start that timed out leaves the process running
        raise
    assert app.proc is not None
    rss_start = _rss_mib(app.proc.pid)
    news_seen: dict[str, float] = {}
    stop_news = asyncio.Event()
    watcher = asyncio.create_task(_watch_news(app, news_seen, launched, stop_news))
    stop_posting = threading.Event()
    poster = threading.Thread(target=_post_news_forever, args=(app, stop_posting), daemon=True)
    poster.start()
    per_model: dict[str, dict[str, Any]] = {}
    rss_before = rss_start
    last_status: dict[str, str] = {}
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            body = httpx.get(f"{app.http}/api/models", timeout=30).json()
            for model in body["models"]:
                last_status[model["id"]] = model["status"]
                if (
                    model["id"] in models
                    and model["status"] in ("available", "failed")
                    and model["id"] not in per_model
                ):
                    rss = _rss_mib(app.proc.pid)
                    per_model[model["id"]] = {
                        "status": model["status"],
                        "error": model.get("error"),
                        "load_seconds": model.get("load_seconds"),
                        "available_at_s": round(time.monotonic() - launched, 2),
                        "rss_added_mib": round(rss - rss_before, 1) if rss and rss_before else None,
                    }
                    rss_before = rss
            if len(per_model) == len(models) and all(
                m in news_seen for m in models if per_model[m]["status"] == "available"
            ):
                break
            await asyncio.sleep(0.25)
        for model_id in models:
            entry = per_model.setdefault(
                model_id, {"status": "timeout", "last_status": last_status.get(model_id)}
            )
            entry["first_news_scored_at_s"] = news_seen.get(model_id)
        evaluations = _wait_for_evaluations(app, per_model, deadline) if evaluate else {}
        # Latency is taken once the news poster has stopped: each posted item runs through every
        # model, and the app would otherwise be measuring its own background work.
        stop_posting.set()
        poster.join(timeout=15)
        for model_id in models:
            if per_model[model_id]["status"] == "available":
                per_model[model_id].update(_one_text_latency(app, model_id))
        rss_end = _rss_mib(app.proc.pid)
    finally:
        stop_posting.set()
        stop_news.set()
        await asyncio.gather(watcher, return_exceptions=True)
        app.stop()
    for model_id, evaluation in evaluations.get("models", {}).items():
        per_model[model_id]["evaluation"] = evaluation
    return {
        "models": per_model,
        **({"ensemble": evaluations.get("ensemble")} if evaluate else {}),
        "rss_at_health_mib": round(rss_start or 0, 1),
        "rss_end_mib": round(rss_end or 0, 1),
        "all_settled_at_s": max((m.get("available_at_s") or 0) for m in per_model.values()),
    }


def _wait_for_evaluations(app: AppProcess, per_model: dict[str, Any], deadline: float) -> dict[str, Any]:
    """Wait until every available model's self-evaluation ended; return its figures and the ensemble."""
    available = [m for m, entry in per_model.items() if entry["status"] == "available"]
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = httpx.get(f"{app.http}/api/models", timeout=30).json()
        ended = {
            m["id"]: m.get("evaluation")
            for m in body["models"]
            if (m.get("evaluation") or {}).get("status") in ("done", "failed")
        }
        if all(model_id in ended for model_id in available):
            return {"models": {m: _evaluation_figures(ended[m]) for m in available}, "ensemble": body.get("ensemble")}
        time.sleep(1.0)
    return {"models": {}, "ensemble": body.get("ensemble"), "timeout": True}


def _evaluation_figures(evaluation: dict[str, Any]) -> dict[str, Any]:
    if evaluation.get("status") != "done":
        return evaluation
    keys = ("n", "accuracy", "accuracy_ci95", "macro_f1", "ece")
    return {domain: {k: figures.get(k) for k in keys} for domain, figures in evaluation["domains"].items()}


async def run(
    models: Sequence[str], *, tiny: bool, timeout_s: float, precision: str, evaluate: bool = False
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    hub = StandinHub()
    build_started = time.monotonic()
    for index, model_id in enumerate(models):
        path = build_catalog_checkpoint(
            root / "src" / model_id.replace("/", "--"), model_id, full_size=not tiny, seed=index
        )
        hub.add_dir(model_id, path)
    lock = root / "models.lock.json"
    lock.write_text(json.dumps({"version": 1, "models": {m: lock_entry(hub.repos[m]) for m in models}}))
    built_s = round(time.monotonic() - build_started, 1)
    sizes = {m: round(sum(p.stat().st_size for p in hub.repos[m].files.values()) / 2**20, 1) for m in models}
    (root / "base").mkdir()
    (root / "hub").mkdir()
    baseline = await _measure(
        [EMBEDDED_MODEL_ID], {"HF_HUB_OFFLINE": "1"}, root / "base", timeout_s, precision, evaluate
    )
    with running_hub(hub):
        env = {
            "HF_ENDPOINT": hub.endpoint,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_CACHE": str(root / "cache"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "MODEL_LOCK": str(lock),
        }
        # The embedded model loads first here too, so the first hub model's memory figure does not
        # include the allocations that whichever model loads first pays for.
        candidate = await _measure(
            [EMBEDDED_MODEL_ID, *models], env, root / "hub", timeout_s, precision, evaluate
        )
        downloads = len([r for r in hub.requests if "/resolve/" in r[1] and r[0] == "GET"])
    base = baseline["models"][EMBEDDED_MODEL_ID]
    ratios = {
        model_id: {
            "load_vs_embedded": round(entry["load_seconds"] / base["load_seconds"], 2)
            if entry.get("load_seconds") and base.get("load_seconds")
            else None,
            "rss_vs_embedded": round(entry["rss_added_mib"] / base["rss_added_mib"], 2)
            if entry.get("rss_added_mib") and base.get("rss_added_mib")
            else None,
        }
        for model_id, entry in candidate["models"].items()
    }
    return {
        "bench": "hub_models",
        "size": "tiny" if tiny else "full (BERT-base / RoBERTa-base dimensions, random weights)",
        "device": "cpu",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "precision": precision,
        "load_average": os.getloadavg()[0],
        "checkpoint_mib": sizes,
        "build_seconds": built_s,
        "download_requests": downloads,
        "baseline": {"name": "embedded MiniLM alone, offline", **baseline},
        "hub": candidate,
        "ratios_vs_baseline": ratios,
    }


# A news item is scored as "title. description", truncated to the catalog's 128-token window; with a
# description it usually fills the window, so the window is what one news item costs. The headline
# alone is reported beside it (its token count depends on the stand-in's toy tokenizer). The window
# text is about 1,850 characters.
WINDOW_TEXT = " ".join(["Bitcoin rallies as ETF inflows surge while miners sell and traders hedge."] * 25)
HEADLINE_TEXT = "Bitcoin rallies as ETF inflows surge"
LATENCY_REPEATS = 9


def _one_text_latency(app: AppProcess, model_id: str) -> dict[str, float]:
    figures = {}
    for key, text in (("one_news_item_ms_median", WINDOW_TEXT), ("one_headline_ms_median", HEADLINE_TEXT)):
        latencies = []
        for attempt in range(LATENCY_REPEATS + 1):
            started = time.monotonic()
            httpx.post(f"{app.http}/api/sentiment", timeout=120, json={"texts": [text], "model": model_id})
            if attempt:  # the first call warms this input shape up
                latencies.append((time.monotonic() - started) * 1000)
        figures[key] = round(statistics.median(latencies), 1)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny stand-ins: a quick check of the bench itself")
    parser.add_argument("--models", default=",".join(HUB_MODELS))
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--precision", default="fp32", help="INFERENCE_PRECISION of both apps (auto adds tuning)")
    parser.add_argument(
        "--self-evaluate",
        action="store_true",
        help="let each app score its shipped sample and report the figures and the ensemble's choice "
        "(the stand-ins' random weights sit at chance: this checks the pipeline, not the models)",
    )
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    result = asyncio.run(
        run(models, tiny=args.tiny, timeout_s=args.timeout, precision=args.precision, evaluate=args.self_evaluate)
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
