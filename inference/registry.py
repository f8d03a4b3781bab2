"""The models the service holds: a slot per model (how it loads) and, once loaded, its batcher on its own thread.

Each model runs on its own daemon thread (`executors.py`), so a slow or hung model delays only its
own callers; model threads run below the event loop's priority, hub models lowest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .catalog import ModelSpec
from .classifier import SentimentModel
from .engine import BatchEngine
from .evaluator import Probs
from .executors import ModelExecutor, lower_thread_priority
from .head import load_embedded_classifier
from .lexicon import CryptoLexicon
from .loader import LoadOptions, ModelSlot, load_transformers_classifier, resolve_model_source
from .lock import LockEntry

__all__ = ["EMBEDDED_NICE", "HUB_NICE", "ModelEngines", "make_slot"]

logger = logging.getLogger(__name__)

# A hub model (a BERT-base is ~10x the embedded model's work) runs lowest, so a single text asked of
# the embedded model is not queued behind it.
EMBEDDED_NICE = 2
HUB_NICE = 10


def make_slot(spec: ModelSpec, options: LoadOptions, lock: LockEntry | None) -> ModelSlot:
    """Return the slot of one catalog model: the lexicon, the embedded head, or a hub model (at its locked commit)."""
    if spec.kind == "lexicon":
        return ModelSlot(spec, CryptoLexicon)
    if spec.kind == "embedded":

        def load_embedded() -> SentimentModel:
            lower_thread_priority(EMBEDDED_NICE)  # loading and autotune never outrank the loop
            return load_embedded_classifier(options)

        return ModelSlot(spec, load_embedded)

    def load_hub_model() -> SentimentModel:
        lower_thread_priority(HUB_NICE)
        if lock is None:
            logger.warning("load %s: unlocked: no entry in the model lock, loading the hub's main", spec.id)
        source = resolve_model_source(spec.id, options, lock, on_download=slot.track_download)
        logger.info("load %s: files from %s (%s)", spec.id, source.path, source.origin)
        return load_transformers_classifier(spec, source, options)

    slot = ModelSlot(spec, load_hub_model)
    return slot


class ModelEngines:
    """A `BatchEngine` per loaded model, each on its own `ModelExecutor` thread.

    Args:
        limits: the engines' `max_batch`, `max_wait_ms` and `max_queue` (checked here, at once).
    """

    def __init__(self, limits: Mapping[str, Any]) -> None:
        BatchEngine(lambda texts: texts, **limits)  # validate the limits now
        self.limits = dict(limits)
        self.engines: dict[str, BatchEngine[Probs]] = {}
        self.executors: dict[str, ModelExecutor] = {}

    def start(self, slot: ModelSlot) -> None:
        """Start (or restart) the engine of a loaded model on a fresh thread of its own."""
        assert slot.model is not None
        # The lexicon too: on the loop's default pool it would compete with the news desk's commits.
        previous = self.executors.pop(slot.model_id, None)
        if previous is not None:
            previous.shutdown(wait=False, cancel_futures=True)
        nice = EMBEDDED_NICE if slot.spec.kind in ("embedded", "lexicon") else HUB_NICE
        executor = self.executors[slot.model_id] = ModelExecutor(f"model:{slot.model_id}", nice=nice)
        kwargs = dict(self.limits)
        if slot.spec.kind == "lexicon":
            kwargs["max_batch"] = max(kwargs["max_batch"], 256)  # VADER is per text: batch size is free
            kwargs["max_queue"] = max(kwargs["max_queue"], kwargs["max_batch"])
        engine: BatchEngine[Probs] = BatchEngine(
            slot.model.predict_probs, name=slot.model_id, executor=executor, **kwargs
        )
        engine.start()
        self.engines[slot.model_id] = engine

    async def stop(self, model_id: str) -> None:
        """Stop one model's engine and let its thread go."""
        engine = self.engines.pop(model_id, None)
        if engine is not None:
            await engine.stop()
        executor = self.executors.pop(model_id, None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def stop_all(self) -> None:
        """Stop every engine; a batch still running finishes on its thread, which ends with it."""
        for engine in self.engines.values():
            await engine.stop()
        self.engines.clear()
        for executor in self.executors.values():
            # wait=False: a batch still running must not hold shutdown; its thread ends with it.
            executor.shutdown(wait=False, cancel_futures=True)
        self.executors.clear()
