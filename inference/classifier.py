"""A loaded transformers sequence classifier that answers in bearish/neutral/bullish.

Every model in the service (hub classifier, embedded head, lexicon) has the same small surface:
`model_id`, `device`, and `predict_probs(texts) -> list[{bearish, neutral, bullish}]`. This
module holds that protocol and the implementation for `AutoModelForSequenceClassification`.
"""

from __future__ import annotations

import copy
import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import torch

from core.records import SentimentLabel
from core.settings_base import ConfigError
from core.vocabulary import PRECISIONS, precision_misfit  # in core, so the settings can check them

from .catalog import to_canonical_probs

__all__ = [
    "PRECISIONS",
    "SentimentModel",
    "TransformersClassifier",
    "apply_precision",
    "quantize_int8",
    "resolve_precision",
]

logger = logging.getLogger(__name__)


class SentimentModel(Protocol):
    """What the engine and the service need from a model."""

    model_id: str
    device: str

    def predict_probs(self, texts: Sequence[str]) -> list[dict[str, float]]: ...


def quantize_int8(model: torch.nn.Module) -> tuple[torch.nn.Module, bool]:
    """Quantise the Linear layers of a CPU model to int8 (dynamic); return (model, applied).

    `torch.ao.quantization.quantize_dynamic` is deprecated in favour of torchao but still the only
    int8 path that needs no extra package; drop this when torchao is a dependency. Its deprecation
    warnings are silenced here because the call is deliberate (and pytest turns them into errors).
    """
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:  # removed in a future torch: run fp32 rather than fail the model
        logger.warning("load: torch.ao.quantization.quantize_dynamic is gone; running fp32")
        return model, False
    engines = torch.backends.quantized.supported_engines
    if "fbgemm" not in engines and "qnnpack" not in engines:
        logger.warning("load: no quantized engine in this torch build; running fp32")
        return model, False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantized = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)  # type: ignore[no-untyped-call]
    return quantized, True


def resolve_precision(precision: str, device: str) -> str:
    """Check a requested precision against `device`; "auto" stays "auto" (measured at load).

    `auto` is never decided from CPU flags: `autotune.prepare_classifier` measures the variants
    when each model loads and keeps the fastest whose labels agree with fp32.

    Raises:
        ConfigError: an unknown precision, fp16 on CPU, or int8 / ONNX on CUDA (named as the setting).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"invalid configuration: INFERENCE_PRECISION must be one of {PRECISIONS}, got {precision!r}")
    # The settings refuse these pairs when DEVICE is set; with DEVICE=auto the device is known only
    # here, so the same refusal is raised as a configuration error (one line, exit 2 at start).
    misfit = precision_misfit(precision, device)
    if misfit is not None:
        raise ConfigError(f"invalid configuration: {misfit}")
    return precision


def apply_precision(model: torch.nn.Module, precision: str) -> tuple[torch.nn.Module, str]:
    """Cast or quantise a loaded fp32 model; return (model, precision actually used)."""
    if precision == "bf16":
        return model.to(dtype=torch.bfloat16), "bf16"
    if precision == "fp16":
        return model.to(dtype=torch.float16), "fp16"
    if precision == "int8":
        quantized, applied = quantize_int8(model)
        return quantized, "int8" if applied else "fp32"
    return model, "fp32"


class TransformersClassifier:
    """Tokenizer + sequence-classification model + label mapping, ready for batches.

    Args:
        model_id: catalog id, reported in results.
        model: a loaded `*ForSequenceClassification` in eval mode on `device`.
        tokenizer: its tokenizer.
        labels: canonical label of each output class (from `catalog.map_labels`).
        device: torch device string ("cpu", "cuda", "cuda:1").
        max_length: inputs are truncated to this many tokens.
        precision: what the weights run in (fp32, bf16, fp16, int8), for monitoring.
        pad_to_multiple_of: round padded lengths up, so the kernels see a few shapes over and
            over (oneDNN and cuBLAS cache per shape) at the cost of at most 7 masked tokens.
        micro_batch: run the texts of one call in forward passes of at most this many. The engine
            hands over texts sorted by length, so consecutive chunks hold similar lengths and pad
            little; on CPU, 8 texts of similar length beat 32 of mixed length. None: one pass.
    """

    def __init__(
        self,
        model_id: str,
        model: Any,
        tokenizer: Any,
        labels: Sequence[SentimentLabel],
        *,
        device: str = "cpu",
        max_length: int = 128,
        precision: str = "fp32",
        pad_to_multiple_of: int | None = 8,
        micro_batch: int | None = None,
        text_logits: Callable[[Sequence[str]], Any] | None = None,
    ) -> None:
        if micro_batch is not None and micro_batch < 1:
            raise ValueError(f"micro_batch must be >= 1 or None, got {micro_batch}")
        self.model_id = model_id
        self.model = model
        self.tokenizer = tokenizer
        self.labels = tuple(labels)
        self.device = device
        self.max_length = max_length
        self.precision = precision
        self.pad_to_multiple_of = pad_to_multiple_of
        self.micro_batch = micro_batch
        self.text_logits = text_logits
        self.batch_sizes_seen: list[int] = []
        self._tokenizer_thread: ThreadPoolExecutor | None = None
        self._counter: Any = None  # a private tokenizer copy for count_tokens(), made on first use
        self._counter_lock = threading.Lock()
        self.runtime_choice: Any = None  # an autotune.RuntimeChoice once prepared for serving

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Return each text's token count, special tokens included, untruncated. Blocking.

        Safe beside the model's own batches: a transformers tokenizer rewrites its truncation and
        padding settings on every call, so counting with it from another thread while a batch is
        being encoded can leave that batch unpadded ("Unable to create tensor"). Counting uses a
        private copy instead, one caller at a time.
        """
        with self._counter_lock:
            if self._counter is None:
                self._counter = copy.deepcopy(self.tokenizer)
            ids = self._counter(list(texts), truncation=False, verbose=False)["input_ids"]
        return [len(row) for row in ids]

    def predict_probs(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Run one batch and return one {bearish, neutral, bullish} dict per text, in order."""
        if not texts:
            return []
        size = self.micro_batch or len(texts)
        chunks = [list(texts[start : start + size]) for start in range(0, len(texts), size)]
        probs: list[dict[str, float]] = []
        if self.device.startswith("cuda") and len(chunks) > 1:
            probs = self._forward_overlapped(chunks)
        else:
            for chunk in chunks:
                probs += self._forward(chunk)
        # Kept short: tests and the bench read it to check the batch size the model saw.
        self.batch_sizes_seen.append(len(texts))
        del self.batch_sizes_seen[:-64]
        return probs

    def _forward(self, texts: list[str]) -> list[dict[str, float]]:
        return self._probs(self._infer(self._encode(texts)), texts)

    def _forward_overlapped(self, chunks: list[list[str]]) -> list[dict[str, float]]:
        # On a GPU the forward pass is quick and the tokenizer is not: tokenize chunk k+1 in a
        # helper thread (into pinned memory, copied without blocking) while chunk k runs, and
        # synchronise once at the end. The tokenizer is only ever used from that thread.
        if self._tokenizer_thread is None:
            self._tokenizer_thread = ThreadPoolExecutor(1, thread_name_prefix=f"tokenize:{self.model_id}")
        pending = self._tokenizer_thread.submit(self._encode_pinned, chunks[0])
        logits = []
        for index in range(len(chunks)):
            encoded = pending.result()
            if index + 1 < len(chunks):
                pending = self._tokenizer_thread.submit(self._encode_pinned, chunks[index + 1])
            logits.append(self._infer(encoded))
        return [row for part, chunk in zip(logits, chunks, strict=True) for row in self._probs(part, chunk)]

    def _encode_pinned(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = self._encode(texts)
        if not torch.cuda.is_available():  # pinning needs a CUDA driver; the overlap works without it
            return encoded
        return {key: value.pin_memory() for key, value in encoded.items()}

    def _encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors="pt",
        )
        return dict(encoded)

    def _infer(self, encoded: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return the logits of one encoded micro-batch (subclasses swap the runtime here)."""
        encoded = {key: value.to(self.device, non_blocking=True) for key, value in encoded.items()}
        with torch.inference_mode():
            return self.model(**encoded).logits  # type: ignore[no-any-return]

    def _probs(self, logits: torch.Tensor, texts: list[str]) -> list[dict[str, float]]:
        logits = logits.float().cpu()
        if self.text_logits is not None:  # a second model that reads the raw texts (the embedded n-grams)
            logits = logits + torch.as_tensor(self.text_logits(texts), dtype=torch.float32)
        rows = torch.softmax(logits, dim=-1).tolist()
        return [to_canonical_probs(row, self.labels) for row in rows]
