"""What the inference service tells monitoring: each model's state with its reason in words, readiness, counts.

`models_status`, `system_status.ai_models`, `/api/models` and the Models tab read these. Every
catalog model is described, loaded or not; a model not yet scheduled shows as loading.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

from core.protocol import ModelEvaluation

from .catalog import get_spec
from .classifier import SentimentModel
from .evaluator import DOMAINS, SelfEvaluator
from .loader import ModelSlot, ModelStatus
from .lock import LockEntry
from .pricing import ModelPricer
from .scoring import EnsembleScorer
from .stats import StatsRegistry

__all__ = ["ModelMonitor"]


class ModelMonitor:
    """Describes the service's models from the parts that hold their state (shared, read at each call).

    Args:
        slots: the models, in fallback order.
        requested: the models MODELS or an admin asked for (empty when the budget or CUDA chose).
        device, precision: what a model not loaded yet would run on, and at which precision.
    """

    def __init__(
        self,
        slots: Mapping[str, ModelSlot],
        stats: StatsRegistry,
        pricer: ModelPricer,
        scorer: EnsembleScorer,
        evaluator: SelfEvaluator,
        *,
        locks: Mapping[str, LockEntry],
        requested: Set[str],
        device: str,
        precision: str,
    ) -> None:
        self._slots = slots
        self._stats = stats
        self._pricer = pricer
        self._scorer = scorer
        self._evaluator = evaluator
        self._locks = locks
        self._requested = requested
        self._device = device
        self._precision = precision

    def describe_model(self, model_id: str) -> dict[str, Any]:
        """Return one model's state, the reason for it in words, its measured figures and statistics."""
        slot = self._slots[model_id]
        numbers = self._stats.get(model_id).snapshot()
        loaded = slot.model
        return {
            "id": model_id,
            "type": "sentiment",
            "kind": slot.spec.kind,
            "domain": slot.spec.domain,
            # Before start() a model is not_loaded; clients count it as loading.
            "status": _shown_status(slot.status),
            "reason": self._reason(slot),
            "error": slot.reason if slot.status is ModelStatus.FAILED else None,
            "download": slot.download.as_dict() if slot.download is not None else None,
            "budget": self._pricer.figures(model_id) if slot.spec.kind != "lexicon" else None,
            "news_deadline_misses": self._scorer.deadline_misses.get(model_id, 0),
            "device": loaded.device if loaded is not None else self._device,
            "precision": getattr(loaded, "precision", None) if loaded is not None else self._precision,
            "runtime": _runtime_of(loaded),
            "weights": {domain: round(self._scorer.weight(model_id, domain), 4) for domain in DOMAINS},
            "weight_source": {domain: self._scorer.weight_source(domain, model_id) for domain in DOMAINS},
            "evaluation": _dumped(self._evaluator.evaluation(model_id)),
            "load_seconds": round(slot.load_seconds, 2) if slot.load_seconds is not None else None,
            "lock": self.describe_lock(model_id),
            **numbers,
        }

    def _reason(self, slot: ModelSlot) -> str:
        status = slot.status
        if status in (ModelStatus.FAILED, ModelStatus.SKIPPED):
            return slot.reason or status.value
        if status is ModelStatus.AVAILABLE:
            why = self._pricer.loaded_by.get(slot.model_id)
            if slot.spec.kind == "lexicon":
                return "available: always loaded, the last resort"
            return {
                "budget": "available: its measured cost fits the CPU budget",
                "MODELS": "available: MODELS names it" if self._requested else "available: every model loads on CUDA",
                "admin": "available: loaded by an admin",
            }.get(why or "", "available")
        if slot.download is not None:
            figures = slot.download.as_dict()
            total = figures["bytes_total"]
            of = f" of {total / 2**20:.1f} MB" if total else ""
            return f"loading: downloaded {int(figures['bytes_done'] or 0) / 2**20:.1f} MB{of} from the hub"
        if status is ModelStatus.NOT_LOADED:
            return "loading: not started yet"
        if slot.reason is not None:
            return slot.reason
        if self._precision == "auto":
            return "loading: reading its files, then choosing its runtime (INFERENCE_PRECISION=auto measures them here)"
        return "loading: reading its files"

    def describe_lock(self, model_id: str) -> dict[str, Any] | None:
        """Return the lock state of a hub model: locked (commit) or unlocked (with a warning)."""
        if get_spec(model_id).kind != "transformers":
            return None  # the embedded head is pinned by its own digests; the lexicon has no files
        entry = self._locks.get(model_id)
        if entry is None:
            return {
                "state": "unlocked",
                "revision": None,
                "warning": "unpinned: not in the model lock, so it loads whatever the hub's main is, files "
                "unchecked (run python -m training.lock where the hub is reachable)",
            }
        return {"state": "locked", "revision": entry.revision, "files": len(entry.files), "warning": None}

    def readiness(self, started: bool) -> dict[str, Any]:
        """Say which models are still loading; ready once started and every configured model has settled."""
        by_status: dict[str, list[str]] = {status.value: [] for status in ModelStatus}
        for model_id, slot in self._slots.items():
            by_status[slot.status.value].append(model_id)
        waiting = by_status[ModelStatus.LOADING.value] + by_status[ModelStatus.NOT_LOADED.value]
        return {
            # Skipped models are settled: they are not coming unless someone asks for them.
            "ready": started and not waiting,
            "loading": waiting,
            "available": by_status[ModelStatus.AVAILABLE.value],
            "failed": {model_id: self._slots[model_id].reason for model_id in by_status[ModelStatus.FAILED.value]},
            "skipped": {model_id: self._slots[model_id].reason for model_id in by_status[ModelStatus.SKIPPED.value]},
        }

    def count_statuses(self) -> dict[str, int]:
        """Return total / available / loading / failed / skipped counts; total is their sum."""
        counts = {"total": len(self._slots), "available": 0, "loading": 0, "failed": 0, "skipped": 0}
        for slot in self._slots.values():
            counts[_shown_status(slot.status)] += 1
        return counts


def _shown_status(status: ModelStatus) -> str:
    """The four states clients see: a model not yet scheduled counts as loading."""
    return ModelStatus.LOADING.value if status is ModelStatus.NOT_LOADED else status.value


def _dumped(evaluation: ModelEvaluation | None) -> dict[str, Any] | None:
    return evaluation.model_dump() if evaluation is not None else None


def _runtime_of(model: SentimentModel | None) -> dict[str, Any] | None:
    """How a loaded model runs and how that was chosen (`autotune.RuntimeChoice`), for monitoring."""
    choice = getattr(model, "runtime_choice", None)
    return choice.as_dict() if choice is not None else None
