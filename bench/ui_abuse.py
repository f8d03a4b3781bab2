"""UI abuse: anonymous callers of the playground's `score_text` must not slow news or prices. Not in CI.

    python -m bench.ui_abuse --baseline-tree /tmp/hub-base    # the named baseline first, then this tree
    python -m bench.ui_abuse --duration 10 --callers 4         # a quick look at this tree alone

The app runs with the UI and its default inference (the embedded model and the lexicon, offline,
in the variant `auto` chooses on a CPU: onnx-fp32) and waits until `/ready`. Then, for
`--duration` seconds, `--callers` anonymous loops (each from its own loopback address, 127.0.0.2
and up, so each is its own client) call
`score_text` with a 2,000-character text the way gradio_client does: `POST /gradio_api/queue/join`,
then read `GET /gradio_api/queue/data` until the event's `process_completed`. A refusal (a 429 or
503 on join, or an event that completes with an error) is counted by its kind, and its loop waits
50 ms before calling again. Meanwhile `bench.rest_abuse`'s measurement runs unchanged: `--news`
items posted with the admin token and timed to `/ws/news`, and one `/ws/market_data` subscriber's
worst wait between BTC updates. The callers run in a child process, so their CPU does not delay
the measuring client. Goals: some calls refused, `news_p99_ms` < 250 and `btc_worst_gap_s` < 2.
One JSON object goes to stdout (with `baseline`, `candidate` and their ratios when
`--baseline-tree` is given), with the load average of the machine before and after each run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.rest_abuse import (
    SERVER_ENV,
    _wait_healthy,
    add_compared_arguments,
    measure_during,
    print_compared,
    serving,
    stream_figures,
    tree_commit,
)

__all__ = ["main"]

# onnx-fp32 is what `auto` chooses for the embedded model on CPU (docs/inference.md), named here so
# that each start skips `auto`'s measurement of every variant (minutes on a busy machine).
UI_ENV = {**SERVER_ENV, "ENABLE_UI": "1", "ENABLE_INFERENCE": "1", "INFERENCE_PRECISION": "onnx-fp32",
          "SELF_EVALUATE": "0"}
WORDS = ("Bitcoin", "ETF", "inflows", "hit", "a", "record", "as", "miners", "hold", "while", "whales", "sell")
TEXT = " ".join(WORDS[i % len(WORDS)] for i in range(400))[:2000]


def log(message: str) -> None:
    print(f"[ui_abuse {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ------------------------------------------------------------ the callers (child process)


async def _call(client: httpx.AsyncClient, fn_index: int, session: str) -> str:
    """One `score_text` call as gradio_client makes it; return its outcome's kind."""
    joined = await client.post("/gradio_api/queue/join", json={
        "data": [TEXT, "news"], "event_data": None, "fn_index": fn_index, "trigger_id": None, "session_hash": session,
    })
    if joined.status_code != 200:
        return f"join {joined.status_code}"
    event_id = joined.json()["event_id"]
    async with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
        async for line in stream.aiter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") != event_id or message.get("msg") != "process_completed":
                continue
            if message.get("success"):
                return "scored"
            output = message.get("output") or {}
            return f"error: {output.get('title') or output.get('error')}"
    return "stream ended"


async def _caller(base: str, index: int, fn_index: int, stop_at: float, counts: collections.Counter[str]) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{2 + index}")
    async with httpx.AsyncClient(base_url=base, transport=transport, timeout=120) as client:
        session = uuid.uuid4().hex[:11]
        while time.monotonic() < stop_at:
            try:
                kind = await _call(client, fn_index, session)
            except httpx.HTTPError as exc:
                kind = type(exc).__name__
            counts[kind] += 1
            if kind != "scored":
                await asyncio.sleep(0.05)


async def _abuse(base: str, duration: float, callers: int) -> dict[str, Any]:
    config = httpx.get(f"{base}/config", timeout=60).json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "score_text")
    counts: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    await asyncio.gather(*(_caller(base, i, fn_index, started + duration, counts) for i in range(callers)))
    elapsed = time.monotonic() - started
    return {"calls": sum(counts.values()), "scored": counts["scored"],
            "refused": sum(n for kind, n in counts.items() if kind != "scored"),
            "scored_per_s": round(counts["scored"] / elapsed, 1), "outcomes": dict(sorted(counts.items()))}


# ------------------------------------------------------------ one measured run


async def measure(port: int, args: argparse.Namespace) -> dict[str, Any]:
    m, start, end, out = await measure_during(port, args, [
        "bench.ui_abuse", "--caller", f"http://127.0.0.1:{port}", "--duration", str(args.duration),
        "--callers", str(args.callers),
    ])
    scoring = json.loads(out.decode() or "{}")
    figures = stream_figures(m, start, end)
    goals = {"some_calls_refused": scoring.get("refused", 0) > 0, **figures.pop("goals_met")}
    return {"score_text": scoring, **figures, "goals_met": goals}


def run_tree(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Start the app of `tree` with the UI and inference, wait until its models settled, measure, stop it."""
    with tempfile.TemporaryDirectory(prefix="ui-abuse-") as tmp:
        data_dir = Path(tmp)
        extra = dict(kv.split("=", 1) for kv in args.server_env)
        with serving(tree, {**UI_ENV, **extra}, data_dir) as (port, proc):
            _wait_healthy(port, proc, data_dir, timeout=300)
            models = _wait_ready(port)
            log(f"{tree}: app up on port {port}, models {models}; {args.callers} callers for {args.duration:.0f} s")
            load_before = load_average()
            result = {"models": models, **asyncio.run(measure(port, args)), "load_average_before": load_before,
                      "load_average_after": load_average()}
        result = {"tree": str(tree), "commit": tree_commit(tree), **result}
        log(f"{tree}: {result['score_text'].get('scored')} scored, {result['score_text'].get('refused')} refused; "
            f"worst BTC gap {result['btc_worst_gap_s']} s, news p99 {result['news_p99_ms']} ms")
        return result


def _wait_ready(port: int, timeout: float = 300.0) -> list[str]:
    """Wait until every configured model is available or failed; return the available ones."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10)
        if reply.status_code == 200:
            return list(reply.json()["available"])
        time.sleep(0.5)
    raise TimeoutError(f"models not settled within {timeout} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_compared_arguments(parser, duration=30.0, example="SCORING_QUEUE=4")
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--caller", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.caller:
        print(json.dumps(asyncio.run(_abuse(args.caller, args.duration, args.callers))))
        return
    result: dict[str, Any] = {"scenario": {k: getattr(args, k) for k in (
        "duration", "callers", "news", "server_env")}, "text_chars": len(TEXT)}
    print_compared(result, args, run_tree)


if __name__ == "__main__":
    main()
