"""Tiny BERT- and RoBERTa-shaped classifiers, laid out as a local HF hub cache, for inference tests.

Every model is built here from a seed: a few KB of weights and a tokenizer trained on a dozen
sentences, so loading by hub id works with HF_HUB_OFFLINE=1 and nothing touches the network.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch

from core.config import InferenceSection

if TYPE_CHECKING:
    from inference import InferenceService

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
CORPUS = [
    "bitcoin price rallies to a record high",
    "ethereum crashes as the market sells off",
    "the sec approves the bitcoin etf",
    "exchange hacked and funds drained",
    "btc moves sideways in a quiet market",
    "solana network is down again",
    "stocks rise after strong earnings",
]
WORDS = sorted({word for line in CORPUS for word in line.split()})

# Model ids the fixture installs in the cache, with what their classifier is forced to answer.
BERT_POSNEG = "tests/tiny-bert-posneg"  # id2label positive/negative/neutral, always class 0 -> bullish
ROBERTA_NEGPOS = "tests/tiny-roberta-negpos"  # id2label negative/neutral/positive, always class 0 -> bearish
BERT_RANDOM = "tests/tiny-bert-random"  # Bearish/Neutral/Bullish, seeded random weights: varies by text
BERT_GENERIC = "tests/tiny-bert-generic"  # LABEL_0/LABEL_1 and not in the catalog: cannot be mapped
KK08 = "kk08/CryptoBERT"  # binary LABEL_0/LABEL_1 under the catalog id: mapped negative/positive


def _force_class(linear: torch.nn.Linear, index: int) -> None:
    """Make a classifier layer answer `index` for every input (known output, whatever the text)."""
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
        linear.bias[index] = 6.0


def build_tiny_bert(
    out: Path,
    id2label: dict[int, str],
    *,
    favour: int | None = None,
    seed: int = 0,
    dims: Mapping[str, int] | None = None,
) -> Path:
    """Save a 2-layer, 32-wide BertForSequenceClassification and its WordPiece tokenizer.

    `dims` overrides the config's sizes (a full-size model with the same small tokenizer).
    """
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tokenizer = BertTokenizer(vocab={token: index for index, token in enumerate(vocab)})
    config = BertConfig(vocab_size=len(vocab), max_position_embeddings=64)
    return _save_tiny(out, BertForSequenceClassification, config, tokenizer, id2label, favour, seed, dims)


def build_tiny_roberta(
    out: Path,
    id2label: dict[int, str],
    *,
    favour: int | None = None,
    seed: int = 0,
    dims: Mapping[str, int] | None = None,
) -> Path:
    """Save a 2-layer, 32-wide RobertaForSequenceClassification and a byte-level BPE tokenizer."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS * 3,
        vocab_size=320,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    merges = _merges(bpe)
    tokenizer = RobertaTokenizer(vocab=bpe.get_vocab(), merges=merges)
    config = RobertaConfig(
        vocab_size=bpe.get_vocab_size(),
        max_position_embeddings=66,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    return _save_tiny(out, RobertaForSequenceClassification, config, tokenizer, id2label, favour, seed, dims)


def _save_tiny(
    out: Path,
    model_class: Any,
    config: Any,
    tokenizer: Any,
    id2label: dict[int, str],
    favour: int | None,
    seed: int,
    dims: Mapping[str, int] | None,
) -> Path:
    """Make `config` 2 layers of 32 wide (unless `dims` says otherwise), build the seeded model, save both."""
    config.update({"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64})
    config.update({"id2label": id2label, "label2id": {name: index for index, name in id2label.items()}})
    config.update(dict(dims or {}))
    torch.manual_seed(seed)
    model = model_class(config).eval()
    if favour is not None:
        head = model.classifier
        _force_class(getattr(head, "out_proj", head), favour)  # RoBERTa's head ends in out_proj
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _merges(bpe: object) -> list[tuple[str, str]]:
    import json

    # The trained merges are only reachable through the serialised tokenizer.
    state = json.loads(bpe._tokenizer.to_str())  # type: ignore[attr-defined]
    return [
        tuple(pair) if isinstance(pair, list) else tuple(pair.split()) for pair in state["model"]["merges"]
    ]


def install_in_hub_cache(cache_dir: Path, repo_id: str, model_dir: Path, commit: str = FAKE_COMMIT) -> Path:
    """Lay a saved model out as `models--org--name/{refs/main,snapshots/<commit>/}` in a hub cache."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    shutil.copytree(model_dir, snapshot, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@dataclass(frozen=True)
class TinyHub:
    """A hub cache holding the tiny models."""

    cache_dir: Path


@pytest.fixture(scope="session")
def tiny_hub(tmp_path_factory: pytest.TempPathFactory) -> TinyHub:
    """Build the tiny models once per session and install them in a fresh hub cache."""
    root = tmp_path_factory.mktemp("tiny-models")
    cache = root / "hub"
    builds = {
        BERT_POSNEG: build_tiny_bert(root / "a", {0: "positive", 1: "negative", 2: "neutral"}, favour=0),
        ROBERTA_NEGPOS: build_tiny_roberta(
            root / "b", {0: "negative", 1: "neutral", 2: "positive"}, favour=0
        ),
        BERT_RANDOM: build_tiny_bert(root / "c", {0: "Bearish", 1: "Neutral", 2: "Bullish"}, seed=1),
        BERT_GENERIC: build_tiny_bert(root / "d", {0: "LABEL_0", 1: "LABEL_1"}),
        KK08: build_tiny_bert(root / "e", {0: "LABEL_0", 1: "LABEL_1"}, favour=1),
    }
    for repo_id, path in builds.items():
        install_in_hub_cache(cache, repo_id, path)
    return TinyHub(cache_dir=cache)


@pytest.fixture
def offline_hub(tiny_hub: TinyHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[TinyHub]:
    """Point the hub cache at the tiny cache and switch the hub off for one test.

    huggingface_hub reads HF_HUB_OFFLINE / HF_HUB_CACHE once, at import, and the loader's defaults
    ask it; the environment is set too for app processes a test starts.
    """
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tiny_hub.cache_dir))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tiny_hub.cache_dir))
    yield tiny_hub


# The service's own keywords; every other override of build_service() is a field of InferenceSection.
_SERVICE_KEYWORDS = ("weights", "call_timeout_s", "max_queue", "micro_batch", "stats_flush_s", "sample_path")


def inference_section(**overrides: Any) -> InferenceSection:
    """The settings' inference section for a test: on CPU, no self-evaluation, huggingface_hub's offline switch."""
    from inference.loader import hub_offline

    return InferenceSection(**{"device": "cpu", "self_evaluate": False, "hf_hub_offline": hub_offline(), **overrides})


def build_service(models: Sequence[str], data_dir: Path | None = None, **overrides: Any) -> InferenceService:
    """An InferenceService of `models` whose statistics and runtime choices live in `data_dir` (None: memory)."""
    from inference import InferenceService, JsonStatsStore

    own = {key: overrides.pop(key) for key in _SERVICE_KEYWORDS if key in overrides}
    stats = JsonStatsStore(data_dir / "inference_stats.json") if data_dir is not None else None
    section = inference_section(models=tuple(models), **overrides)
    return InferenceService(section, runtime_dir=data_dir, stats_store=stats, **own)


async def running_service(
    models: Sequence[str], data_dir: Path | None = None, timeout_s: float = 60.0, **overrides: Any
) -> InferenceService:
    """`build_service()`'s service, started, once every model is available or failed (fp32 unless told)."""
    service = build_service(models, data_dir, **{"inference_precision": "fp32", **overrides})
    await service.start()
    await service.wait_until_loaded(timeout_s)
    return service
