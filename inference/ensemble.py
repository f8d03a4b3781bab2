"""Combine per-model probabilities into one `SentimentResult` per text.

The ensemble is a weighted average of the class probabilities of the models that answered, with
the weights of the text's domain (news or social). Binary models contribute 0 to neutral, which is
why the catalog gives them lower weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.records import SentimentLabel, SentimentResult

from .catalog import CANONICAL_LABELS, get_spec

__all__ = ["ModelAnswer", "combine_answers", "ensemble_name", "resolve_weights", "result_from_probs"]

_TIE_ORDER: tuple[SentimentLabel, ...] = ("neutral", "bearish", "bullish")


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
    clean: dict[str, float] = {
        name: max(float(probs.get(name, 0.0)), 0.0) / total for name in CANONICAL_LABELS
    }
    # Ties go to neutral first: the honest answer when a model cannot separate the poles.
    label = max(_TIE_ORDER, key=lambda name: clean[name])
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
        mixed: dict[str, float] = dict.fromkeys(CANONICAL_LABELS, 0.0)
        for answer, weight in zip(answers, weights, strict=True):
            for label in CANONICAL_LABELS:
                mixed[label] += weight * float(answer.probs[index].get(label, 0.0))
        results.append(result_from_probs(mixed, name))
    return results


def resolve_weights(
    model_ids: Sequence[str], overrides: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """Return {model: {news: w, social: w}}: the catalog's weights with `overrides` applied.

    Raises:
        ValueError: an override for a model that is not served, an unknown domain, a negative
            or infinite weight.
    """
    domains = ("news", "social")
    for model_id in overrides:
        if model_id not in model_ids:
            raise ValueError(
                f"weight given for {model_id!r}, which is not among the models {list(model_ids)}"
            )
    resolved: dict[str, dict[str, float]] = {}
    for model_id in model_ids:
        spec = get_spec(model_id)
        weights: dict[str, float] = {domain: spec.weights.get(domain, 0.0) for domain in domains}
        for domain, value in overrides.get(model_id, {}).items():
            if domain not in domains:
                raise ValueError(f"weight domain must be one of {domains}, got {domain!r} for {model_id}")
            if not 0.0 <= float(value) < float("inf"):
                raise ValueError(f"weight of {model_id} for {domain} must be >= 0, got {value}")
            weights[domain] = float(value)
        resolved[model_id] = weights
    return resolved
