"""The default model set follows the hardware: every catalog model on a GPU, a measured few on CPU.

On CPU each news item goes through every served model in turn on a couple of cores, and each
BERT-base-sized model holds about half a gigabyte. The CPU default therefore takes models in
`CPU_PRIORITY` order while their measured cost fits both budgets:

- latency: the sum of their one-text latencies stays within `CPU_LATENCY_BUDGET_MS` per news item
  on 2 cores (scaled by 2 / cores: more cores, more models);
- memory: the sum of their resident memory stays within half of the memory available at start.

The costs are measured by `python -m bench.hub_models` (full-size stand-ins: the same
architecture and dimensions, so the same time and memory as the real checkpoints); docs/inference.md
has the run. `MODELS` overrides all of this.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .catalog import DEFAULT_MODELS, EMBEDDED_MODEL_ID, LEXICON_MODEL_ID

__all__ = [
    "CPU_LATENCY_BUDGET_MS",
    "CPU_PRIORITY",
    "MEASURED_COST",
    "ModelCost",
    "default_model_ids",
]

CPU_LATENCY_BUDGET_MS = 300.0


@dataclass(frozen=True)
class ModelCost:
    """Measured on the shared 2-core CPU: one news item's latency through `/api/sentiment`, memory."""

    one_text_ms: float
    rss_mib: float


# `python -m bench.hub_models` on an idle 2-core machine (docs/inference.md, "Cold start"): latency
# is the median of 9 single-text calls through `/api/sentiment` with a text that fills the 128-token
# window (a news item is title + description); memory is the app's RSS added by the embedded model,
# and each hub checkpoint's size for the hub models: their RSS at load (166-347 MiB) undercounts,
# because the embedding table is mapped lazily and grows as the vocabulary is used.
MEASURED_COST: Mapping[str, ModelCost] = {
    EMBEDDED_MODEL_ID: ModelCost(one_text_ms=99.5, rss_mib=113.9),
    "ElKulako/cryptobert": ModelCost(one_text_ms=419.9, rss_mib=514.6),
    "kk08/CryptoBERT": ModelCost(one_text_ms=338.1, rss_mib=417.7),
    "ProsusAI/finbert": ModelCost(one_text_ms=382.2, rss_mib=417.7),
    "StephanAkkerman/FinTwitBERT-sentiment": ModelCost(one_text_ms=378.9, rss_mib=417.7),
    "mrm8488/distilroberta-finetuned-financial-news-sentiment-analysis": ModelCost(
        one_text_ms=217.2, rss_mib=313.3
    ),
    "cardiffnlp/twitter-roberta-base-sentiment-latest": ModelCost(one_text_ms=360.4, rss_mib=475.6),
    "yiyanghkust/finbert-tone": ModelCost(one_text_ms=371.5, rss_mib=417.7),
}
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


def _available_mib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def default_model_ids(
    device: str, *, cpu_count: int | None = None, available_mib: float | None = None
) -> tuple[str, ...]:
    """Return the models to serve when MODELS is unset: all on CUDA, the budget's pick on CPU."""
    if device.startswith("cuda"):
        return DEFAULT_MODELS
    cores = cpu_count or os.cpu_count() or 2
    latency_budget = CPU_LATENCY_BUDGET_MS * max(cores, 2) / 2
    memory_budget = (available_mib if available_mib is not None else _available_mib() or 4096.0) / 2
    picked: list[str] = []
    spent_ms = spent_mib = 0.0
    for model_id in CPU_PRIORITY:
        cost = MEASURED_COST.get(model_id)
        if cost is None:
            continue  # never measured: not a default on CPU
        if spent_ms + cost.one_text_ms > latency_budget or spent_mib + cost.rss_mib > memory_budget:
            break
        picked.append(model_id)
        spent_ms += cost.one_text_ms
        spent_mib += cost.rss_mib
    return (*picked, LEXICON_MODEL_ID)
