"""`InferenceService`: loads the configured models in the background and scores texts.

Life cycle: `InferenceService(section, ...)` checks the configuration; `await start()` makes the lexicon
available at once and loads the other models one by one in a daemon thread; `await stop()`
stops the engines and saves the statistics. `score()` always answers: models that are still
loading, failed or skipped are left out, and the lexicon is the last resort.

Every catalog model is listed, loaded or not: MODELS names what to load; unset, the measured
budget decides on CPU (`budget.py`) and everything loads on CUDA. `load_model()` and
`unload_model()` change that while the app runs (the admin routes).
"""

from __future__ import annotations

import asyncio
import logging
import time
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
    ModelSpec,
    get_spec,
    resolve_model_ids,
)
from .classifier import SentimentModel, resolve_precision
from .engine import BatchEngine
from .ensemble import ModelAnswer, combine_answers, resolve_weights, result_from_probs
from .errors import (
    EngineOverloaded,
    InferenceError,
    ModelCallTimeout,
    ModelNotReady,
    UnknownModel,
)
from .evalsample import SAMPLE_PATH, read_sample
from .executors import ModelExecutor, lower_thread_priority
from .head import load_embedded_classifier, stored_evaluation
from .lexicon import CryptoLexicon
from .loader import (
    LoadOptions,
    ModelSlot,
    ModelStatus,
    load_transformers_classifier,
    resolve_device,
    resolve_model_source,
)
from .lock import LOCK_PATH, read_lock
from .pricing import ModelPricer
from .selfeval import EnsembleChoice, apply_temperature, choose_fair_ensemble, measure
from .stats import StatsRegistry, StatsStore
from .trainingrows import TrainingOverlap, head_train_keys, training_overlap

__all__ = ["InferenceService"]

logger = logging.getLogger(__name__)

_DOMAINS: tuple[Domain, ...] = ("news", "social")
_SPECIAL_TOKENS_MAX = 4  # [CLS]/[SEP] or <s>/</s>, with room to spare
# Model threads run below the event loop's priority; hub models (a BERT-base is ~10x the embedded
# model's work) lowest, so a single text asked of the embedded model is not queued behind them.
EMBEDDED_NICE = 2
HUB_NICE = 10
_SET_MODELS_HINT = "set MODELS to load it at start, or load it with the admin token"
Probs = dict[str, float]


def _runtime_of(model: SentimentModel | None) -> dict[str, Any] | None:
    """How a loaded model runs and how that was chosen (`autotune.RuntimeChoice`), for monitoring."""
    choice = getattr(model, "runtime_choice", None)
    return choice.as_dict() if choice is not None else None


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
        if call_timeout_s <= 0:
            raise ValueError(f"call_timeout_s must be > 0, got {call_timeout_s}")
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
        self._engine_kwargs: dict[str, Any] = {
            "max_batch": max_batch,
            "max_wait_ms": section.inference_max_wait_ms,
            "max_queue": max_queue,
        }
        BatchEngine(lambda texts: texts, **self._engine_kwargs)  # validate the limits now
        threads = section.inference_threads
        self.cpu_threads = threads if threads is not None or not on_cpu else model_threads()
        self.cpu_share = section.inference_cpu_share
        self.news_per_min = section.news_rate_per_min
        self.news_deadline_s = section.news_score_deadline_ms / 1000
        self.pricer = ModelPricer(self.options, self._locks, ask_hub=self.auto_budget)
        self._admin_loads: dict[str, asyncio.Task[None]] = {}
        self.deadline_misses: dict[str, int] = {}
        self.call_timeout_s = call_timeout_s
        self.stats_flush_s = stats_flush_s
        self._weights = resolve_weights(ids, weights or {})
        self._weight_overrides = {model_id: dict(values) for model_id, values in (weights or {}).items()}
        self.self_evaluate = section.self_evaluate
        self._sample = read_sample(sample_path) if self.self_evaluate else []
        self._eval_queue: asyncio.Queue[str] = asyncio.Queue()
        self._eval_answers: dict[str, list[Probs]] = {}
        self._overlaps: dict[str, TrainingOverlap] = {}  # sample rows each model was trained on
        self._evaluations: dict[str, dict[str, Any]] = {}
        self._choices: dict[Domain, EnsembleChoice] = {}
        self.stats = StatsRegistry(stats_store)
        self._slots: dict[str, ModelSlot] = {
            model_id: self._make_slot(get_spec(model_id)) for model_id in ids
        }
        self._engines: dict[str, BatchEngine[Probs]] = {}
        self._executors: dict[str, ModelExecutor] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loader: asyncio.Task[None] | None = None
        self._crashed: BaseException | None = None
        self._started = False

    # ----------------------------------------------------------------- configuration

    def _make_slot(self, spec: ModelSpec) -> ModelSlot:
        options = self.options
        if spec.kind == "lexicon":
            return ModelSlot(spec, CryptoLexicon)
        if spec.kind == "embedded":

            def load_embedded() -> SentimentModel:
                lower_thread_priority(EMBEDDED_NICE)  # loading and autotune never outrank the loop
                return load_embedded_classifier(options)

            return ModelSlot(spec, load_embedded)

        lock = self._locks.get(spec.id)

        def load_hub_model() -> SentimentModel:
            lower_thread_priority(HUB_NICE)
            if lock is None:
                logger.warning("load %s: unlocked: no entry in the model lock, loading the hub's main", spec.id)
            source = resolve_model_source(spec.id, options, lock, on_download=slot.track_download)
            logger.info("load %s: files from %s (%s)", spec.id, source.path, source.origin)
            return load_transformers_classifier(spec, source, options)

        slot = ModelSlot(spec, load_hub_model)
        return slot

    @property
    def model_ids(self) -> list[str]:
        """Configured model ids in fallback order (the lexicon last)."""
        return list(self._slots)

    def weight(self, model_id: str, domain: Domain) -> float:
        """Return the ensemble weight of a model for a domain: an override, else measured, else the prior."""
        if domain in self._weight_overrides.get(model_id, {}):
            return self._weights[model_id][domain]
        choice = self._choices.get(domain)
        if choice is not None:
            return choice.weights.get(model_id, 0.0)  # not measured yet: out until it is
        return self._weights[model_id][domain]

    def _weight_source(self, domain: Domain, model_id: str) -> str:
        if domain in self._weight_overrides.get(model_id, {}):
            return "override"
        return "measured" if domain in self._choices else "catalog prior"

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
        self._start_engine(lexicon)
        cpus, memory = await asyncio.to_thread(lambda: (usable_cpus(), memory_limit()))
        model_cores = self.cpu_threads or model_threads(cpus.count)
        rules = BudgetRules(
            cpu_share=self.cpu_share,
            news_per_min=self.news_per_min,
            deadline_ms=self.news_deadline_s * 1000,
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
                slot.mark_loading()
            elif slot.status is ModelStatus.NOT_LOADED:
                slot.skip(f"skipped: not in MODELS; {_SET_MODELS_HINT}")
        self._loader = self._spawn(self._load_all(), name="inference-loader")
        if self.self_evaluate and self._sample:
            self._spawn(self._evaluate_forever(), name="inference-self-evaluation")
            self._eval_queue.put_nowait(LEXICON_MODEL_ID)
        if self.stats.store is not None and self.stats_flush_s > 0:
            self._spawn(self._flush_stats_forever(), name="inference-stats-flush")

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
        self._start_engine(slot)
        assert slot.model is not None
        cost = await asyncio.get_running_loop().run_in_executor(
            self._executors[slot.model_id], measure_item_cost, slot.model.predict_probs, self.cpu_threads or 1
        )
        logger.info("load %s: one news item costs %.0f core-ms here", slot.model_id, cost.core_ms)
        refusal = self.pricer.measured(slot.model_id, slot.model, cost, why)
        if refusal is not None:
            await self._unload(slot, f"skipped: measured after loading: {refusal}; {_SET_MODELS_HINT}")
            return
        if self.self_evaluate:
            self._eval_queue.put_nowait(slot.model_id)

    async def load_model(self, model_id: str) -> dict[str, Any]:
        """Start loading a listed model in the background (an admin's request); return its status.

        Raises:
            UnknownModel: not a listed model.
        """
        slot = self._slot(model_id)
        if not (slot.is_available or slot.status is ModelStatus.LOADING):
            self._requested.add(model_id)
            slot.status = ModelStatus.LOADING  # at once: the load task starts on the next loop turn
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
        engine = self._engines.pop(slot.model_id, None)
        if engine is not None:
            await engine.stop()
        executor = self._executors.pop(slot.model_id, None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        self.pricer.release(slot.model_id)
        slot.skip(reason)
        logger.info("unload %s: %s", slot.model_id, reason)

    def _slot(self, model_id: str) -> ModelSlot:
        slot = self._slots.get(model_id)
        if slot is None:
            raise UnknownModel(model_id, self.model_ids)
        return slot

    def _start_engine(self, slot: ModelSlot) -> None:
        assert slot.model is not None
        # Each model on its own thread: a slow or hung model delays only its own callers. The lexicon
        # too: on the loop's default pool it would compete with the news desk's commits.
        previous = self._executors.pop(slot.model_id, None)
        if previous is not None:
            previous.shutdown(wait=False, cancel_futures=True)
        nice = EMBEDDED_NICE if slot.spec.kind in ("embedded", "lexicon") else HUB_NICE
        executor = self._executors[slot.model_id] = ModelExecutor(f"model:{slot.model_id}", nice=nice)
        kwargs = dict(self._engine_kwargs)
        if slot.spec.kind == "lexicon":
            kwargs["max_batch"] = max(kwargs["max_batch"], 256)  # VADER is per text: batch size is free
            kwargs["max_queue"] = max(kwargs["max_queue"], kwargs["max_batch"])
        engine: BatchEngine[Probs] = BatchEngine(
            slot.model.predict_probs, name=slot.model_id, executor=executor, **kwargs
        )
        engine.start()
        self._engines[slot.model_id] = engine

    async def wait_until_loaded(self, timeout: float | None = None) -> None:
        """Wait until every model is available or failed (for scripts and tests)."""
        if self._loader is None:
            raise RuntimeError("wait_until_loaded() before start()")
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._loader)

    async def _evaluate_forever(self) -> None:
        # One model at a time, in chunks of one engine batch: news waits behind one chunk at most.
        while True:
            model_id = await self._eval_queue.get()
            try:
                await self._evaluate(model_id)
            except Exception as exc:  # a failed evaluation is reported, never fatal
                self._evaluations[model_id] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                logger.warning("self-evaluation %s: failed: %s", model_id, exc)

    async def _evaluate(self, model_id: str) -> None:
        engine = self._engines.get(model_id)
        if engine is None:
            return
        self._evaluations[model_id] = {"status": "running"}
        started = time.monotonic()
        texts = [row.text for row in self._sample]
        # Rows the model was trained on are left out of its score (trainingrows.py).
        keys = await asyncio.to_thread(head_train_keys) if model_id == EMBEDDED_MODEL_ID else None
        overlap = training_overlap(model_id, texts, [row.source for row in self._sample], train_keys=keys)
        self._overlaps[model_id] = overlap
        if len(overlap.excluded) == len(texts):
            self._evaluations[model_id] = {
                "status": "excluded",
                "error": f"not measured: all {len(texts)} rows of the sample are excluded ({overlap.reason})",
                "excluded": overlap.as_dict(),
            }
            logger.info("self-evaluation %s: every row excluded: %s", model_id, overlap.reason)
            if self._eval_answers:
                await self._refit_ensemble()  # so the choice lists it as left out, with weight 0
            return
        chunk = int(self._engine_kwargs["max_batch"])
        answers: list[Probs] = []
        for first in range(0, len(texts), chunk):
            answers += await engine.submit(texts[first : first + chunk])
        by_domain: dict[str, Any] = {}
        for domain in sorted({row.domain for row in self._sample}):
            rows = [i for i, row in enumerate(self._sample) if row.domain == domain and i not in overlap.excluded]
            if rows:
                by_domain[domain] = measure([answers[i] for i in rows], [self._sample[i].label for i in rows])
        self._eval_answers[model_id] = answers
        self._evaluations[model_id] = {
            "status": "done",
            "sample": "inference/evalset/sample.jsonl",
            "seconds": round(time.monotonic() - started, 1),
            "domains": by_domain,
            "excluded": overlap.as_dict(),
        }
        logger.info("self-evaluation %s: %s", model_id, {d: m["accuracy"] for d, m in by_domain.items()})
        await self._refit_ensemble()

    async def _refit_ensemble(self) -> None:
        measured = [model_id for model_id in self._eval_answers if model_id != LEXICON_MODEL_ID]
        for domain in _DOMAINS:
            rows = [i for i, row in enumerate(self._sample) if row.domain == domain]
            answers = {model_id: [self._eval_answers[model_id][i] for i in rows] for model_id in measured}
            excluded = {
                model_id: frozenset(j for j, i in enumerate(rows) if i in self._overlaps[model_id].excluded)
                for model_id in measured
            }
            labels = [self._sample[i].label for i in rows]
            unmeasured = {
                model_id: f"not measured: {overlap.reason}"
                for model_id, overlap in self._overlaps.items()
                if model_id not in self._eval_answers and model_id != LEXICON_MODEL_ID
            }
            # Fitting and its bootstrap take a few hundred milliseconds of numpy: off the loop.
            choice = await asyncio.to_thread(choose_fair_ensemble, answers, labels, excluded, unmeasured)
            if choice is not None:
                self._choices[domain] = choice
                logger.info("ensemble %s: %s", domain, choice.reason)

    def ensemble_choices(self) -> dict[str, Any]:
        """Return, per domain, what serves it and the measurements behind the choice (empty before any)."""
        return {domain: choice.as_dict() for domain, choice in self._choices.items()}

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
        for engine in self._engines.values():
            await engine.stop()
        self._engines.clear()
        for executor in self._executors.values():
            # wait=False: a batch still running must not hold shutdown; its thread ends with it.
            executor.shutdown(wait=False, cancel_futures=True)
        self._executors.clear()
        try:
            await asyncio.to_thread(self.stats.save)
        except OSError as exc:
            logger.warning("stats: final save failed: %s", exc)
        self._started = False
        crashed, self._crashed = self._crashed, None
        if crashed is not None:
            raise crashed

    # ----------------------------------------------------------------- scoring

    async def _call(self, model_id: str, texts: list[str]) -> list[Probs]:
        engine = self._engines.get(model_id)
        if engine is None:
            raise ModelNotReady(f"{model_id} is {self._slots[model_id].status.value}")
        stats = self.stats.get(model_id)
        if engine.busy_s > self.call_timeout_s:
            # Its current call already overran: queueing behind it would only make this caller
            # wait out the timeout too. Charged to the stalled model, never to the caller.
            stats.record_failure(f"stalled: a call has run {engine.busy_s:.0f}s")
            raise ModelCallTimeout(f"{model_id}: stalled, a call has run for {engine.busy_s:.0f}s")
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.call_timeout_s):
                probs = await engine.submit(texts)
        except EngineOverloaded as exc:
            stats.record_rejected(str(exc))
            raise
        except TimeoutError as exc:
            stats.record_failure(f"timeout after {self.call_timeout_s:g}s")
            raise ModelCallTimeout(f"{model_id}: no answer within {self.call_timeout_s:g}s") from exc
        except Exception as exc:
            stats.record_failure(f"{type(exc).__name__}: {exc}")
            raise
        stats.record_success((time.monotonic() - started) * 1000.0, len(texts))
        return probs

    def _fallback_chain(self, first: str | None) -> list[str]:
        chain = [model_id for model_id, slot in self._slots.items() if slot.is_available]
        if first is not None:
            chain = [first] + [model_id for model_id in chain if model_id != first]
        return chain

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
        if domain not in _DOMAINS:
            raise ValueError(f"domain must be one of {_DOMAINS}, got {domain!r}")
        if model is not None and model not in self._slots:
            raise UnknownModel(model, self.model_ids)
        if not self._started:
            raise RuntimeError("InferenceService.score() before start()")
        batch = [str(text) for text in texts]
        if not batch:
            return []
        if model is not None and not fallback:
            return [result_from_probs(probs, model) for probs in await self._call(model, batch)]
        if model is None:
            members = self._ensemble_members(domain)
            answers = await self._ensemble_answers(batch, domain, members, deadline)
            if answers:
                return combine_answers(answers, len(batch))
            # Every member failed (or none was available): the other models, the lexicon last.
            chain = [model_id for model_id in self._fallback_chain(None) if model_id not in members]
            chain = [model_id for model_id in chain if model_id != LEXICON_MODEL_ID] + [LEXICON_MODEL_ID]
        else:
            chain = self._fallback_chain(model)
        last_error: Exception | None = None
        for model_id in chain:
            try:
                probs = await self._call(model_id, batch)
            except Exception as exc:  # counted in _call; try the next model
                last_error = exc
                if model_id == LEXICON_MODEL_ID and isinstance(exc, EngineOverloaded):
                    raise
                logger.warning("score: %s failed (%s); falling back", model_id, exc)
                continue
            return [result_from_probs(row, model_id) for row in probs]
        raise InferenceError(f"no model could score the texts; last error: {last_error!r}")

    def _ensemble_members(self, domain: Domain) -> list[str]:
        return [
            model_id
            for model_id, slot in self._slots.items()
            if slot.is_available and self.weight(model_id, domain) > 0
        ]

    async def _ensemble_answers(
        self, texts: list[str], domain: Domain, members: list[str], deadline: bool = False
    ) -> list[ModelAnswer]:
        if not members:
            return []
        if deadline:
            outcomes = await self._answers_within_deadline(texts, members)
        else:
            outcomes = await asyncio.gather(
                *(self._call(model_id, texts) for model_id in members), return_exceptions=True
            )
        answers = []
        for model_id, outcome in zip(members, outcomes, strict=True):
            if outcome is None:
                continue  # missed the deadline: counted in deadline_misses
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome  # cancellation and friends are not model failures
                logger.warning("score: %s left out of the ensemble: %s", model_id, outcome)
                continue
            choice = self._choices.get(domain)
            temperature = choice.temperatures.get(model_id) if choice is not None else None
            if temperature is not None:
                outcome = [apply_temperature(row, temperature) for row in outcome]
            answers.append(ModelAnswer(model_id, self.weight(model_id, domain), outcome))
        return answers

    async def _answers_within_deadline(
        self, texts: list[str], members: list[str]
    ) -> list[list[Probs] | BaseException | None]:
        """Each member's answer, its error, or None when it was not done within the news deadline."""
        calls = [asyncio.ensure_future(self._call(model_id, texts)) for model_id in members]
        done, pending = await asyncio.wait(calls, timeout=self.news_deadline_s)
        for call in pending:
            # Cancelled: texts still queued are dropped by the engine, so a slow model's backlog
            # cannot grow; a batch already running finishes on its thread.
            call.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        outcomes: list[list[Probs] | BaseException | None] = []
        for model_id, call in zip(members, calls, strict=True):
            if call in pending:
                self.deadline_misses[model_id] = self.deadline_misses.get(model_id, 0) + 1
                outcomes.append(None)
            else:
                outcomes.append(call.exception() or call.result())
        return outcomes

    # ----------------------------------------------------------------- monitoring

    def describe_models(self) -> list[dict[str, Any]]:
        """Return one dict per model for `models_status` and `system_status.ai_models`."""
        return [self.describe_model(model_id) for model_id in self._slots]

    def describe_model(self, model_id: str) -> dict[str, Any]:
        """Return one model's state, the reason for it in words, its measured figures and statistics."""
        slot = self._slots[model_id]
        numbers = self.stats.get(model_id).snapshot()
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
            "budget": self.pricer.figures(model_id) if slot.spec.kind != "lexicon" else None,
            "news_deadline_misses": self.deadline_misses.get(model_id, 0),
            "device": loaded.device if loaded is not None else self.device,
            "precision": getattr(loaded, "precision", None)
            if loaded is not None
            else self.options.precision,
            "runtime": _runtime_of(loaded),
            "weights": {domain: round(self.weight(model_id, domain), 4) for domain in _DOMAINS},
            "weight_source": {domain: self._weight_source(domain, model_id) for domain in _DOMAINS},
            "evaluation": self._evaluations.get(model_id),
            "load_seconds": round(slot.load_seconds, 2) if slot.load_seconds is not None else None,
            "lock": self.describe_lock(model_id),
            **numbers,
        }

    def _reason(self, slot: ModelSlot) -> str:
        status = slot.status
        if status in (ModelStatus.FAILED, ModelStatus.SKIPPED):
            return slot.reason or status.value
        if status is ModelStatus.AVAILABLE:
            why = self.pricer.loaded_by.get(slot.model_id)
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
        return "loading"

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

    def evaluation_results(self) -> list[dict[str, Any]]:
        """Return the self-evaluation rows (model x domain, ensemble choices), then the head's stored ones."""
        rows: list[dict[str, Any]] = []
        for model_id, evaluation in self._evaluations.items():
            for domain, numbers in (evaluation.get("domains") or {}).items():
                row = {"model": model_id, "dataset": f"shipped sample, {domain}", **_shown(numbers)}
                rows.append(row | _excluded_note(evaluation.get("excluded")))
        for domain, choice in self._choices.items():
            rows.append({"model": f"ensemble ({domain})", "dataset": f"checked half, {domain}",
                         "n": choice.n_check, "macro_f1": choice.ensemble_check_f1, "note": choice.reason})
        return rows + (stored_evaluation() if EMBEDDED_MODEL_ID in self._slots else [])

    def readiness(self) -> dict[str, Any]:
        """Say which models are still loading; ready once every configured model has settled."""
        by_status: dict[str, list[str]] = {status.value: [] for status in ModelStatus}
        for model_id, slot in self._slots.items():
            by_status[slot.status.value].append(model_id)
        waiting = by_status[ModelStatus.LOADING.value] + by_status[ModelStatus.NOT_LOADED.value]
        return {
            # Skipped models are settled: they are not coming unless someone asks for them.
            "ready": self._started and not waiting,
            "loading": waiting,
            "available": by_status[ModelStatus.AVAILABLE.value],
            "failed": {model_id: self._slots[model_id].reason for model_id in by_status[ModelStatus.FAILED.value]},
            "skipped": {model_id: self._slots[model_id].reason for model_id in by_status[ModelStatus.SKIPPED.value]},
        }

    def could_overflow(self, texts: Sequence[str], scored_by: str) -> bool:
        """Return False when no text can exceed the window of a model that scored it (no tokenizing).

        WordPiece and byte-level BPE make at most one token per UTF-8 byte, plus a few special
        tokens, so a text with fewer bytes than the window needs no `window_overflows()` call.
        """
        windows = [window for _, window in self._windows(scored_by)]
        if not windows:
            return False
        limit = min(windows) - _SPECIAL_TOKENS_MAX
        return any(len(text.encode("utf-8")) > limit for text in texts)

    def window_overflows(self, texts: Sequence[str], scored_by: str) -> list[bool]:
        """Return, per text, whether it exceeded the token window of a model that scored it.

        Blocking (tokenizes): call it in a thread. Models without a tokenizer (the lexicon)
        read the whole text, so they never truncate.
        """
        flags = [False] * len(texts)
        for model, window in self._windows(scored_by):
            counts = model.count_tokens(texts)
            flags = [flag or count > window for flag, count in zip(flags, counts, strict=True)]
        return flags

    def _windows(self, scored_by: str) -> list[tuple[Any, int]]:
        """(model, token window) of each tokenizing model in `scored_by` (a model or an ensemble)."""
        members = scored_by[len("ensemble(") : -1].split("+") if scored_by.startswith("ensemble(") else [scored_by]
        windows = []
        for model_id in members:
            slot = self._slots.get(model_id)
            window = getattr(slot.model, "max_length", None) if slot is not None else None
            if slot is not None and hasattr(slot.model, "count_tokens") and isinstance(window, int):
                windows.append((slot.model, window))
        return windows

    def count_statuses(self) -> dict[str, int]:
        """Return total / available / loading / failed / skipped counts; total is their sum."""
        counts = {"total": len(self._slots), "available": 0, "loading": 0, "failed": 0, "skipped": 0}
        for slot in self._slots.values():
            counts[_shown_status(slot.status)] += 1
        return counts


def _excluded_note(excluded: dict[str, Any] | None) -> dict[str, str]:
    """A `note` for a self-evaluation row: the rows left out of the score and why, or unknown training data."""
    if not excluded:
        return {}
    if excluded.get("rows"):
        return {"note": f"{excluded['rows']} of {excluded['of']} rows left out: {excluded['reason']}"}
    return {} if excluded.get("training_data_known", True) else {"note": str(excluded["reason"])}


def _shown_status(status: ModelStatus) -> str:
    """The four states clients see: a model not yet scheduled counts as loading."""
    return ModelStatus.LOADING.value if status is ModelStatus.NOT_LOADED else status.value


def _shown(numbers: dict[str, Any]) -> dict[str, Any]:
    """Format intervals as `low-high` for the Models tab's table."""
    shown = dict(numbers)
    for key in ("accuracy_ci95", "macro_f1_ci95"):
        if isinstance(shown.get(key), list):
            low, high = shown[key]
            shown[key] = f"{low:.3f}-{high:.3f}"
    return shown
