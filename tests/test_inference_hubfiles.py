"""Which files of a hub repository loading reads (and so which the lock hashes and fetch downloads)."""

from __future__ import annotations

import pytest

from inference.hubfiles import loaded_files

# The shape of real repositories: a README, exports for other frameworks, a subfolder of ONNX files.
_REPO = [
    ".gitattributes",
    "README.md",
    "config.json",
    "flax_model.msgpack",
    "tf_model.h5",
    "onnx/model.onnx",
    "onnx/config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
    "vocab.txt",
]


def test_loaded_files_take_config_tokenizer_and_safetensors_only():
    names = loaded_files([*_REPO, "model.safetensors", "pytorch_model.bin"])
    assert names == [
        "config.json", "model.safetensors", "special_tokens_map.json", "tokenizer_config.json", "vocab.txt"
    ]


def test_loaded_files_fall_back_to_pytorch_bin_without_safetensors():
    assert "pytorch_model.bin" in loaded_files([*_REPO, "pytorch_model.bin"])


def test_loaded_files_take_every_shard_of_a_sharded_checkpoint():
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    names = loaded_files([*_REPO, "model.safetensors.index.json", *shards, "pytorch_model.bin"])
    assert [name for name in names if name.startswith("model")] == ["model-00001-of-00002.safetensors",
                                                                    "model-00002-of-00002.safetensors",
                                                                    "model.safetensors.index.json"]
    assert "pytorch_model.bin" not in names


def test_loaded_files_keep_bertweet_and_roberta_tokenizer_files():
    names = loaded_files(["config.json", "pytorch_model.bin", "bpe.codes", "vocab.txt", "merges.txt", "vocab.json"])
    assert {"bpe.codes", "vocab.txt", "merges.txt", "vocab.json"} <= set(names)


@pytest.mark.parametrize("listing", [["model.safetensors"], ["config.json", "tf_model.h5", "onnx/model.onnx"]])
def test_loaded_files_refuse_a_repository_loading_cannot_read(listing):
    with pytest.raises(ValueError, match="no "):
        loaded_files(listing)
