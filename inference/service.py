"""`InferenceService`: loads the configured models in the background and scores texts.

Life cycle: `InferenceService(section, ...)` checks the configuration; `await start()` makes the lexicon
available at once and loads the other models one by one in a daemon thread; `await stop()`
stops the engines and saves the statistics. `score()` always answers: models that are still
loading, failed or skipped are left out, and the lexicon is the last resort.

Every catalog model is listed, loaded or not: MODELS names what to load; unset, the measured
budget decides on CPU (`budget.py`) and everything loads on CUDA. `load_model()` and
`unload_model()` change that while the app runs (the admin routes).

This module decides which models load, when, and in what order; each model's slot and engine
are `registry.py`'s, scoring is `scoring.py`'s, self-evaluation `evaluator.py`'s and the
monitoring descriptions `monitoring.py`'s, each sharing the same models.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from core.config import InferenceSection
from core.host_limits import memory_limit, usable_cpus
from core.periodic import run_every
from core.records import SentimentResult

from .autotune import DEFAULT_EVALSET, AutotuneOptions
from .budget import CPU_PRIORITY, BudgetRules, measure_item_cost, model_threads
from .catalog import (
    DEFAULT_MODELS,
    EMBEDDED_MODEL_ID,
    LEXICON_MODEL_ID,
    Domain,
    get_spec,
    resolve_model_ids,
)
from .classifier import resolve_precision
from .errors import ModelNotReady, UnknownModel
from .evalsample import SAMPLE_PATH, read_sample
from .evaluator import DOMAINS, SelfEvaluator
from .head import stored_evaluation
from .loader import (
    LoadOptions,
    ModelSlot,
    ModelStatus,
    resolve_device,
)
from .lock import LOCK_PATH, read_lock
from .monitoring import ModelMonitor
from .pricing import ModelPricer
from .registry import ModelEngines, make_slot
from .scoring import EnsembleScorer
from .stats import StatsRegistry, StatsStore

__all__ = ["InferenceService"]

logger = logging.getLogger(__name__)

_SET_MODELS_HINT = "set MODELS to load it at start, or load it with the admin token"


class InferenceService:
    """Sentiment models behind per-model batchers, combined into one answer per text.

    Args:
        section: the inference settings (`Settings.section(InferenceSection)`, core/config.py),
            whose fields hold every default: MODELS (unset: the whole catalog on CUDA, on CPU what
            fits the measured budget, `budget.py`), DEVICE, INFERENCE_PRECISION (`auto` measures
            per model at load, `autotune.py`), the batching limits, the CPU budget, the news
            deadline, the model lock, SELF_EVALUATE and the hub's cache and offline switch.
        runtime_dir: where `auto` caches its measured choices and ONNX graphs (the app's DATA_DIR);
            None: `auto` measures at every start and leaves ONNX out.
        stats_store: persistence for the per-model statistics; None keeps them in memory.
        weights: per-model ensemble weight overrides, e.g. {"ProsusAI/finbert": {"news": 1.2}}.
        call_timeout_s: a model call slower than this counts as a failure and falls back.
        max_queue: texts waiting per model engine at most (see `BatchEngine`).
        micro_batch: texts per forward pass inside a batch (batches arrive sorted by length, so
            small chunks pad little); None means 8 on CPU and 64 on CUDA.
        stats_flush_s: how often statistics are saved while running.
        sample_path: the labelled sample to self-evaluate on.

    Raises:
        ValueError: an unknown device or precision for this machine, a bad weight or limit.
    """

    def __init__(
        self,
        section: InferenceSection,
        *,
        runtime_dir: Path | None,
        stats_store: StatsStore | None,
        weights: Mapping[str, Mapping[str, float]] | None = None,
        call_timeout_s: float = 60.0,
        max_queue: int = 2048,
        micro_batch: int | None = None,
        stats_flush_s: float = 60.0,
        sample_path: Path = SAMPLE_PATH,
    ) -> None:
        models = list(section.models) if section.models else None
        self.device = resolve_device(section.device)
        configured = resolve_model_ids(models)
        # MODELS unset on CPU: the measured budget picks among the catalog (budget.py); on a GPU all load.
        self.auto_budget = models is None and self.device == "cpu"
        self._requested = set() if self.auto_budget else set(configured)
        # Every catalog model is listed, configured or not, after the configured ones (fallback order).
        ids = resolve_model_ids([*configured, *(m for m in DEFAULT_MODELS if m not in configured)])
        self._locks = read_lock(section.model_lock or LOCK_PATH)
        if micro_batch is not None and micro_batch < 1:
            raise ValueError(f"micro_batch must be >= 1 or None, got {micro_batch}")
        on_cpu = self.device == "cpu"
        max_batch = section.inference_max_batch or (32 if on_cpu else 256)
        self.options = LoadOptions(
            device=self.device,
            precision=resolve_precision(section.inference_precision, self.device),
            model_dir=section.model_dir,
            cache_dir=section.hub_cache_dir,
            offline=section.hub_offline,
            micro_batch=micro_batch if micro_batch is not None else (8 if on_cpu else 64),
            autotune=AutotuneOptions(
                cache_dir=runtime_dir,
                evalset=section.inference_evalset or DEFAULT_EVALSET,
                exclude=tuple(section.inference_exclude),
                batch=max_batch,
            ),
        )
        limits = {"max_batch": max_batch, "max_wait_ms": section.inference_max_wait_ms, "max_queue": max_queue}
        self.engines = ModelEngines(limits)
        threads = section.inference_threads
        self.cpu_threads = threads if threads is not None or not on_cpu else model_threads()
        self.cpu_share = section.inference_cpu_share
        self.news_per_min = section.news_rate_per_min
        self.pricer = ModelPricer(self.options, self._locks, ask_hub=self.auto_budget)
        self._admin_loads: dict[str, asyncio.Task[None]] = {}
        self.stats_flush_s = stats_flush_s
        self.self_evaluate = section.self_evaluate
        self.stats = StatsRegistry(stats_store)
        self._slots: dict[str, ModelSlot] = {
            model_id: make_slot(get_spec(model_id), self.options, self._locks.get(model_id)) for model_id in ids
        }
        self.evaluator = SelfEvaluator(read_sample(sample_path) if self.self_evaluate else [], chunk=max_batch)
        self.scorer = EnsembleScorer(
            self._slots,
            self.engines.engines,
            self.stats,
            self.evaluator,
            weights=weights or {},
            call_timeout_s=call_timeout_s,
            news_deadline_s=section.news_score_deadline_ms / 1000,
        )
        self.monitor = ModelMonitor(
            self._slots,
            self.stats,
            self.pricer,
            self.scorer,
            self.evaluator,
            locks=self._locks,
            requested=self._requested,
            device=self.device,
            precision=self.options.precision,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._loader: asyncio.Task[None] | None = None
        self._crashed: BaseException | None = None
        self._started = False

    @property
    def model_ids(self) -> list[str]:
        """Configured model ids in fallback order (the lexicon last)."""
        return list(self._slots)

    def weight(self, model_id: str, domain: Domain) -> float:
        """Return the ensemble weight of a model for a domain: an override, else measured, else the prior."""
        return self.scorer.weight(model_id, domain)

    @property
    def deadline_misses(self) -> dict[str, int]:
        """Per model, how many news items were published without its answer (it missed the deadline)."""
        return self.scorer.deadline_misses

    # ----------------------------------------------------------------- life cycle

    async def start(self) -> None:
        """Load statistics, make the lexicon available, start background loading; returns fast."""
        if self._started:
            return
        self._started = True
        if self.cpu_threads is not None:
            torch.set_num_threads(self.cpu_threads)
        await asyncio.to_thread(self.stats.load)  # the statistics live in the database
        lexicon = self._slots[LEXICON_MODEL_ID]
        await lexicon.load()
        self.engines.start(lexicon)
        cpus, memory = await asyncio.to_thread(lambda: (usable_cpus(), memory_limit()))
        model_cores = self.cpu_threads or model_threads(cpus.count)
        rules = BudgetRules(
            cpu_share=self.cpu_share,
            news_per_min=self.news_per_min,
            deadline_ms=self.scorer.news_deadline_s * 1000,
            model_cores=model_cores,
            memory_mib=(memory.available_mib if memory is not None else 4096.0) / 2,
            cores_from=cpus.describe(),
            memory_from=memory.describe() if memory is not None else "unknown: 4096 MiB assumed",
        )
        logger.info("budget: %d model core(s) of %s; weights within half of %s", model_cores, rules.cores_from,
                    rules.memory_from)
        self.pricer.start(rules)
        for slot in self._slots.values():
            if self.auto_budget or slot.model_id in self._requested:
                slot.mark_loading(self._waiting_reason(slot))
            elif slot.status is ModelStatus.NOT_LOADED:
                slot.skip(f"skipped: not in MODELS; {_SET_MODELS_HINT}")
        self._loader = self._spawn(self._load_all(), name="inference-loader")
        if self.self_evaluate and self.evaluator.sample:
            self._spawn(self.evaluator.run_forever(self.engines.engines.get), name="inference-self-evaluation")
            self.evaluator.enqueue(LEXICON_MODEL_ID)
        if self.stats.store is not None and self.stats_flush_s > 0:
            self._spawn(self._flush_stats_forever(), name="inference-stats-flush")

    def _waiting_reason(self, slot: ModelSlot) -> str:
        """What a model marked loading at start waits for, until its own load begins."""
        if slot.model_id == EMBEDDED_MODEL_ID:
            return "loading: queued first (it works offline and its measured cost prices the others)"
        if self.auto_budget and slot.spec.kind == "transformers":
            return ("loading: waiting for the CPU budget, which prices it once the embedded model is loaded"
                    " and measured, then loads or skips it")
        return "loading: queued (models load one at a time, in MODELS order)"

    def _spawn(self, coro: Any, *, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)
        return task

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        # Logged once here with its traceback; stop() raises it again for the app's lifespan.
        logger.error("inference: background task %s crashed", task.get_name(), exc_info=task.exception())
        self._crashed = self._crashed or task.exception()

    async def _load_all(self) -> None:
        # The embedded model first: it is the one that works offline, so the ensemble has a real
        # model quickly, and its measured cost prices the others; hub models follow in the
        # configured order (the budget's priority when it chooses).
        rank = {model_id: index for index, model_id in enumerate(CPU_PRIORITY)}
        order = sorted(
            (slot for slot in self._slots.values() if slot.model_id != LEXICON_MODEL_ID),
            key=lambda slot: (slot.model_id != EMBEDDED_MODEL_ID, rank.get(slot.model_id, len(rank))
                              if self.auto_budget else 0),
        )
        for slot in order:
            if slot.status is not ModelStatus.LOADING:
                await self.pricer.price(slot.spec)  # skipped: its estimated cost still goes in its status
                continue
            if self.auto_budget and slot.spec.kind == "transformers":
                refusal = await self.pricer.refusal(slot.spec)
                if refusal is not None:
                    slot.skip(f"skipped: {refusal}; {_SET_MODELS_HINT}")
                    logger.info("load %s: %s", slot.model_id, slot.reason)
                    continue
            await self._load_slot(slot, "budget" if self.auto_budget else "MODELS")

    async def _load_slot(self, slot: ModelSlot, why: str) -> None:
        """Load one model, start its engine, measure one news item's cost; budget picks must still fit."""
        await slot.load()
        if not slot.is_available:
            return
        self.engines.start(slot)
        assert slot.model is not None
        cost = await asyncio.get_running_loop().run_in_executor(
            self.engines.executors[slot.model_id], measure_item_cost, slot.model.predict_probs, self.cpu_threads or 1
        )
        logger.info("load %s: one news item costs %.0f core-ms here", slot.model_id, cost.core_ms)
        refusal = self.pricer.measured(slot.model_id, slot.model, cost, why)
        if refusal is not None:
            await self._unload(slot, f"skipped: measured after loading: {refusal}; {_SET_MODELS_HINT}")
            return
        if self.self_evaluate:
            self.evaluator.enqueue(slot.model_id)

    async def load_model(self, model_id: str) -> dict[str, Any]:
        """Start loading a listed model in the background (an admin's request); return its status.

        Raises:
            UnknownModel: not a listed model.
        """
        slot = self._slot(model_id)
        if not (slot.is_available or slot.status is ModelStatus.LOADING):
            self._requested.add(model_id)
            slot.mark_loading("loading: asked for by an admin")  # at once: the load task starts next loop turn
            task = self._spawn(self._load_slot(slot, "admin"), name=f"inference-load:{model_id}")
            self._admin_loads[model_id] = task
            task.add_done_callback(lambda _task: self._admin_loads.pop(model_id, None))
        return self.describe_model(model_id)

    async def unload_model(self, model_id: str) -> dict[str, Any]:
        """Unload a model (an admin's request): it stays listed as skipped; return its status.

        Raises:
            UnknownModel: not a listed model.
            ModelNotReady: the lexicon (the last resort never unloads) or a model still loading.
        """
        slot = self._slot(model_id)
        if slot.spec.kind == "lexicon":
            raise ModelNotReady("the lexicon is the last resort and cannot be unloaded")
        if slot.status is ModelStatus.LOADING:
            raise ModelNotReady(f"{model_id} is still loading; unload it once it is available")
        if slot.is_available:
            self._requested.discard(model_id)
            await self._unload(slot, f"skipped: unloaded by an admin; {_SET_MODELS_HINT}")
        return self.describe_model(model_id)

    async def _unload(self, slot: ModelSlot, reason: str) -> None:
        await self.engines.stop(slot.model_id)
        self.pricer.release(slot.model_id)
        slot.skip(reason)
        logger.info("unload %s: %s", slot.model_id, reason)

    def _slot(self, model_id: str) -> ModelSlot:
        slot = self._slots.get(model_id)
        if slot is None:
            raise UnknownModel(model_id, self.model_ids)
        return slot

    async def wait_until_loaded(self, timeout: float | None = None) -> None:
        """Wait until every model is available or failed (for scripts and tests)."""
        if self._loader is None:
            raise RuntimeError("wait_until_loaded() before start()")
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._loader)

    def ensemble_choices(self) -> dict[str, Any]:
        """Return, per domain, what serves it and the measurements behind the choice (empty before any)."""
        return self.evaluator.ensemble_choices()

    async def _flush_stats_forever(self) -> None:
        await asyncio.sleep(self.stats_flush_s)  # nothing to save yet at start
        await run_every(self.stats_flush_s, self._flush_stats, name="stats: save", log=logger)

    async def _flush_stats(self) -> None:
        try:
            await asyncio.to_thread(self.stats.save)
        except OSError as exc:  # a full or read-only disk: say it in one line, keep serving
            logger.warning("stats: save failed: %s", exc)

    async def stop(self) -> None:
        """Stop engines and background tasks, save statistics; re-raise a crashed loader's error."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # crashes were recorded when they ended
        await self.engines.stop_all()
        try:
            await asyncio.to_thread(self.stats.save)
        except OSError as exc:
            logger.warning("stats: final save failed: %s", exc)
        self._started = False
        crashed, self._crashed = self._crashed, None
        if crashed is not None:
            raise crashed

    # ----------------------------------------------------------------- scoring

    async def score(
        self,
        texts: Sequence[str],
        domain: Domain = "news",
        model: str | None = None,
        *,
        fallback: bool = True,
        deadline: bool = False,
    ) -> list[SentimentResult]:
        """Score texts: one model when `model` is given, else the weighted ensemble.

        A model that raises, times out or is overloaded is counted and skipped; its texts go to
        the next available model, the lexicon last. `fallback=False` (evaluation) disables that.
        `deadline=True` (the news desk) combines the members that answered within
        `news_deadline_ms` and cancels the rest; the result's `model` names those that did.

        Raises:
            UnknownModel: `model` is not configured.
            ValueError: `domain` is not news or social.
            ModelNotReady: with `fallback=False`, the model is not available.
            EngineOverloaded: even the lexicon's queue is full.
            RuntimeError: the service is not started.
        """
        if domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
        if model is not None and model not in self._slots:
            raise UnknownModel(model, self.model_ids)
        if not self._started:
            raise RuntimeError("InferenceService.score() before start()")
        batch = [str(text) for text in texts]
        if not batch:
            return []
        return await self.scorer.score(batch, domain, model, fallback=fallback, deadline=deadline)

    # ----------------------------------------------------------------- monitoring

    def describe_models(self) -> list[dict[str, Any]]:
        """Return one dict per model for `models_status` and `system_status.ai_models`."""
        return [self.monitor.describe_model(model_id) for model_id in self._slots]

    def describe_model(self, model_id: str) -> dict[str, Any]:
        """Return one model's state, the reason for it in words, its measured figures and statistics."""
        return self.monitor.describe_model(model_id)

    def describe_lock(self, model_id: str) -> dict[str, Any] | None:
        """Return the lock state of a hub model: locked (commit) or unlocked (with a warning)."""
        return self.monitor.describe_lock(model_id)

    def evaluation_results(self) -> list[dict[str, Any]]:
        """Return the self-evaluation rows (model x domain, ensemble choices), then the head's stored ones."""
        stored = stored_evaluation() if EMBEDDED_MODEL_ID in self._slots else []
        return self.evaluator.result_rows() + stored

    def readiness(self) -> dict[str, Any]:
        """Say which models are still loading; ready once every configured model has settled."""
        return self.monitor.readiness(self._started)

    def count_statuses(self) -> dict[str, int]:
        """Return total / available / loading / failed / skipped counts; total is their sum."""
        return self.monitor.count_statuses()

    def could_overflow(self, texts: Sequence[str], scored_by: str) -> bool:
        """Return False when no text can exceed the window of a model that scored it (no tokenizing)."""
        return self.scorer.could_overflow(texts, scored_by)

    def window_overflows(self, texts: Sequence[str], scored_by: str) -> list[bool]:
        """Return, per text, whether it exceeded the token window of a model that scored it (blocking)."""
        return self.scorer.window_overflows(texts, scored_by)
