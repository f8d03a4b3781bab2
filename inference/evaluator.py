"""Self-evaluation while serving: each model scores the shipped sample once it loads, and the ensemble is refit.

One model at a time, in chunks of one engine batch, so news waits behind one chunk at most. The
rows a model was trained on are left out of its score (`trainingrows.py`); the arithmetic, the
measurements and the fair ensemble choice, is `selfeval.py`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from core.protocol import ModelEvaluation, SampleExclusion, SampleFigures

from .catalog import EMBEDDED_MODEL_ID, LEXICON_MODEL_ID, Domain
from .engine import BatchEngine
from .evalsample import SampleRow
from .selfeval import EnsembleChoice, choose_fair_ensemble, measure
from .trainingrows import TrainingOverlap, head_train_keys, training_overlap

__all__ = ["DOMAINS", "Probs", "SelfEvaluator"]

logger = logging.getLogger(__name__)

DOMAINS: tuple[Domain, ...] = ("news", "social")
Probs = dict[str, float]


class SelfEvaluator:
    """Scores the sample with each model queued by `enqueue()`; holds the results and the ensemble choices.

    Args:
        sample: the labelled rows (`evalsample.read_sample()`); empty: nothing is evaluated.
        chunk: texts per call to a model's engine (its batch size).
    """

    def __init__(self, sample: Sequence[SampleRow], chunk: int) -> None:
        self.sample = list(sample)
        self.chunk = chunk
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._answers: dict[str, list[Probs]] = {}
        self._overlaps: dict[str, TrainingOverlap] = {}  # sample rows each model was trained on
        self._evaluations: dict[str, ModelEvaluation] = {}
        self._choices: dict[Domain, EnsembleChoice] = {}

    def enqueue(self, model_id: str) -> None:
        """Have `run_forever()` evaluate this model next (once it is loaded)."""
        self._queue.put_nowait(model_id)

    def choice(self, domain: Domain) -> EnsembleChoice | None:
        """The measured ensemble of a domain; None before the first model was measured."""
        return self._choices.get(domain)

    def evaluation(self, model_id: str) -> ModelEvaluation | None:
        """A model's evaluation in `models_status`: running, done (with figures), excluded or failed."""
        return self._evaluations.get(model_id)

    def ensemble_choices(self) -> dict[str, Any]:
        """Return, per domain, what serves it and the measurements behind the choice (empty before any)."""
        return {domain: choice.as_dict() for domain, choice in self._choices.items()}

    def result_rows(self) -> list[dict[str, Any]]:
        """Return the rows of the Models tab's table: model x domain, then the ensemble of each domain."""
        rows: list[dict[str, Any]] = []
        for model_id, evaluation in self._evaluations.items():
            for domain, numbers in evaluation.domains.items():
                row = {"model": model_id, "dataset": f"shipped sample, {domain}", **_shown(numbers.model_dump())}
                rows.append(row | _excluded_note(evaluation.excluded))
        for domain, choice in self._choices.items():
            rows.append({"model": f"ensemble ({domain})", "dataset": f"checked half, {domain}",
                         "n": choice.n_check, "macro_f1": choice.ensemble_check_f1, "note": choice.reason})
        return rows

    async def run_forever(self, engine_of: Callable[[str], BatchEngine[Probs] | None]) -> None:
        """Evaluate the queued models one at a time with the engine `engine_of` gives (None: not loaded)."""
        while True:
            model_id = await self._queue.get()
            try:
                engine = engine_of(model_id)
                if engine is not None:
                    await self._evaluate(model_id, engine)
            except Exception as exc:  # a failed evaluation is reported, never fatal
                self._evaluations[model_id] = ModelEvaluation(status="failed", error=f"{type(exc).__name__}: {exc}")
                logger.warning("self-evaluation %s: failed: %s", model_id, exc)

    async def _evaluate(self, model_id: str, engine: BatchEngine[Probs]) -> None:
        self._evaluations[model_id] = ModelEvaluation(status="running")
        started = time.monotonic()
        texts = [row.text for row in self.sample]
        keys = await asyncio.to_thread(head_train_keys) if model_id == EMBEDDED_MODEL_ID else None
        overlap = training_overlap(model_id, texts, [row.source for row in self.sample], train_keys=keys)
        self._overlaps[model_id] = overlap
        if len(overlap.excluded) == len(texts):
            self._evaluations[model_id] = ModelEvaluation(
                status="excluded",
                error=f"not measured: all {len(texts)} rows of the sample are excluded ({overlap.reason})",
                excluded=overlap.exclusion(),
            )
            logger.info("self-evaluation %s: every row excluded: %s", model_id, overlap.reason)
            if self._answers:
                await self._refit_ensemble()  # so the choice lists it as left out, with weight 0
            return
        answers: list[Probs] = []
        for first in range(0, len(texts), self.chunk):
            answers += await engine.submit(texts[first : first + self.chunk])
        by_domain: dict[str, SampleFigures] = {}
        for domain in sorted({row.domain for row in self.sample}):
            rows = [i for i, row in enumerate(self.sample) if row.domain == domain and i not in overlap.excluded]
            if rows:
                # The bootstrap and the calibrated draws take tens of milliseconds of numpy: off the loop.
                labels = [self.sample[i].label for i in rows]
                figures = await asyncio.to_thread(measure, [answers[i] for i in rows], labels)
                by_domain[domain] = SampleFigures(**figures)
        self._answers[model_id] = answers
        self._evaluations[model_id] = ModelEvaluation(
            status="done",
            sample="inference/evalset/sample.jsonl",
            seconds=round(time.monotonic() - started, 1),
            domains=by_domain,
            excluded=overlap.exclusion(),
        )
        logger.info("self-evaluation %s: %s", model_id, {d: m.accuracy for d, m in by_domain.items()})
        await self._refit_ensemble()

    async def _refit_ensemble(self) -> None:
        measured = [model_id for model_id in self._answers if model_id != LEXICON_MODEL_ID]
        for domain in DOMAINS:
            rows = [i for i, row in enumerate(self.sample) if row.domain == domain]
            answers = {model_id: [self._answers[model_id][i] for i in rows] for model_id in measured}
            excluded = {
                model_id: frozenset(j for j, i in enumerate(rows) if i in self._overlaps[model_id].excluded)
                for model_id in measured
            }
            labels = [self.sample[i].label for i in rows]
            unmeasured = {
                model_id: f"not measured: {overlap.reason}"
                for model_id, overlap in self._overlaps.items()
                if model_id not in self._answers and model_id != LEXICON_MODEL_ID
            }
            # Fitting and its bootstrap take a few hundred milliseconds of numpy: off the loop.
            choice = await asyncio.to_thread(choose_fair_ensemble, answers, labels, excluded, unmeasured)
            if choice is not None:
                self._choices[domain] = choice
                logger.info("ensemble %s: %s", domain, choice.reason)


def _excluded_note(excluded: SampleExclusion | None) -> dict[str, str]:
    """A `note` for a self-evaluation row: the rows left out of the score and why, or unknown training data."""
    if excluded is None:
        return {}
    if excluded.rows:
        return {"note": f"{excluded.rows} of {excluded.of} rows left out: {excluded.reason}"}
    return {} if excluded.training_data_known else {"note": excluded.reason}


def _shown(numbers: dict[str, Any]) -> dict[str, Any]:
    """Format intervals as `low-high` for the Models tab's table."""
    shown = dict(numbers)
    for key in ("accuracy_ci95", "macro_f1_ci95"):
        if isinstance(shown.get(key), list):
            low, high = shown[key]
            shown[key] = f"{low:.3f}-{high:.3f}"
    return shown
