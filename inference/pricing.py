"""`ModelPricer`: what one news item costs each model here, measured or estimated, and the running budget.

The rules and the arithmetic are `budget.py`'s; this keeps the figures of one service: the cost of
each model (measured once loaded, estimated from `config.json` before), each encoder's shape, why
each loaded model is loaded, and the ledger of what the budget's picks spend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .budget import BudgetLedger, BudgetRules, EncoderShape, ItemCost, estimate_cost
from .catalog import EMBEDDED_MODEL_ID, ModelSpec
from .classifier import SentimentModel
from .loader import LoadOptions, find_config
from .lock import LockEntry

__all__ = ["ModelPricer"]

_UNPRICED = {"core_ms_per_item": None, "source": None, "basis": "not measured and no estimate yet"}


def encoder_shape(model: SentimentModel) -> EncoderShape | None:
    """The encoder's dimensions: from the torch model's config, else the config.json beside its tokenizer."""
    config = getattr(getattr(model, "model", None), "config", None)
    if config is not None and hasattr(config, "to_dict"):
        return EncoderShape.from_config(config.to_dict())
    folder = getattr(getattr(model, "tokenizer", None), "name_or_path", None)
    return EncoderShape.from_file(Path(folder) / "config.json") if folder else None


class ModelPricer:
    """The cost figures of one service's models, and the budget's running sums.

    Args:
        options: where model files are found (only `config.json` is read here).
        locks: the model lock; a locked model's `config.json` comes from its locked commit.
        ask_hub: fetch a `config.json` missing locally from the hub (the budget does; with
            MODELS set, a start makes no request for the models it skips).
    """

    def __init__(self, options: LoadOptions, locks: Mapping[str, LockEntry], *, ask_hub: bool) -> None:
        self.options = options if ask_hub else replace(options, offline=True)
        self.locks = locks
        self.ledger: BudgetLedger | None = None  # made at start, from the memory available then
        self.costs: dict[str, ItemCost] = {}
        self.shapes: dict[str, EncoderShape] = {}
        self.loaded_by: dict[str, str] = {}  # why each loaded model is loaded: MODELS, budget, admin

    def start(self, rules: BudgetRules) -> None:
        """Begin the budget's ledger under `rules`."""
        self.ledger = BudgetLedger(rules)

    async def price(self, spec: ModelSpec) -> ItemCost | None:
        """Return a model's cost: measured, else estimated from its config.json and the embedded model's."""
        if spec.kind != "transformers" or spec.id in self.costs:
            return self.costs.get(spec.id)
        if spec.id not in self.shapes:
            shape = await asyncio.to_thread(self._read_shape, spec.id)
            if shape is None:
                return None
            self.shapes[spec.id] = shape
        reference = self.costs.get(EMBEDDED_MODEL_ID)
        reference_shape = self.shapes.get(EMBEDDED_MODEL_ID)
        if reference is not None and reference_shape is not None:
            self.costs[spec.id] = estimate_cost(self.shapes[spec.id], reference, reference_shape, "the embedded model")
        return self.costs.get(spec.id)

    def _read_shape(self, model_id: str) -> EncoderShape | None:
        """Read a model's config.json (local dir, cache, else a few kB from the hub); None if nowhere."""
        lock = self.locks.get(model_id)
        path = find_config(model_id, self.options, lock.revision if lock is not None else None)
        return EncoderShape.from_file(path) if path is not None else None

    async def refusal(self, spec: ModelSpec) -> str | None:
        """Return why the budget does not load a model by default, or None (and charge it) when it fits."""
        assert self.ledger is not None, "start() first"
        cost = await self.price(spec)
        if cost is None:
            if spec.id not in self.shapes:
                return "its config.json could not be read from the local cache or the hub, so its cost is unknown"
            return "no model was measured on this machine to estimate its cost from"
        weight = self.shapes[spec.id].weight_mib
        refusal = self.ledger.refusal(cost, weight)
        if refusal is None:
            self.ledger.charge(cost, weight)
        return refusal

    def measured(self, model_id: str, model: SentimentModel, cost: ItemCost, why: str) -> str | None:
        """Record a loaded model's measured cost; return why a budget pick no longer fits, else None."""
        assert self.ledger is not None, "start() first"
        shape = encoder_shape(model)
        if shape is not None:
            self.shapes[model_id] = shape
        estimate = self.costs.get(model_id)
        self.costs[model_id] = cost
        self.loaded_by[model_id] = why
        weight = shape.weight_mib if shape is not None else 0.0
        if why == "budget" and estimate is not None:
            self.ledger.release(estimate, weight)  # charged on the estimate; the measurement replaces it
            refusal = self.ledger.refusal(cost, weight)
            if refusal is not None:
                del self.loaded_by[model_id]  # nothing of it is charged any more
                return refusal
        self.ledger.charge(cost, weight)
        return None

    def release(self, model_id: str) -> None:
        """Forget what an unloaded model spent."""
        why = self.loaded_by.pop(model_id, None)
        cost = self.costs.get(model_id)
        shape = self.shapes.get(model_id)
        if why is not None and cost is not None and self.ledger is not None:
            self.ledger.release(cost, shape.weight_mib if shape is not None else 0.0)

    def figures(self, model_id: str) -> dict[str, Any] | None:
        """The model's cost per news item against the budget's rules, for its status (None before start)."""
        if self.ledger is None:
            return None
        rules = self.ledger.rules
        cost = self.costs.get(model_id)
        shape = self.shapes.get(model_id)
        return {
            **(cost.as_dict() if cost is not None else _UNPRICED),
            "cpu_share_at_news_rate": round(rules.share_of(cost.core_ms), 4) if cost is not None else None,
            "weight_mib": round(shape.weight_mib) if shape is not None else None,
            "loaded_by": self.loaded_by.get(model_id),
            "rules": rules.as_dict(),
        }
