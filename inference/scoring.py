"""Scoring texts with the loaded models: one model or the weighted ensemble, with fallback and a news deadline.

Also whether a text outran the token window of a model that scored it (`truncated` in results).

A model call that raises, overruns `call_timeout_s` or finds its queue full is counted against
that model (`stats.py`) and its texts go to the next model, the lexicon last. The ensemble's
weight of a model per domain is an override, else what self-evaluation measured, else the
catalog's prior.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from core.records import SentimentResult

from .catalog import LEXICON_MODEL_ID, Domain
from .engine import BatchEngine
from .ensemble import ModelAnswer, combine_answers, resolve_weights, result_from_probs
from .errors import EngineOverloaded, InferenceError, ModelCallTimeout, ModelNotReady
from .evaluator import Probs, SelfEvaluator
from .loader import ModelSlot
from .selfeval import apply_temperature
from .stats import StatsRegistry

__all__ = ["EnsembleScorer"]

logger = logging.getLogger(__name__)

_SPECIAL_TOKENS_MAX = 4  # [CLS]/[SEP] or <s>/</s>, with room to spare


class EnsembleScorer:
    """Scores texts with the models the service holds (it shares the service's slots and engines).

    Args:
        slots, engines: the service's models and their batchers, read at each call.
        stats: where each call's outcome is counted.
        evaluator: the measured ensemble choices (weights and temperatures per domain).
        weights: per-model weight overrides, e.g. {"ProsusAI/finbert": {"news": 1.2}}.
        call_timeout_s: a model call slower than this counts as a failure and falls back.
        news_deadline_s: how long `score(..., deadline=True)` waits for the ensemble's members.

    Raises:
        ValueError: a weight override for a model not among the slots, or a bad value.
    """

    def __init__(
        self,
        slots: Mapping[str, ModelSlot],
        engines: Mapping[str, BatchEngine[Probs]],
        stats: StatsRegistry,
        evaluator: SelfEvaluator,
        *,
        weights: Mapping[str, Mapping[str, float]],
        call_timeout_s: float,
        news_deadline_s: float,
    ) -> None:
        if call_timeout_s <= 0:
            raise ValueError(f"call_timeout_s must be > 0, got {call_timeout_s}")
        self._slots = slots
        self._engines = engines
        self._stats = stats
        self._evaluator = evaluator
        self._weights = resolve_weights(list(slots), weights)
        self._weight_overrides = {model_id: dict(values) for model_id, values in weights.items()}
        self.call_timeout_s = call_timeout_s
        self.news_deadline_s = news_deadline_s
        self.deadline_misses: dict[str, int] = {}

    def weight(self, model_id: str, domain: Domain) -> float:
        """Return the ensemble weight of a model for a domain: an override, else measured, else the prior."""
        if domain in self._weight_overrides.get(model_id, {}):
            return self._weights[model_id][domain]
        choice = self._evaluator.choice(domain)
        if choice is not None:
            return choice.weights.get(model_id, 0.0)  # not measured yet: out until it is
        return self._weights[model_id][domain]

    def weight_source(self, domain: Domain, model_id: str) -> str:
        """Say where `weight()` comes from: override, measured or catalog prior."""
        if domain in self._weight_overrides.get(model_id, {}):
            return "override"
        return "measured" if self._evaluator.choice(domain) is not None else "catalog prior"

    async def score(
        self,
        batch: list[str],
        domain: Domain,
        model: str | None,
        *,
        fallback: bool,
        deadline: bool,
    ) -> list[SentimentResult]:
        """Score a non-empty batch (`InferenceService.score` says how and checks the arguments)."""
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

    async def _call(self, model_id: str, texts: list[str]) -> list[Probs]:
        engine = self._engines.get(model_id)
        if engine is None:
            raise ModelNotReady(f"{model_id} is {self._slots[model_id].status.value}")
        stats = self._stats.get(model_id)
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
            choice = self._evaluator.choice(domain)
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
