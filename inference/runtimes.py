"""The ways one loaded fp32 classifier can run: torch fp32/bf16/fp16/int8 and ONNX Runtime fp32/int8.

`build_variant(name, base)` turns the fp32 torch model of a `TransformersClassifier` into the
named variant. ONNX graphs are exported once per model digest with `torch.onnx` and kept on disk
(`<cache_dir>/onnx/<digest>/`), so a restart loads them instead of exporting again. int8 on ONNX
is per-channel dynamic quantisation of the encoder's matrix multiplications; the classification
head stays fp32 (quantising it too flipped more labels: docs/inference.md).
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from core.vocabulary import PRECISIONS

from .classifier import TransformersClassifier, apply_precision

__all__ = [
    "CPU_VARIANTS",
    "CUDA_VARIANTS",
    "ONNX_MICRO_BATCH",
    "RUNTIMES_REVISION",
    "VARIANTS",
    "OnnxClassifier",
    "build_variant",
    "export_onnx",
    "onnx_runtime_version",
    "quantize_onnx_int8",
    "variants_for",
]

logger = logging.getLogger(__name__)

CPU_VARIANTS = ("fp32", "bf16", "int8", "onnx-fp32", "onnx-int8")
CUDA_VARIANTS = ("fp32", "fp16", "bf16")
VARIANTS = tuple(name for name in PRECISIONS if name != "auto")  # fp32 first: the reference
# Head modules keep fp32 in ONNX int8: FinHeadModel's `head`, the HF `classifier`/`pre_classifier`.
_HEAD_NAME_PARTS = ("/head/", "/classifier/", "/pre_classifier/", "/score/")
_ONNX_OPSET = 18
# ONNX Runtime's CPU kernels do not cache per shape the way oneDNN does, so padding to a multiple
# of 8 only adds masked tokens, and 16 texts per forward beat 8 and 32: on the embedded model, 2
# cores, length-sorted batches of 32, median of 5 alternating rounds: 90 texts/s with torch's
# settings (8 texts, padded to a multiple of 8) against 106 like this (docs/inference.md).
ONNX_MICRO_BATCH = 16
# Part of `auto`'s cache key: a change to how a variant runs must measure again.
RUNTIMES_REVISION = 2


def onnx_runtime_version() -> str | None:
    """Return the installed onnxruntime version, or None when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return str(onnxruntime.__version__)


def variants_for(device: str, exclude: Sequence[str] = ()) -> list[str]:
    """Return the variants worth measuring on `device`, fp32 first, without the excluded ones."""
    names: tuple[str, ...] = CUDA_VARIANTS if device.startswith("cuda") else CPU_VARIANTS
    if onnx_runtime_version() is None:
        names = tuple(name for name in names if not name.startswith("onnx-"))
    if device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        names = tuple(name for name in names if name != "bf16")
    return [name for name in names if name == "fp32" or name not in exclude]


class _ByName(torch.nn.Module):
    """Positional inputs in the tokenizer's order -> logits, as `torch.onnx.export` wants."""

    def __init__(self, model: torch.nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.names = list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors, strict=True))).logits  # type: ignore[no-any-return]


def export_onnx(model: torch.nn.Module, tokenizer: Any, path: Path) -> list[str]:
    """Export an fp32 sequence classifier to `path` (dynamic batch and length); return input names.

    Written to a temporary name and renamed, so a crash never leaves a half file to be loaded.
    """
    sample = tokenizer(["a short sample text to trace the graph", "up"], padding=True, return_tensors="pt")
    names = [name for name in tokenizer.model_input_names if name in sample]
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which needs onnxscript and
        # traces these models slower; both warn on HF models' shape checks, harmless here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _ByName(model, names).eval(),
            tuple(sample[name] for name in names),
            str(partial),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=_ONNX_OPSET,
            dynamo=False,
        )
    os.replace(partial, path)
    return names


def quantize_onnx_int8(source: Path, target: Path) -> None:
    """Quantise an fp32 ONNX graph to int8 weights, per channel, leaving the head in fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    head = [node.name for node in graph.node if any(part in node.name for part in _HEAD_NAME_PARTS)]
    partial = target.with_suffix(".partial")
    # The quantiser logs INFO lines per tensor on the root logger; a logger's filter sees only
    # records logged on that logger itself, so this mutes those lines and nothing else.
    mute = _DropInfo()
    logging.getLogger().addFilter(mute)
    try:
        quantize_dynamic(
            str(source),
            str(partial),
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=head,
        )
    finally:
        logging.getLogger().removeFilter(mute)
    os.replace(partial, target)


class _DropInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # Also its advice to pre-process the graph, which targets static (calibrated) quantisation.
        return record.levelno > logging.INFO and not str(record.msg).startswith("Please consider")


class OnnxClassifier(TransformersClassifier):
    """A `TransformersClassifier` whose forward pass runs in an ONNX Runtime session.

    Args:
        session: an `onnxruntime.InferenceSession` of the exported graph.
        input_names: the graph's inputs, a subset of what the tokenizer returns.
        (the rest as `TransformersClassifier`; `model` is None.)
    """

    def __init__(self, *args: Any, session: Any, input_names: Sequence[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session = session
        self.input_names = list(input_names)

    def _infer(self, encoded: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: encoded[name].numpy() for name in self.input_names}
        (logits,) = self.session.run(["logits"], feeds)
        return torch.from_numpy(logits)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Same thread budget as torch (INFERENCE_THREADS); one model call at a time per model.
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _onnx_files(base: TransformersClassifier, cache_dir: Path, digest: str, name: str) -> tuple[Path, list[str]]:
    folder = cache_dir / "onnx" / digest
    fp32 = folder / "model.fp32.onnx"
    names_file = folder / "inputs.txt"
    if fp32.is_file() and names_file.is_file():
        names = names_file.read_text(encoding="utf-8").split()
        logger.info("load %s: ONNX graph from %s", base.model_id, fp32)
    else:
        logger.info("load %s: exporting ONNX graph to %s", base.model_id, fp32)
        names = export_onnx(base.model, base.tokenizer, fp32)
        names_file.write_text(" ".join(names), encoding="utf-8")
    if name == "onnx-fp32":
        return fp32, names
    int8 = folder / "model.int8.onnx"
    if not int8.is_file():
        logger.info("load %s: quantising the ONNX graph to int8", base.model_id)
        quantize_onnx_int8(fp32, int8)
    return int8, names


def build_variant(
    name: str,
    base: TransformersClassifier,
    *,
    cache_dir: Path | None = None,
    digest: str | None = None,
) -> TransformersClassifier:
    """Return `base` (an fp32 torch classifier) running as variant `name`; `base` is untouched.

    Raises:
        ValueError: an unknown variant, or ONNX without a cache dir and digest.
        Exception: whatever export, quantisation or the runtime raised (the caller records it).
    """
    if name not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {name!r}")
    settings: dict[str, Any] = {
        "device": base.device,
        "max_length": base.max_length,
        "pad_to_multiple_of": base.pad_to_multiple_of,
        "micro_batch": base.micro_batch,
        "text_logits": base.text_logits,
    }
    if name == "fp32":
        return base
    if not name.startswith("onnx-"):
        model, used = apply_precision(copy.deepcopy(base.model), name)
        return TransformersClassifier(base.model_id, model, base.tokenizer, base.labels, precision=used, **settings)
    if cache_dir is None or digest is None:
        raise ValueError("ONNX variants need a cache dir and the model digest to keep the graph")
    path, names = _onnx_files(base, cache_dir, digest, name)
    settings["pad_to_multiple_of"] = None
    if base.micro_batch is not None:
        settings["micro_batch"] = max(base.micro_batch, ONNX_MICRO_BATCH)
    return OnnxClassifier(
        base.model_id,
        None,
        base.tokenizer,
        base.labels,
        precision=name,
        session=_session(path),
        input_names=names,
        **settings,
    )
