"""Which catalog models load by default: a measurement of this machine, not a table.

On CUDA every catalog model loads. On CPU each news item goes through every served model, on the
cores the models may use (`model_threads`: all but one, so the event loop keeps a core), and a
model loads by default, in `CPU_PRIORITY` order, while the models chosen so far still fit:

- CPU: cost of one news item x the expected news rate (`NEWS_RATE_PER_MIN`) stays within a share
  (`INFERENCE_CPU_SHARE`) of the model cores;
- deadline: one news item through all of them, on the model cores, stays within the news desk's
  bound (`NEWS_SCORE_DEADLINE_MS`): a slower model would only miss it and burn a core;
- memory: their weights stay within half of the memory available at start.

The cost of one news item is core-milliseconds of a text that fills the token window. Measuring it
would mean loading every ~500 MB model, so a model that is not loaded is *estimated*: the embedded
model's measured cost, scaled by the ratio of the two encoders' multiply-adds per item, which its
`config.json` (a few kB from the local cache or the hub) gives. Once a model loads, its own cost is
*measured* the same way as the embedded model's and replaces the estimate; a model loaded on an
estimate whose measurement does not fit is unloaded again. `MODELS` overrides all of this.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.host_limits import usable_cpus

from .catalog import EMBEDDED_MODEL_ID

__all__ = [
    "CPU_PRIORITY",
    "NEWS_ITEM_TEXT",
    "BudgetLedger",
    "BudgetRules",
    "EncoderShape",
    "ItemCost",
    "estimate_cost",
    "measure_item_cost",
    "model_threads",
]

# Crypto first, then the news model and the financial-tweet model; general models last.
CPU_PRIORITY: tuple[str, ...] = (
    EMBEDDED_MODEL_ID,
    "ElKulako/cryptobert",
    "ProsusAI/finbert",
    "StephanAkkerman/FinTwitBERT-sentiment",
    "mrm8488/distilroberta-finetuned-financial-news-sentiment-analysis",
    "yiyanghkust/finbert-tone",
    "kk08/CryptoBERT",
    "cardiffnlp/twitter-roberta-base-sentiment-latest",
)
# A news item as the desk sends it (title. description), long enough to fill a 128-token window:
# the cost of a full window bounds the cost of any item.
NEWS_ITEM_TEXT = (
    "Bitcoin climbs past its record as spot ETF inflows surge. Analysts say miners are holding "
    "their coins while exchange reserves fall to a five-year low; traders expect volatility "
    "around the Federal Reserve decision, and altcoins such as Ether and Solana follow with gains "
    "after a week of liquidations, outflows and regulatory headlines from Washington and Brussels."
) * 2
_MEASURE_RUNS = 3
_WINDOW_TOKENS = 128


def model_threads(cores: int | None = None) -> int:
    """Return the threads a model call may use: every usable core but one, which the event loop keeps.

    The usable cores are the container's (`core.host_limits.usable_cpus`: affinity and cgroup quota),
    not the host's.
    """
    count = cores if cores is not None else usable_cpus().count
    return max(1, count - 1)


@dataclass(frozen=True)
class EncoderShape:
    """The dimensions of a BERT-style encoder that its cost and size follow, from `config.json`."""

    layers: int
    hidden: int
    intermediate: int
    vocab: int
    positions: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EncoderShape | None:
        """Read the dimensions from a config.json's fields; None when one is missing."""
        try:
            return cls(
                layers=int(config["num_hidden_layers"]),
                hidden=int(config["hidden_size"]),
                intermediate=int(config["intermediate_size"]),
                vocab=int(config["vocab_size"]),
                positions=int(config.get("max_position_embeddings", 512)),
            )
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def from_file(cls, path: Path) -> EncoderShape | None:
        """Read a config.json file; None when it is missing or not an encoder's."""
        try:
            return cls.from_config(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None

    def multiply_adds(self, tokens: int = _WINDOW_TOKENS) -> float:
        """Multiply-adds of one text of `tokens` tokens: projections, feed-forward and attention."""
        tokens = min(tokens, self.positions)
        dense = tokens * (4 * self.hidden * self.hidden + 2 * self.hidden * self.intermediate)
        attention = 2 * tokens * tokens * self.hidden
        return float(self.layers * (dense + attention))

    @property
    def weight_mib(self) -> float:
        """fp32 weights: embeddings plus every layer's matrices."""
        embeddings = (self.vocab + self.positions) * self.hidden
        per_layer = 4 * self.hidden * self.hidden + 2 * self.hidden * self.intermediate
        return 4 * (embeddings + self.layers * per_layer) / 2**20

    def describe(self) -> str:
        """Say the dimensions in a few words."""
        return f"{self.layers} layers x {self.hidden} hidden"


@dataclass(frozen=True)
class ItemCost:
    """What one news item costs a model: core-milliseconds, and whether that was measured or estimated."""

    core_ms: float
    source: Literal["measured", "estimated"]
    basis: str

    def as_dict(self) -> dict[str, Any]:
        """Return the figures for a model's status."""
        return {"core_ms_per_item": round(self.core_ms, 1), "source": self.source, "basis": self.basis}


def measure_item_cost(predict: Callable[[list[str]], Any], threads: int, *, runs: int = _MEASURE_RUNS) -> ItemCost:
    """Time one window-filling news item through `predict`: the median of `runs` calls after a warm-up.

    Blocking: run it on the model's own thread. With one thread the figure is the thread's CPU
    time, which other programs on the machine do not inflate; with more it is wall time x threads,
    the cores the call holds.
    """
    predict([NEWS_ITEM_TEXT])  # first call: allocations and one-off kernel choices
    samples = []
    for _ in range(runs):
        cpu, wall = time.thread_time(), time.perf_counter()
        predict([NEWS_ITEM_TEXT])
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        samples.append(cpu if threads == 1 else wall * threads)
    how = "thread CPU time" if threads == 1 else f"wall time x {threads} threads"
    return ItemCost(
        core_ms=1000 * statistics.median(samples),
        source="measured",
        basis=f"median of {runs} window-filling news items on this machine ({how})",
    )


def estimate_cost(shape: EncoderShape, reference: ItemCost, reference_shape: EncoderShape, name: str) -> ItemCost:
    """Scale a measured model's cost by the ratio of multiply-adds per item of the two encoders."""
    ratio = shape.multiply_adds() / reference_shape.multiply_adds()
    return ItemCost(
        core_ms=reference.core_ms * ratio,
        source="estimated",
        basis=f"{name}'s measured {reference.core_ms:.0f} ms x {ratio:.1f} "
        f"(multiply-adds per item, {shape.describe()} against {reference_shape.describe()}, from config.json)",
    )


@dataclass(frozen=True)
class BudgetRules:
    """The declared limits: a CPU share at an expected news rate, the news deadline, memory.

    Args:
        cpu_share: fraction of the model cores news scoring may take at `news_per_min`.
        news_per_min: the news rate to plan for.
        deadline_ms: the news desk's scoring bound.
        model_cores: the cores models may use (`model_threads()`).
        memory_mib: memory the models' weights may take.
        cores_from, memory_from: where the machine's figures came from, in words
            (`core.host_limits`: e.g. "2 CPUs (cgroup cpu.max 200000/100000)").
    """

    cpu_share: float
    news_per_min: float
    deadline_ms: float
    model_cores: int
    memory_mib: float
    cores_from: str = ""
    memory_from: str = ""

    def share_of(self, core_ms: float) -> float:
        """Return the fraction of the model cores that `core_ms` per item takes at the expected rate."""
        return core_ms / 1000 * self.news_per_min / 60 / self.model_cores

    def as_dict(self) -> dict[str, Any]:
        """Return the rules for a model's status."""
        return {
            "cpu_share": self.cpu_share,
            "news_per_min": self.news_per_min,
            "deadline_ms": self.deadline_ms,
            "model_cores": self.model_cores,
            "memory_mib": round(self.memory_mib),
            "cores_from": self.cores_from,
            "memory_from": self.memory_from,
        }


@dataclass
class BudgetLedger:
    """The running sums of the models chosen so far, against the rules."""

    rules: BudgetRules
    core_ms: float = 0.0
    memory_mib: float = 0.0

    def refusal(self, cost: ItemCost, weight_mib: float) -> str | None:
        """Return why a model of this cost and size does not fit beside those chosen, or None."""
        rules = self.rules
        seconds = cost.core_ms / 1000
        about = f"scoring one news item would take about {seconds:.2f} s of a core here ({cost.source})"
        total_ms = self.core_ms + cost.core_ms
        if rules.share_of(total_ms) > rules.cpu_share:
            return (
                f"{about}: at {rules.news_per_min:g} news/min the models would take "
                f"{rules.share_of(total_ms):.0%} of {rules.model_cores} core(s), over the "
                f"{rules.cpu_share:.0%} share (INFERENCE_CPU_SHARE)"
            )
        if total_ms / rules.model_cores > rules.deadline_ms:
            return (
                f"{about}: with the models already chosen, an item would take "
                f"{total_ms / rules.model_cores / 1000:.2f} s on {rules.model_cores} core(s), over the "
                f"{rules.deadline_ms / 1000:g} s news deadline (NEWS_SCORE_DEADLINE_MS)"
            )
        if self.memory_mib + weight_mib > rules.memory_mib:
            return (
                f"its weights take about {weight_mib:.0f} MiB; with the models already chosen that is over "
                f"{rules.memory_mib:.0f} MiB, half of the memory available at start"
            )
        return None

    def charge(self, cost: ItemCost, weight_mib: float) -> None:
        """Count a chosen model."""
        self.core_ms += cost.core_ms
        self.memory_mib += weight_mib

    def release(self, cost: ItemCost, weight_mib: float) -> None:
        """Forget a model that was unloaded."""
        self.core_ms = max(0.0, self.core_ms - cost.core_ms)
        self.memory_mib = max(0.0, self.memory_mib - weight_mib)
