"""`auto` chooses a variant by measuring it: recorded, cached, and gated on label agreement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference import autotune
from inference.autotune import AutotuneOptions, ChoiceCache, RuntimeChoice, prepare_classifier, read_eval_texts
from inference.catalog import get_spec
from inference.classifier import TransformersClassifier
from inference.loader import LoadOptions, load_transformers_classifier, resolve_model_source
from inference.runtimes import build_variant
from testbed import inference_fixtures
from testbed.inference_fixtures import BERT_RANDOM, CORPUS

tiny_hub = inference_fixtures.tiny_hub
offline_hub = inference_fixtures.offline_hub


def write_evalset(path: Path, texts: list[str]) -> Path:
    """The bundled evaluation file's format: JSON lines with text, label, domain, source."""
    rows = [{"text": t, "label": "neutral", "domain": "news", "source": "tests"} for t in texts]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def base_model() -> TransformersClassifier:
    options = LoadOptions(offline=True, precision="fp32")
    return load_transformers_classifier(get_spec(BERT_RANDOM), resolve_model_source(BERT_RANDOM, options), options)


def options(tmp_path: Path, **kwargs) -> AutotuneOptions:
    evalset = write_evalset(tmp_path / "sample.jsonl", CORPUS * 4)
    return AutotuneOptions(cache_dir=tmp_path / "cache", evalset=evalset, batch=8, **kwargs)


class Rotated(TransformersClassifier):
    """A variant that disagrees on every text (labels rotated) and, once warm, answers from memory."""

    def __init__(self, base: TransformersClassifier) -> None:
        self.__dict__.update(base.__dict__)
        self.precision = "int8"
        self._base = base
        self._memo: dict[str, dict[str, float]] = {}

    def predict_probs(self, texts):
        for text in texts:
            if text not in self._memo:
                [probs] = self._base.predict_probs([text])
                self._memo[text] = {
                    "bearish": probs["bullish"],
                    "neutral": probs["bearish"],
                    "bullish": probs["neutral"],
                }
        return [self._memo[text] for text in texts]


def test_auto_records_choice_and_every_candidate(offline_hub, tmp_path):
    classifier = prepare_classifier(
        base_model(), "auto", options(tmp_path, exclude=("onnx-fp32", "onnx-int8")), digest="d1"
    )
    choice = classifier.runtime_choice
    assert choice.source == "measured" and choice.texts == len(CORPUS) * 4
    assert [c.name for c in choice.candidates] == ["fp32", "bf16", "int8"]
    assert choice.chosen == classifier.precision and choice.chosen in {c.name for c in choice.candidates if c.kept}
    assert all(c.texts_per_s and c.texts_per_s > 0 for c in choice.candidates)


def test_auto_reuses_the_cached_choice_without_measuring(offline_hub, tmp_path, monkeypatch):
    opts = options(tmp_path, exclude=("onnx-fp32", "onnx-int8"))
    first = prepare_classifier(base_model(), "auto", opts, digest="d1").runtime_choice

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again despite a cached choice")

    monkeypatch.setattr(autotune, "choose_variant", no_measuring)
    again = prepare_classifier(base_model(), "auto", opts, digest="d1")
    assert again.runtime_choice.source == "cache"
    assert again.runtime_choice.chosen == first.chosen == again.precision
    assert again.runtime_choice.candidates == first.candidates


def test_auto_measures_again_for_another_model_digest(offline_hub, tmp_path):
    opts = options(tmp_path, exclude=("bf16", "int8", "onnx-fp32", "onnx-int8"))
    prepare_classifier(base_model(), "auto", opts, digest="d1")
    assert prepare_classifier(base_model(), "auto", opts, digest="d2").runtime_choice.source == "measured"


def test_agreement_gate_rejects_a_disagreeing_variant(offline_hub, tmp_path, monkeypatch):
    monkeypatch.setattr(
        autotune,
        "build_variant",
        lambda name, base, **kw: Rotated(base) if name == "int8" else build_variant(name, base, **kw),
    )
    classifier = prepare_classifier(
        base_model(), "auto", options(tmp_path, exclude=("bf16", "onnx-fp32", "onnx-int8")), digest="d1"
    )
    int8 = {c.name: c for c in classifier.runtime_choice.candidates}["int8"]
    assert not int8.kept and int8.reason.startswith("agreement")
    assert int8.agreement < 0.99
    assert classifier.precision == "fp32"


def test_auto_without_evaluation_texts_runs_fp32_and_says_why(offline_hub, tmp_path):
    opts = AutotuneOptions(cache_dir=tmp_path, evalset=tmp_path / "missing.jsonl")
    classifier = prepare_classifier(base_model(), "auto", opts, digest="d1")
    assert (classifier.precision, classifier.runtime_choice.source) == ("fp32", "unmeasured")
    assert "no evaluation texts" in classifier.runtime_choice.reason


def test_onnx_variants_match_torch_fp32_probabilities(offline_hub, tmp_path):
    base = base_model()
    expected = base.predict_probs(CORPUS)
    for name in ("onnx-fp32", "onnx-int8"):
        got = build_variant(name, base, cache_dir=tmp_path, digest="d1").predict_probs(CORPUS)
        tolerance = 1e-4 if name == "onnx-fp32" else 0.1
        assert all(abs(g[k] - e[k]) < tolerance for g, e in zip(got, expected, strict=True) for k in e)
    assert sorted(p.name for p in (tmp_path / "onnx" / "d1").glob("*.onnx")) == ["model.fp32.onnx", "model.int8.onnx"]


class RecordingSession:
    """Stands between an ONNX classifier and its session to see the shapes it is fed."""

    def __init__(self, session) -> None:
        self.session = session
        self.shapes: list[tuple[int, ...]] = []

    def run(self, outputs, feeds):
        self.shapes.append(tuple(feeds["input_ids"].shape))
        return self.session.run(outputs, feeds)


def test_onnx_variants_run_sixteen_texts_padded_to_the_longest(offline_hub, tmp_path):
    base = base_model()
    base.micro_batch, base.pad_to_multiple_of = 8, 8
    onnx = build_variant("onnx-fp32", base, cache_dir=tmp_path, digest="d1")
    onnx.session = recorder = RecordingSession(onnx.session)
    texts = sorted((CORPUS * 5)[:20], key=len)
    onnx.predict_probs(texts)
    lengths = [len(ids) for ids in base.tokenizer(texts, truncation=True, max_length=128)["input_ids"]]
    assert recorder.shapes == [(16, max(lengths[:16])), (4, max(lengths[16:]))]
    assert base.micro_batch == 8 and base.pad_to_multiple_of == 8  # the torch fp32 base keeps its own


def test_choice_cache_survives_a_broken_file(tmp_path):
    cache = ChoiceCache(tmp_path / "runtime.json")
    (tmp_path / "runtime.json").write_text("{not json")
    assert cache.get("k") is None
    cache.put("k", RuntimeChoice(chosen="fp32", source="measured"))
    assert cache.get("k").chosen == "fp32"


def test_read_eval_texts_rejects_a_line_without_text(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"label": "neutral"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_eval_texts(path)


async def test_service_reports_the_runtime_choice(offline_hub, tmp_path):
    evalset = write_evalset(tmp_path / "sample.jsonl", CORPUS * 2)
    service = await inference_fixtures.running_service(
        [BERT_RANDOM], tmp_path, 120, inference_precision="auto", inference_evalset=evalset,
        inference_exclude=("onnx-fp32", "onnx-int8"),
    )
    [described] = [m for m in service.describe_models() if m["id"] == BERT_RANDOM]
    await service.stop()
    assert described["runtime"]["source"] == "measured"
    assert described["precision"] == described["runtime"]["chosen"]
    assert {c["name"] for c in described["runtime"]["candidates"]} == {"fp32", "bf16", "int8"}
