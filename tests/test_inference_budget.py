"""The default model set follows the hardware and the measured budget."""

from __future__ import annotations

from inference.budget import CPU_LATENCY_BUDGET_MS, MEASURED_COST, default_model_ids
from inference.catalog import DEFAULT_MODELS, EMBEDDED_MODEL_ID, LEXICON_MODEL_ID


def test_gpu_serves_the_whole_catalog():
    assert default_model_ids("cuda") == DEFAULT_MODELS


def test_cpu_serves_measured_models_within_the_latency_budget():
    picked = default_model_ids("cpu", cpu_count=2, available_mib=64_000)
    assert picked[0] == EMBEDDED_MODEL_ID and picked[-1] == LEXICON_MODEL_ID
    served = picked[:-1]
    assert all(model_id in MEASURED_COST for model_id in served)
    assert sum(MEASURED_COST[model_id].one_text_ms for model_id in served) <= CPU_LATENCY_BUDGET_MS
    assert len(served) < len(DEFAULT_MODELS) - 1  # not every hub model fits 2 cores


def test_cpu_without_memory_falls_back_to_the_lexicon():
    assert default_model_ids("cpu", cpu_count=2, available_mib=100) == (LEXICON_MODEL_ID,)


def test_more_cores_allow_at_least_as_many_models():
    assert len(default_model_ids("cpu", cpu_count=16, available_mib=64_000)) >= len(
        default_model_ids("cpu", cpu_count=2, available_mib=64_000)
    )
