"""Combine per-model probabilities into one `SentimentResult` per text.

The ensemble is a weighted average of the class probabilities of the models that answered, with
the weights of the text's domain (news or social). Binary models contribute 0 to neutral, which is
why the catalog gives them lower weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.records import SentimentResult

from .catalog import CANONICAL_LABELS

__all__ = ["ModelAnswer", "combine_answers", "ensemble_name", "result_from_probs"]


@dataclass(frozen=True)
class ModelAnswer:
    """One model's probabilities for a list of texts, with its ensemble weight."""

    model_id: str
    weight: float
    probs: Sequence[Mapping[str, float]]


def result_from_probs(probs: Mapping[str, float], model: str) -> SentimentResult:
    """Build a `SentimentResult` from {bearish, neutral, bullish} probabilities (renormalised)."""
    total = sum(max(float(probs.get(name, 0.0)), 0.0) for name in CANONICAL_LABELS)
    if total <= 0:
        raise ValueError(f"probabilities of {model!r} sum to {total}; expected a positive total")
    clean = {name: max(float(probs.get(name, 0.0)), 0.0) / total for name in CANONICAL_LABELS}
    # Ties go to neutral first: the honest answer when a model cannot separate the poles.
    label = max(("neutral", "bearish", "bullish"), key=lambda name: clean[name])
    return SentimentResult(
        label=label,
        score=clean["bullish"] - clean["bearish"],
        confidence=clean[label],
        probs=clean,
        model=model,
    )


def ensemble_name(model_ids: Sequence[str]) -> str:
    """Name the source of a combined answer: the model id alone, or `ensemble(a+b)`."""
    if len(model_ids) == 1:
        return model_ids[0]
    return "ensemble(" + "+".join(model_ids) + ")"


def combine_answers(answers: Sequence[ModelAnswer], n_texts: int) -> list[SentimentResult]:
    """Average the answers' probabilities text by text, weighted; zero weights count as equal.

    Raises:
        ValueError: no answers, or an answer with the wrong number of texts.
    """
    if not answers:
        raise ValueError("combine_answers() needs at least one model answer")
    for answer in answers:
        if len(answer.probs) != n_texts:
            raise ValueError(f"{answer.model_id} answered {len(answer.probs)} texts, expected {n_texts}")
    weights = [max(answer.weight, 0.0) for answer in answers]
    if sum(weights) <= 0:
        # A caller may force models whose weight is 0 for this domain: average them equally.
        weights = [1.0] * len(answers)
    name = ensemble_name([answer.model_id for answer in answers])
    results: list[SentimentResult] = []
    for index in range(n_texts):
        mixed = dict.fromkeys(CANONICAL_LABELS, 0.0)
        for answer, weight in zip(answers, weights, strict=True):
            for label in CANONICAL_LABELS:
                mixed[label] += weight * float(answer.probs[index].get(label, 0.0))
        results.append(result_from_probs(mixed, name))
    return results
