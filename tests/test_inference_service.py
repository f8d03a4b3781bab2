"""InferenceService on tiny offline models: statuses, ensemble, fallback, statistics."""

from __future__ import annotations

import asyncio
import json

import pytest

from inference import CATALOG, LEXICON_MODEL_ID, InferenceService, ModelNotReady, UnknownModel
from inference.loader import NOT_CACHED_REASON
from testbed import inference_fixtures
from testbed.inference_fixtures import BERT_GENERIC, BERT_POSNEG, BERT_RANDOM, CORPUS, ROBERTA_NEGPOS, build_service

LOAD_TIMEOUT_S = 60.0


async def running(models, tmp_path, **overrides) -> InferenceService:
    return await inference_fixtures.running_service(models, tmp_path, LOAD_TIMEOUT_S, **overrides)


# Shared fixtures, bound here so pytest finds them (tests/conftest.py belongs to the app's tests).
tiny_hub = inference_fixtures.tiny_hub
offline_hub = inference_fixtures.offline_hub


def by_id(service: InferenceService) -> dict[str, dict]:
    return {described["id"]: described for described in service.describe_models()}


async def test_service_missing_and_unmappable_models_fail_with_reason(offline_hub, tmp_path):
    service = await running([BERT_POSNEG, "ProsusAI/finbert", BERT_GENERIC], tmp_path)
    models = by_id(service)
    await service.stop()
    assert models[BERT_POSNEG]["status"] == "available"
    assert (models["ProsusAI/finbert"]["status"], models["ProsusAI/finbert"]["error"]) == (
        "failed",
        NOT_CACHED_REASON,
    )
    assert models[BERT_GENERIC]["status"] == "failed" and "known class order" in models[BERT_GENERIC]["error"]
    assert models["lexicon"]["status"] == "available"


async def test_service_start_returns_before_models_load(offline_hub, tmp_path):
    service = build_service([BERT_POSNEG])
    await service.start()
    assert by_id(service)[BERT_POSNEG]["status"] == "loading"
    assert by_id(service)[BERT_POSNEG]["reason"] == "loading: queued (models load one at a time, in MODELS order)"
    assert service.readiness()["loading"] == [BERT_POSNEG] and not service.readiness()["ready"]
    [result] = await service.score(["bitcoin price rallies"])  # answered by the lexicon meanwhile
    assert result.model == "lexicon"
    await service.wait_until_loaded(LOAD_TIMEOUT_S)
    assert service.readiness()["ready"] and service.readiness()["available"] == [BERT_POSNEG, "lexicon"]
    await service.stop()


async def test_service_ensemble_weights_models_by_domain(offline_hub, tmp_path):
    weights = {BERT_POSNEG: {"news": 3.0, "social": 1.0}, ROBERTA_NEGPOS: {"news": 1.0, "social": 3.0}}
    service = await running([BERT_POSNEG, ROBERTA_NEGPOS], tmp_path, weights=weights)
    [news] = await service.score(["the sec approves the bitcoin etf"], domain="news")
    [social] = await service.score(["the sec approves the bitcoin etf"], domain="social")
    await service.stop()
    assert (news.label, social.label) == ("bullish", "bearish")
    assert news.model == f"ensemble({BERT_POSNEG}+{ROBERTA_NEGPOS})"


async def test_service_runtime_failure_falls_back_and_counts(offline_hub, tmp_path):
    service = await running([BERT_POSNEG, ROBERTA_NEGPOS], tmp_path)

    def broken(texts):
        raise RuntimeError("kernel crashed")

    service._slots[BERT_POSNEG].model.predict_probs = broken
    await service.engines.engines[BERT_POSNEG].stop()
    service.engines.start(service._slots[BERT_POSNEG])
    results = await service.score(CORPUS[:3], model=BERT_POSNEG)
    models = by_id(service)
    await service.stop()
    assert {result.model for result in results} == {ROBERTA_NEGPOS}
    assert {result.label for result in results} == {"bearish"}
    assert (models[BERT_POSNEG]["calls"], models[BERT_POSNEG]["failures"]) == (1, 1)
    assert models[BERT_POSNEG]["success_rate"] == 0.0
    assert models[BERT_POSNEG]["last_error"] == "RuntimeError: kernel crashed"
    assert models[ROBERTA_NEGPOS]["success_rate"] == 100.0


async def test_service_everything_failing_ends_at_lexicon(offline_hub, tmp_path):
    service = await running([BERT_RANDOM], tmp_path)
    service._slots[BERT_RANDOM].model.predict_probs = lambda texts: []  # wrong output count
    await service.engines.engines[BERT_RANDOM].stop()
    service.engines.start(service._slots[BERT_RANDOM])
    [result] = await service.score(["btc to the moon"], domain="social")
    await service.stop()
    assert (result.model, result.label) == ("lexicon", "bullish")


async def test_service_statistics_measured_and_persisted(offline_hub, tmp_path):
    service = await running([BERT_RANDOM], tmp_path)
    for text in CORPUS[:4]:
        await service.score([text], model=BERT_RANDOM)
    described = by_id(service)[BERT_RANDOM]
    await service.stop()
    assert (described["calls"], described["failures"], described["success_rate"]) == (4, 0, 100.0)
    assert described["avg_response_time"] > 0 and described["p95_ms"] >= described["avg_response_time"] * 0.5
    assert described["last_used"].endswith("Z")
    saved = json.loads((tmp_path / "inference_stats.json").read_text())
    assert saved[BERT_RANDOM]["successes"] == 4


async def test_service_concurrent_callers_are_batched(offline_hub, tmp_path):
    service = await running([BERT_RANDOM], tmp_path, inference_max_batch=8, inference_max_wait_ms=100)
    results = await asyncio.gather(*(service.score([text], model=BERT_RANDOM) for text in CORPUS))
    seen = service._slots[BERT_RANDOM].model.batch_sizes_seen
    await service.stop()
    assert len(results) == len(CORPUS) and max(seen) == len(CORPUS)


async def test_service_unknown_model_raises(offline_hub, tmp_path):
    service = await running([LEXICON_MODEL_ID], tmp_path)
    with pytest.raises(UnknownModel, match="expected one of: .*lexicon"):
        await service.score(["x"], model="nope/nope")
    await service.stop()


def test_service_rejects_bad_configuration():
    with pytest.raises(ValueError, match="model ids `org/name`"):
        build_service(["finbert"])
    with pytest.raises(ValueError, match="not among the models"):
        build_service([BERT_POSNEG], weights={"other/model": {"news": 1.0}})


async def test_service_stop_reraises_crashed_loader(offline_hub, tmp_path):
    service = build_service([BERT_POSNEG])

    async def crash():
        raise RuntimeError("loader bug")

    service._load_all = crash
    await service.start()
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="loader bug"):
        await service.stop()


async def test_service_skips_tokenizing_only_texts_too_short_to_overflow(offline_hub, tmp_path):
    service = await running([BERT_POSNEG, ROBERTA_NEGPOS], tmp_path)
    texts = [
        "btc up",
        "🚀" * 30,  # 120 UTF-8 bytes, each emoji several byte-level tokens
        "比特币" * 40,
        "bitcoin rallies " * 7,
        "x" * 123,
        "bitcoin rallies " * 80,  # 160 words: past any 128-token window
    ]
    for model in (BERT_POSNEG, ROBERTA_NEGPOS):
        for text in texts:
            overflows = service.window_overflows([text], model)
            if not service.could_overflow([text], model):
                assert overflows == [False], (model, text)
        assert service.could_overflow([texts[-1]], model) and service.window_overflows([texts[-1]], model) == [True]
        assert not service.could_overflow(["btc up"], model)
    assert not service.could_overflow([texts[-1]], "lexicon")  # reads the whole text
    await service.stop()


async def test_counting_tokens_beside_a_running_batch_never_breaks_the_batch(offline_hub, tmp_path):
    # The transformers tokenizer rewrites its padding settings on each call: counting with the
    # model's own tokenizer from another thread left batches unpadded, and they fell to the lexicon.
    service = await running([BERT_POSNEG], tmp_path)
    texts = [("bitcoin rallies " * n).strip() for n in range(1, 90, 3)]
    stop = asyncio.Event()

    async def count_forever() -> int:
        rounds = 0
        while not stop.is_set():
            await asyncio.to_thread(service.window_overflows, texts, BERT_POSNEG)
            rounds += 1
        return rounds

    counters = [asyncio.create_task(count_forever()) for _ in range(2)]
    scorers = []
    for _ in range(60):
        scorers.append(await service.score(texts, model=BERT_POSNEG))
    stop.set()
    rounds = sum(await asyncio.gather(*counters))
    await service.stop()
    assert rounds > 0
    assert {result.model for results in scorers for result in results} == {BERT_POSNEG}


async def test_service_lists_every_catalog_model_with_a_state_and_a_reason(offline_hub, tmp_path):
    service = await running([BERT_POSNEG], tmp_path)
    models, counts, ready = by_id(service), service.count_statuses(), service.readiness()["ready"]
    await service.stop()
    assert set(CATALOG) <= set(models) and all(model["reason"] for model in models.values())
    assert models["ProsusAI/finbert"]["status"] == "skipped"
    assert "not in MODELS" in models["ProsusAI/finbert"]["reason"]
    assert counts["total"] == counts["available"] + counts["loading"] + counts["failed"] + counts["skipped"]
    assert ready  # skipped models are settled: /ready does not wait for them


async def test_budget_says_what_a_model_waits_for_until_its_load_begins(offline_hub, tmp_path):
    from inference import InferenceService
    from testbed.inference_fixtures import inference_section

    service = InferenceService(inference_section(models=None), runtime_dir=tmp_path, stats_store=None)
    await service.start()
    waiting = by_id(service)  # the loader task has not run yet
    await service.stop()
    assert waiting["embedded/minilm-finhead"]["reason"].startswith("loading: queued first")
    assert waiting["ElKulako/cryptobert"]["status"] == "loading"
    assert waiting["ElKulako/cryptobert"]["reason"].startswith("loading: waiting for the CPU budget")


async def test_service_measures_the_cost_of_a_news_item_once_loaded(offline_hub, tmp_path):
    service = await running([BERT_POSNEG], tmp_path)
    budget = by_id(service)[BERT_POSNEG]["budget"]
    await service.stop()
    assert budget["source"] == "measured" and budget["core_ms_per_item"] > 0
    assert budget["rules"]["model_cores"] >= 1 and budget["cpu_share_at_news_rate"] is not None


async def test_service_news_deadline_leaves_out_models_not_done_in_time(offline_hub, tmp_path):
    service = await running([BERT_POSNEG], tmp_path, news_score_deadline_ms=0.001)
    [result] = await service.score(["bitcoin price rallies"], deadline=True)
    misses = by_id(service)[BERT_POSNEG]["news_deadline_misses"]
    await service.stop()
    assert result.model == "lexicon" and misses == 1


async def test_service_news_deadline_keeps_models_done_in_time(offline_hub, tmp_path):
    service = await running([BERT_POSNEG], tmp_path, news_score_deadline_ms=60_000)
    [result] = await service.score(["bitcoin price rallies"], deadline=True)
    await service.stop()
    assert result.model == BERT_POSNEG and service.deadline_misses == {}


async def test_service_unloaded_model_is_skipped_and_loads_again(offline_hub, tmp_path):
    service = await running([BERT_POSNEG], tmp_path)
    unloaded = await service.unload_model(BERT_POSNEG)
    [result] = await service.score(["bitcoin price rallies"])
    loading = await service.load_model(BERT_POSNEG)
    for _ in range(int(LOAD_TIMEOUT_S / 0.05)):
        reloaded = by_id(service)[BERT_POSNEG]
        # Available first; its reason says who loaded it once its cost is measured.
        measured = reloaded["status"] == "available" and reloaded["reason"] != "available"
        if measured or reloaded["status"] in ("failed", "skipped"):
            break
        await asyncio.sleep(0.05)
    await service.stop()
    assert unloaded["status"] == "skipped" and "unloaded by an admin" in unloaded["reason"]
    assert result.model == "lexicon" and loading["status"] == "loading"
    assert loading["reason"] == "loading: asked for by an admin"  # not the skip's reason any more
    assert reloaded["status"] == "available" and "admin" in reloaded["reason"]


async def test_service_refuses_to_unload_the_lexicon_or_an_unknown_model(offline_hub, tmp_path):
    service = await running([LEXICON_MODEL_ID], tmp_path)
    with pytest.raises(ModelNotReady, match="last resort"):
        await service.unload_model("lexicon")
    with pytest.raises(UnknownModel):
        await service.load_model("nobody/nothing")
    await service.stop()
