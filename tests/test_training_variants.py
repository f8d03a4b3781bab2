"""Variants of the training texts that a kept teacher answers, for the student to distil from."""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest

from inference.head import read_head_file, sha256_of
from inference.trainingrows import key_hash, normalise_text, parse_key_hashes
from testbed.inference_fixtures import build_tiny_classifier
from tests.test_training_splits import _write_data
from training.splits import build_split
from training.teacher import train_teacher
from training.train_head import main as train_main, train
from training.variants import make_variant, make_variants, neighbour_table, write_variants

VOCAB = ["[PAD]", "rises", "climbs", "falls", "drops", "##ing", "$", "profit"]
# rises ~ climbs, falls ~ drops; "##ing" and "$" are not whole words and are never offered
EMBEDDINGS = np.array([[0, 0, 0], [1, 0.1, 0], [1, 0.2, 0], [-1, 0, 0.1], [-1, 0, 0.2], [1, 0.1, 0.01],
                       [1, 0.1, 0.02], [0, 0, 1]], dtype=np.float32)


def test_neighbour_table_offers_the_nearest_whole_words_and_never_the_word_itself():
    table = neighbour_table(VOCAB, EMBEDDINGS, ["rises", "falls", "unknown"], k=2)
    assert table == {"falls": ["drops", "profit"], "rises": ["climbs", "profit"]}


def test_a_variant_swaps_words_keeps_cashtags_links_and_numbers_and_follows_case():
    rng = random.Random(0)
    variant = make_variant("$ACME Rises 3% https://t.co/x", {"rises": ["climbs"]}, rng, swap=1.0, drop=0.0)
    assert variant == "$ACME Climbs 3% https://t.co/x"


def test_variants_are_new_texts_and_the_same_for_the_same_seed():
    texts = ["shares rises on profit today", "shares falls on profit today"]
    neighbours = {"rises": ["climbs", "falls"], "falls": ["drops", "rises"], "profit": ["rises"]}
    taken = {normalise_text(text) for text in texts} | {normalise_text("shares climbs on profit today")}
    pairs = make_variants(texts, neighbours, set(taken), per_text=2, seed=3)
    keys = [normalise_text(variant) for _, variant in pairs]
    assert pairs and not set(keys) & taken and len(keys) == len(set(keys))
    assert {origin for origin, _ in pairs} <= set(texts)
    assert make_variants(texts, neighbours, set(taken), per_text=2, seed=3) == pairs


def _kept_teacher(tmp_path):
    data = _write_data(tmp_path / "data")
    model_dir = build_tiny_classifier("bert", tmp_path / "tiny", {0: "a", 1: "b", 2: "c"})
    train_teacher(data, model_dir, tmp_path / "teacher.npz", epochs=1, batch_size=8, precision="fp32",
                  save_models=tmp_path / "kept", expected_sha256=sha256_of(model_dir / "model.safetensors"))
    return data, model_dir, tmp_path / "kept" / "teacher.safetensors"


def test_kept_teacher_answers_variants_of_train_and_validation_texts_never_a_split_text(tmp_path, torch_settings):
    data, model_dir, kept = _kept_teacher(tmp_path)
    out = tmp_path / "variants.npz"
    result = write_variants(data, model_dir, kept, out, precision="fp32")
    split = build_split(data, seed=0)
    stored = np.load(out, allow_pickle=False)
    assert result["variants"] == len(stored["texts"]) > 0
    assert set(stored["origins"].tolist()) <= {row.text for row in split.train + split.validation}
    split_keys = {row.key for row in split.train + split.validation + split.test}
    assert not {normalise_text(text) for text in stored["texts"].tolist()} & split_keys
    assert stored["logits"].shape == (len(stored["texts"]), 3) and np.isfinite(stored["logits"]).all()
    assert json.loads(str(stored["config"]))["teacher_sha256"] == sha256_of(kept)


def test_student_learns_from_the_variants_of_its_own_training_texts_only(tmp_path, torch_settings, caplog):
    data, model_dir, kept = _kept_teacher(tmp_path)
    variants = tmp_path / "variants.npz"
    write_variants(data, model_dir, kept, variants, precision="fp32")
    stored = np.load(variants, allow_pickle=False)
    train_texts = {row.text for row in build_split(data, seed=0).train}
    own = sum(origin in train_texts for origin in stored["origins"].tolist())
    assert 0 < own < len(stored["origins"])  # validation's variants are there for a refit, not for this run
    out = tmp_path / "student.safetensors"
    with caplog.at_level(logging.INFO, logger="training.train_head"):
        train(data, out, epochs=1, teacher=tmp_path / "teacher.npz", teacher_variants=variants)
    assert f"and {own} variants" in caplog.text
    _, metadata = read_head_file(out)
    assert json.loads(metadata["train_config"])["teacher_variants"] == sha256_of(variants)
    learnt = [text for text, origin in zip(stored["texts"].tolist(), stored["origins"].tolist(), strict=True)
              if origin in train_texts]
    assert {key_hash(normalise_text(text)) for text in learnt} <= parse_key_hashes(metadata["train_keys"])


def test_variants_without_a_teacher_are_refused(tmp_path, capsys):
    data = _write_data(tmp_path / "data")
    variants = tmp_path / "variants.npz"
    variants.write_bytes(b"x")
    with pytest.raises(ValueError, match="pass the teacher too"):
        train(data, tmp_path / "out.safetensors", teacher_variants=variants)
    assert train_main(["--data-dir", str(data), "--teacher-variants", str(variants)]) == 2
    assert "--teacher-variants needs --teacher" in capsys.readouterr().err
