"""Training the embedded model: a refit keeps only the calibration of a train-only run of its own recipe."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from inference.head import HEAD_FORMAT
from training.train_head import train

SHIPPED_RECIPE = {"seed": 1, "epochs": 4, "lr": 7e-5, "head_lr": 1e-3, "hidden": 256, "batch_size": 32,
                  "max_length": 64, "balance": False, "ngram": True, "ngram_c": 5.0, "ngram_min_df": 2}


def _train_only_run(path, config):
    metadata = {"format": HEAD_FORMAT, "train_config": json.dumps(config)}
    save_file({"head.x": torch.zeros(1)}, str(path), metadata=metadata)
    return path


def _refit(tmp_path, donor, **recipe):
    # No data folder exists: a refusal must come before the split is read, let alone training.
    arguments = {"seed": 1, "epochs": 4, "lr": 7e-5, "ngram": True} | recipe
    return train(tmp_path / "no-data", tmp_path / "out.safetensors", refit=True, calibration_from=donor, **arguments)


def test_refit_refuses_a_train_only_run_of_another_recipe_before_reading_the_data(tmp_path):
    donor = _train_only_run(tmp_path / "train-only.safetensors", SHIPPED_RECIPE | {"lr": 5e-5, "epochs": 3})
    with pytest.raises(ValueError, match=r"another recipe \(epochs 3 there, 4 here; lr 5e-05 there, 7e-05 here\)"):
        _refit(tmp_path, donor)


def test_refit_refuses_a_run_without_the_ngram_voice_for_a_recipe_with_it(tmp_path):
    # A run made before the recipe named the voice had none: its weight and temperatures are MiniLM's alone.
    older = {key: value for key, value in SHIPPED_RECIPE.items() if not key.startswith("ngram")}
    donor = _train_only_run(tmp_path / "train-only.safetensors", older)
    with pytest.raises(ValueError, match=r"another recipe \(ngram False there, True here\)"):
        _refit(tmp_path, donor)


def test_refit_of_the_same_recipe_goes_on_to_read_the_data(tmp_path, torch_settings):
    donor = _train_only_run(tmp_path / "train-only.safetensors", SHIPPED_RECIPE)
    with pytest.raises(OSError):  # past the recipe check: the missing data folder is what stops it
        _refit(tmp_path, donor)


def test_refit_needs_its_train_only_run(tmp_path):
    with pytest.raises(ValueError, match="needs --calibration-from"):
        _refit(tmp_path, None)


def test_train_command_names_the_recipe_difference_and_exits_2(tmp_path, capsys):
    from training.datasets import FIQA_FILE, TWITTER_FILE
    from training.train_head import main

    for name in (TWITTER_FILE, FIQA_FILE):  # present, never read: the refusal comes first
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    donor = _train_only_run(tmp_path / "train-only.safetensors", SHIPPED_RECIPE | {"seed": 2})
    code = main(["--data-dir", str(tmp_path), "--seed", "1", "--epochs", "4", "--lr", "7e-5", "--ngram",
                 "--refit", "--calibration-from", str(donor), "--out", str(tmp_path / "out.safetensors")])
    assert code == 2
    assert capsys.readouterr().err.startswith(f"error: {donor} was trained with another recipe (seed 2 there, 1 here)")


def test_train_command_with_extra_tweets_needs_their_file(tmp_path, capsys):
    from training.datasets import FIQA_FILE, TWITTER_EXTRA_FILE, TWITTER_FILE
    from training.train_head import main

    for name in (TWITTER_FILE, FIQA_FILE):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert main(["--data-dir", str(tmp_path), "--extra-tweets", "--out", str(tmp_path / "out.safetensors")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / TWITTER_EXTRA_FILE} not found")


def test_refit_refuses_a_train_only_run_without_the_extra_tweets(tmp_path):
    from training.datasets import TWITTER_EXTRA_FILE

    (tmp_path / TWITTER_EXTRA_FILE).parent.mkdir(parents=True)
    (tmp_path / TWITTER_EXTRA_FILE).write_text("text,label\n")
    donor = _train_only_run(tmp_path / "train-only.safetensors", SHIPPED_RECIPE)
    with pytest.raises(ValueError, match=r"another recipe \(extra_tweets None there, '[0-9a-f]{64}' here\)"):
        train(tmp_path, tmp_path / "out.safetensors", seed=1, epochs=4, lr=7e-5, ngram=True, extra_tweets=True,
              refit=True, calibration_from=donor)


def test_train_command_refit_without_its_train_only_run_exits_2(tmp_path, capsys):
    from training.datasets import FIQA_FILE, TWITTER_FILE
    from training.train_head import main

    for name in (TWITTER_FILE, FIQA_FILE):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert main(["--data-dir", str(tmp_path), "--refit", "--out", str(tmp_path / "out.safetensors")]) == 2
    assert capsys.readouterr().err == "error: --refit needs --calibration-from: the train-only run of the same recipe\n"
