"""The embedded model's teacher: a pinned larger encoder whose answers the student distils from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inference.head import sha256_of
from testbed.inference_fixtures import build_tiny_classifier
from tests.test_training_splits import _write_data
from tests.test_training_train_head import SHIPPED_RECIPE, _train_only_run
from training.splits import build_split
from training.teacher import main as teacher_main, train_teacher
from training.train_head import train


def test_teacher_refuses_a_model_file_other_than_the_pinned_one_before_reading_data(tmp_path, capsys):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.safetensors").write_bytes(b"a repackaged copy")
    code = teacher_main(["--data-dir", str(_write_data(tmp_path / "data")), "--model-dir", str(tmp_path / "model")])
    assert code == 2
    assert "not all-mpnet-base-v2's 78c0197b" in capsys.readouterr().err


@pytest.mark.parametrize("folds", [1, 2])
def test_teacher_answers_every_training_and_validation_text_and_no_test_text(tmp_path, torch_settings, folds):
    data = _write_data(tmp_path / "data")
    model_dir = build_tiny_classifier("bert", tmp_path / "tiny", {0: "a", 1: "b", 2: "c"})
    out = tmp_path / "teacher.npz"
    result = train_teacher(data, model_dir, out, epochs=1, batch_size=8, precision="fp32", folds=folds,
                           save_models=tmp_path / "kept", expected_sha256=sha256_of(model_dir / "model.safetensors"))
    split = build_split(data, seed=0)
    stored = np.load(out, allow_pickle=False)
    assert stored["texts"].tolist() == [row.text for row in split.train + split.validation]
    assert not {row.text for row in split.test} & set(stored["texts"].tolist())
    assert stored["logits"].shape == (len(split.train) + len(split.validation), 3)
    assert np.isfinite(stored["logits"]).all()
    assert json.loads(str(stored["config"]))["folds"] == folds
    assert len(result["teachers"]) == folds + 1  # each teacher's epochs, then the answers' own validation figures
    assert result["teachers"]["validation"][0]["validation"]["overall"]["n"] == len(split.validation)
    kept = sorted(path.name for path in (tmp_path / "kept").iterdir())
    expected = ["teacher.safetensors"] if folds == 1 else ["teacher-fold1.safetensors", "teacher-fold2.safetensors"]
    assert kept == expected


def test_a_kept_teacher_loads_back_and_gives_the_logits_it_wrote(tmp_path, torch_settings):
    from safetensors.torch import load_file

    from training.teacher import TeacherModel

    data = _write_data(tmp_path / "data")
    model_dir = build_tiny_classifier("bert", tmp_path / "tiny", {0: "a", 1: "b", 2: "c"})
    out = tmp_path / "teacher.npz"
    train_teacher(data, model_dir, out, epochs=1, batch_size=8, precision="fp32", save_models=tmp_path / "kept",
                  expected_sha256=sha256_of(model_dir / "model.safetensors"))
    teacher = TeacherModel(model_dir, 3)
    teacher.load_state_dict(load_file(str(tmp_path / "kept" / "teacher.safetensors")))
    teacher.eval()
    stored = np.load(out, allow_pickle=False)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoded = tokenizer([str(stored["texts"][0])], return_tensors="pt", truncation=True, max_length=64)
    with torch.no_grad():
        logits = teacher(encoded["input_ids"], encoded["attention_mask"]).numpy()[0]
    assert np.allclose(logits, stored["logits"][0], atol=1e-4)


def test_student_refuses_a_teacher_without_an_answer_for_a_training_text(tmp_path, torch_settings):
    data = _write_data(tmp_path / "data")
    teacher = tmp_path / "teacher.npz"
    np.savez(teacher, texts=np.array(["some other text"]), logits=np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"teacher.npz has no answer for \d+ training texts"):
        train(data, tmp_path / "out.safetensors", teacher=teacher, limit=8)


def test_refit_refuses_a_train_only_run_distilled_from_no_teacher(tmp_path):
    teacher = tmp_path / "teacher.npz"
    np.savez(teacher, texts=np.array(["t"]), logits=np.zeros((1, 3), dtype=np.float32))
    donor = _train_only_run(tmp_path / "train-only.safetensors", SHIPPED_RECIPE)
    with pytest.raises(ValueError, match=r"another recipe \(teacher None there, '[0-9a-f]{64}' here; distill_weight"):
        train(tmp_path / "no-data", tmp_path / "out.safetensors", seed=1, epochs=4, lr=7e-5, ngram=True,
              teacher=teacher, refit=True, calibration_from=donor)


def test_train_command_with_a_missing_teacher_file_exits_2(tmp_path, capsys):
    from training.train_head import main

    data = _write_data(tmp_path / "data")
    assert main(["--data-dir", str(data), "--teacher", str(tmp_path / "none.npz")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'none.npz'} not found")
