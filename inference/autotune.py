"""Choose how a model runs on this machine by measuring it: `prepare_classifier()`.

`precision="auto"` builds every variant the device offers (`runtimes.variants_for`), labels the
bundled evaluation texts with each in engine-sized batches (that pass is also the speed
measurement), keeps a variant only if its labels agree with fp32 on at least 99 % of those texts,
and runs the fastest one kept. Never a CPU flag: on a CPU whose bf16 instructions are slow, bf16
simply measures slow. The choice, every candidate's speed and agreement are cached in
`<cache_dir>/inference_runtime.json` under a key made of the model digest, the machine, the
library versions and the evaluation texts, so a restart reuses them instead of measuring again.

Without evaluation texts there is nothing to gate agreement on: `auto` then runs fp32 and says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from core.host_limits import usable_cpus

from .catalog import CANONICAL_LABELS
from .classifier import TransformersClassifier
from .runtimes import RUNTIMES_REVISION, build_variant, onnx_runtime_version, variants_for

__all__ = [
    "AGREEMENT_FLOOR",
    "DEFAULT_EVALSET",
    "AutotuneOptions",
    "ChoiceCache",
    "RuntimeChoice",
    "VariantMeasurement",
    "choose_variant",
    "directory_digest",
    "machine_fingerprint",
    "prepare_classifier",
    "read_eval_texts",
]

logger = logging.getLogger(__name__)

AGREEMENT_FLOOR = 0.99
DEFAULT_EVALSET = Path(__file__).resolve().parent / "evalset" / "sample.jsonl"
CACHE_FILE = "inference_runtime.json"
ChoiceSource = Literal["measured", "cache", "requested", "unmeasured"]


@dataclass(frozen=True)
class AutotuneOptions:
    """Where `auto` finds its texts and keeps its choices, and what it may not choose.

    Args:
        cache_dir: holds `inference_runtime.json` and the exported ONNX graphs; None measures at
            every load and leaves ONNX out (nowhere to keep the graphs).
        evalset: JSON lines with a "text" field; the agreement gate runs on these texts.
        exclude: variants never measured, e.g. ("bf16",).
        floor: the least label agreement with fp32 a variant needs to be kept.
        batch: texts per measured batch (the engine's max_batch).
        max_texts: use at most this many evaluation texts (the first ones).
    """

    cache_dir: Path | None = None
    evalset: Path = DEFAULT_EVALSET
    exclude: tuple[str, ...] = ()
    floor: float = AGREEMENT_FLOOR
    batch: int = 32
    max_texts: int = 512


@dataclass(frozen=True)
class VariantMeasurement:
    """One candidate: its speed on the evaluation texts and its label agreement with fp32."""

    name: str
    texts_per_s: float | None
    agreement: float | None
    kept: bool
    reason: str | None = None


@dataclass(frozen=True)
class RuntimeChoice:
    """What a model runs as, and how that was decided (shown in `models_status`)."""

    chosen: str
    source: ChoiceSource
    candidates: tuple[VariantMeasurement, ...] = ()
    texts: int = 0
    floor: float = AGREEMENT_FLOOR
    reason: str | None = None
    measured_at: str | None = None
    machine: dict[str, Any] | None = None  # machine_fingerprint() where measured; None for requested or unmeasured

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form (also what the cache stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuntimeChoice:
        """Rebuild a choice from `as_dict()` output."""
        candidates = tuple(VariantMeasurement(**c) for c in data.get("candidates", ()))
        return cls(**{**data, "candidates": candidates, "machine": data.get("machine") or None})


def read_eval_texts(path: Path, limit: int | None = None) -> list[str]:
    """Read the "text" field of a JSON-lines file; a missing file gives an empty list.

    Raises:
        ValueError: a line that is not a JSON object with a string "text".
    """
    if not path.is_file():
        return []
    texts: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise ValueError(f"{path}:{number}: expected a JSON object with a string 'text', got {line[:80]!r}")
            texts.append(row["text"])
            if limit is not None and len(texts) >= limit:
                break
    return texts


def directory_digest(path: Path) -> str:
    """Digest a model directory by its files' names, sizes and link targets (hub blobs are hashes).

    Cheap (no file is read): hub cache files are links to blobs named by their content hash, and
    a local directory changes size or name when its weights change in practice.
    """
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.is_file():
            target = file.resolve()
            digest.update(f"{file.name}:{target.name}:{target.stat().st_size}:{target.stat().st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_fingerprint(device: str) -> dict[str, Any]:
    """Return what makes a measurement valid only here: hardware, threads, library versions."""
    import transformers

    fingerprint: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpus": usable_cpus().count,  # the container's, not the host's: a quota changes the timings
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": onnx_runtime_version(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        fingerprint["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return fingerprint


class ChoiceCache:
    """Choices by key in one JSON file; unreadable files count as empty, writes are atomic."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> RuntimeChoice | None:
        """Return the cached choice for `key`, or None."""
        entry = self._read().get(key)
        try:
            return RuntimeChoice.from_dict(entry) if isinstance(entry, dict) else None
        except TypeError:  # written by an older layout: measure again
            return None

    def put(self, key: str, choice: RuntimeChoice) -> None:
        """Store a choice (other keys are kept)."""
        data = self._read()
        data[key] = choice.as_dict()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(partial, self.path)


def _labels(classifier: TransformersClassifier, texts: Sequence[str], batch: int) -> tuple[list[str], float]:
    """Label texts in engine-sized batches, each sorted by length as the engine does; return seconds."""
    labels: list[str] = [""] * len(texts)
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        order = sorted(range(start, min(start + batch, len(texts))), key=lambda i: len(texts[i]))
        for index, probs in zip(order, classifier.predict_probs([texts[i] for i in order]), strict=True):
            labels[index] = max(CANONICAL_LABELS, key=lambda name: probs[name])
    return labels, time.perf_counter() - started


def _measure(
    classifier: TransformersClassifier, texts: Sequence[str], reference: list[str] | None, batch: int
) -> tuple[float, float, list[str]]:
    # Warm-up over every batch shape the timed pass will see: ONNX Runtime grows its memory arena
    # and torch its kernel caches per new shape, so one warm-up batch left the first timed pass
    # paying for the rest (ONNX measured 0.9x fp32 here while it served at 1.4x).
    _labels(classifier, texts, batch)
    labels, seconds = _labels(classifier, texts, batch)
    agreement = 1.0 if reference is None else sum(a == b for a, b in zip(labels, reference, strict=True)) / len(texts)
    return len(texts) / seconds, agreement, labels


def choose_variant(
    base: TransformersClassifier,
    texts: Sequence[str],
    *,
    digest: str,
    options: AutotuneOptions,
) -> tuple[TransformersClassifier, RuntimeChoice]:
    """Measure every variant of `base` (fp32) on `texts` and return the fastest one that agrees.

    A variant that fails to build or run is recorded with its error and left out. fp32 is always
    a candidate, so there is always a choice.
    """
    reference_speed, _, reference = _measure(base, texts, None, options.batch)
    measured = [VariantMeasurement("fp32", round(reference_speed, 1), 1.0, True)]
    best, best_speed = base, reference_speed
    for name in variants_for(base.device, options.exclude):
        if name == "fp32":
            continue
        if name.startswith("onnx-") and options.cache_dir is None:
            measured.append(VariantMeasurement(name, None, None, False, "no cache dir to keep the graph"))
            continue
        try:
            candidate = build_variant(name, base, cache_dir=options.cache_dir, digest=digest)
            speed, agreement, _ = _measure(candidate, texts, reference, options.batch)
        except Exception as exc:  # a runtime that cannot run this model is a finding, not a crash
            logger.warning("autotune %s: %s failed: %s", base.model_id, name, exc)
            measured.append(VariantMeasurement(name, None, None, False, f"{type(exc).__name__}: {exc}"[:200]))
            continue
        kept = agreement >= options.floor
        reason = None if kept else f"agreement {agreement:.4f} < {options.floor:g}"
        measured.append(VariantMeasurement(name, round(speed, 1), round(agreement, 4), kept, reason))
        if kept and speed > best_speed:
            best, best_speed = candidate, speed
        del candidate
    choice = RuntimeChoice(
        chosen=best.precision,
        source="measured",
        candidates=tuple(measured),
        texts=len(texts),
        floor=options.floor,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        machine=machine_fingerprint(base.device),
    )
    logger.info(
        "autotune %s: chose %s; %s",
        base.model_id,
        choice.chosen,
        ", ".join(f"{m.name} {m.texts_per_s} texts/s agreement {m.agreement}" for m in measured),
    )
    return best, choice


def _cache_key(base: TransformersClassifier, digest: str, texts: Sequence[str], options: AutotuneOptions) -> str:
    texts_digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    parts = {
        "model": base.model_id,
        "digest": digest,
        "machine": machine_fingerprint(base.device),
        "variants": variants_for(base.device, options.exclude),
        "texts": texts_digest,
        "floor": options.floor,
        "batch": options.batch,
        "micro_batch": base.micro_batch,
        "runtimes": RUNTIMES_REVISION,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def prepare_classifier(
    base: TransformersClassifier, precision: str, options: AutotuneOptions, *, digest: str
) -> TransformersClassifier:
    """Return `base` (fp32) as the requested variant, or as the measured choice for "auto".

    The returned classifier carries `runtime_choice` (a `RuntimeChoice`) for monitoring.

    Raises:
        Exception: a requested (not auto) variant that cannot be built; the load fails with it.
    """
    if precision != "auto":
        classifier = build_variant(precision, base, cache_dir=options.cache_dir, digest=digest)
        classifier.runtime_choice = RuntimeChoice(chosen=classifier.precision, source="requested")
        return classifier
    texts = read_eval_texts(options.evalset, options.max_texts)
    if not texts:
        base.runtime_choice = RuntimeChoice(
            chosen="fp32",
            source="unmeasured",
            reason=f"no evaluation texts at {options.evalset}: fp32, nothing to check other variants against",
        )
        return base
    cache = ChoiceCache(options.cache_dir / CACHE_FILE) if options.cache_dir is not None else None
    key = _cache_key(base, digest, texts, options)
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        try:
            classifier = build_variant(cached.chosen, base, cache_dir=options.cache_dir, digest=digest)
        except Exception as exc:  # e.g. the graph file was deleted and cannot be rebuilt: measure
            logger.warning("autotune %s: cached choice %s failed to build: %s", base.model_id, cached.chosen, exc)
        else:
            classifier.runtime_choice = RuntimeChoice(
                **{**cached.as_dict(), "candidates": cached.candidates, "source": "cache"}
            )
            logger.info(
                "autotune %s: %s from the cache (measured %s)", base.model_id, cached.chosen, cached.measured_at
            )
            return classifier
    classifier, choice = choose_variant(base, texts, digest=digest, options=options)
    if cache is not None:
        try:
            cache.put(key, choice)
        except OSError as exc:
            logger.warning("autotune %s: could not cache the choice: %s", base.model_id, exc)
    classifier.runtime_choice = choice
    return classifier
