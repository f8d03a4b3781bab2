"""Find model files (local dir, HF cache, hub), load them, and track each model's load status.

Resolution order for a hub id such as `ProsusAI/finbert`:

1. `model_dir/ProsusAI/finbert` (or `model_dir/ProsusAI--finbert`) when a model dir is given,
   or the id itself when it is a directory holding a `config.json`;
2. the HF hub cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`),
   read with `local_files_only=True`, so nothing touches the network;
3. the hub, only when it is not offline (`HF_HUB_OFFLINE=1` or `offline=True` skip it at once).

Loading runs in a daemon thread: a slow download never blocks the event loop or shutdown.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch

from core.host_limits import memory_limit

from .autotune import AutotuneOptions, directory_digest, prepare_classifier
from .catalog import ModelSpec, map_labels
from .classifier import SentimentModel, TransformersClassifier
from .errors import (
    LabelMappingError,
    ModelDownloadFailed,
    ModelFilesInvalid,
    ModelLoadError,
    ModelNotCached,
    ModelOutOfMemory,
)
from .lock import LockEntry, verify_files

__all__ = [
    "HUB_FILE_PATTERNS",
    "NOT_CACHED_REASON",
    "DownloadProgress",
    "LoadOptions",
    "ModelSlot",
    "ModelSource",
    "ModelStatus",
    "check_memory",
    "find_config",
    "hub_cache_dir",
    "hub_offline",
    "load_transformers_classifier",
    "resolve_device",
    "resolve_model_source",
    "run_in_daemon_thread",
    "translate_load_error",
    "weights_present",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

NOT_CACHED_REASON = "not in local cache and HF hub offline"
# Tokenizer, config and safetensors weights; .bin is fetched in a second step, only as a fallback.
HUB_FILE_PATTERNS = ["*.json", "*.txt", "*.model", "merges.txt", "vocab.*", "bpe.codes", "*.safetensors"]
# Memory a load needs relative to the weights on disk (state dict + model while copying).
_LOAD_MEMORY_FACTOR = 1.5


class ModelStatus(StrEnum):
    """Where a model stands; the values go on the wire as `status`."""

    NOT_LOADED = "not_loaded"
    LOADING = "loading"
    AVAILABLE = "available"
    FAILED = "failed"
    SKIPPED = "skipped"  # listed, deliberately not loaded (budget, MODELS, an admin's unload)


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files were found."""

    model_id: str
    path: Path
    origin: Literal["local", "cache", "hub", "package"]


@dataclass(frozen=True)
class LoadOptions:
    """How to load every model of a service; checked once by the service."""

    device: str = "cpu"
    precision: str = "fp32"  # checked for `device` (classifier.resolve_precision); "auto" is measured
    micro_batch: int | None = None  # texts per forward pass inside an engine batch (None: all)
    model_dir: Path | None = None
    cache_dir: Path | None = None
    offline: bool = False
    revision: str | None = None
    autotune: AutotuneOptions = AutotuneOptions()  # how "auto" measures and caches its choice


@dataclass(frozen=True)
class DownloadProgress:
    """A hub download's progress: bytes in the model's cache folder against the files' total.

    Read from the disk when asked (huggingface_hub writes each file as `<blob>.incomplete`
    and renames it when done), so the download itself needs no callback.
    """

    blobs: Path
    total_bytes: int | None

    def done_bytes(self) -> int:
        """Return the bytes on disk so far, at most the total."""
        try:
            done = sum(entry.stat().st_size for entry in self.blobs.iterdir() if entry.is_file())
        except OSError:  # the folder is not there yet, or a file was renamed while listed
            done = 0
        return min(done, self.total_bytes) if self.total_bytes is not None else done

    def as_dict(self) -> dict[str, int | None]:
        """Return the figures for a model's status."""
        return {"bytes_done": self.done_bytes(), "bytes_total": self.total_bytes}


def _download_total(model_id: str, revision: str | None, patterns: list[str]) -> int | None:
    """Return the bytes of the files a download will fetch, from the hub's file list (None if unknown)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    try:
        sizes = {
            entry.path: int(entry.size)
            for entry in HfApi().list_repo_tree(model_id, revision=revision, recursive=True)
            if isinstance(entry, RepoFile)
        }
    except Exception as exc:  # the download that follows reports the hub's failure properly
        logger.debug("load %s: no file list for the progress total: %r", model_id, exc)
        return None
    wanted = {name for name in sizes if any(fnmatch.fnmatch(name, pattern) for pattern in patterns)}
    if not any(name.endswith(".safetensors") for name in wanted) and "pytorch_model.bin" in sizes:
        wanted.add("pytorch_model.bin")  # the fallback download below
    return sum(sizes[name] for name in wanted)


def resolve_device(device: str) -> str:
    """Turn `auto`/`cpu`/`cuda`/`cuda:N` into a usable torch device string.

    Raises:
        ValueError: an unknown name, or CUDA asked for and not available.
    """
    wanted = device.strip().lower()
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted == "cpu":
        return "cpu"
    if wanted == "cuda" or wanted.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"DEVICE={device!r} but torch sees no CUDA device; use 'auto' or 'cpu'")
        return wanted
    raise ValueError(f"DEVICE must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def hub_offline() -> bool:
    """Return huggingface_hub's offline switch (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read at its import).

    The app passes `Settings.hub_offline` instead; this default serves scripts and tests.
    """
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> Path:
    """Return huggingface_hub's cache directory (HF_HUB_CACHE / HF_HOME, read at its import).

    The app passes `Settings.hub_cache_dir` instead; this default serves scripts and tests.
    """
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _local_candidates(model_id: str, model_dir: Path | None) -> list[Path]:
    candidates = [Path(model_id)]
    if model_dir is not None:
        candidates += [model_dir / model_id, model_dir / model_id.replace("/", "--")]
    return candidates


def weights_present(path: Path) -> bool:
    """True when a model directory holds safetensors or a pytorch_model.bin."""
    return any(path.glob("*.safetensors")) or (path / "pytorch_model.bin").exists()


def resolve_model_source(
    model_id: str,
    options: LoadOptions,
    lock: LockEntry | None = None,
    on_download: Callable[[DownloadProgress], None] | None = None,
) -> ModelSource:
    """Find a model's files without loading them (may download when the hub is online).

    `on_download` receives the progress of a hub download before it starts.

    With a lock entry the locked commit is the revision, only the locked files are fetched, and
    every file is checked against its SHA-256, whether it came from the cache or the hub.

    Raises:
        ModelNotCached: not found locally and the hub is offline.
        ModelDownloadFailed: the hub was tried and failed.
        ModelFilesInvalid: a locked file is missing or its digest differs.
    """
    for candidate in _local_candidates(model_id, options.model_dir):
        if (candidate / "config.json").is_file():
            return ModelSource(model_id, candidate, "local")
    # Imported here: huggingface_hub is heavy and only needed for hub ids.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache_dir = options.cache_dir or hub_cache_dir()
    revision = lock.revision if lock is not None else options.revision
    patterns = sorted(lock.files) if lock is not None else None

    def snapshot(allow: list[str], *, local_only: bool = False) -> Path:
        return Path(
            snapshot_download(
                model_id, cache_dir=cache_dir, revision=revision, local_files_only=local_only, allow_patterns=allow
            )
        )

    try:
        # The patterns matter: with the repository's listing cached, a lookup without them demands
        # every file of the repository (README, other exports), which fetching never downloads.
        path = snapshot(patterns or ["config.json"], local_only=True)
        # Weights too: the budget may have fetched a model's config.json alone into the cache.
        if (path / "config.json").is_file() and weights_present(path) and (
            lock is None or all((path / name).is_file() for name in lock.files)
        ):
            if lock is not None:
                verify_files(path, lock)
            return ModelSource(model_id, path, "cache")
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        pass  # not cached: fall through to the hub
    if options.offline:
        raise ModelNotCached(NOT_CACHED_REASON)
    logger.info("load %s: downloading %s from the hub into %s", model_id, revision or "main", cache_dir)
    if on_download is not None:
        folder = Path(cache_dir) / f"models--{model_id.replace('/', '--')}" / "blobs"
        on_download(DownloadProgress(folder, _download_total(model_id, revision, patterns or HUB_FILE_PATTERNS)))
    try:
        path = snapshot(patterns or HUB_FILE_PATTERNS)
        if lock is None and not weights_present(path):  # older repos only ship pytorch_model.bin
            path = snapshot(["pytorch_model.bin"])
    except Exception as exc:  # network, auth, missing repo: all surface as one reason
        raise ModelDownloadFailed(f"download from the HF hub failed: {_short_hub_error(exc)}") from exc
    if lock is not None:
        verify_files(path, lock)
    return ModelSource(model_id, path, "hub")


def find_config(model_id: str, options: LoadOptions, revision: str | None = None) -> Path | None:
    """Return a model's config.json: local dir, HF cache, else downloaded alone from the hub; None if nowhere."""
    for candidate in _local_candidates(model_id, options.model_dir):
        if (candidate / "config.json").is_file():
            return candidate / "config.json"
    from huggingface_hub import hf_hub_download

    for local_only in (True, False):
        if not local_only and options.offline:
            return None
        try:
            return Path(
                hf_hub_download(
                    model_id,
                    "config.json",
                    revision=revision,
                    cache_dir=options.cache_dir or hub_cache_dir(),
                    local_files_only=local_only,
                )
            )
        except Exception as exc:  # not cached; then the hub's answer: the caller says "unknown"
            logger.debug("config %s: not found (%s): %r", model_id, "cache" if local_only else "hub", exc)
    return None


def _short_hub_error(exc: BaseException) -> str:
    """Name the hub's answer in one line (the library's messages run to several paragraphs).

    The library wraps a failed listing (429, 5xx) in a "not in the cache" error: the HTTP status
    is found on the chained cause.
    """
    found: BaseException | None = exc
    status = None
    for _ in range(5):  # a short chain: the outer error and its causes
        if found is None:
            break
        status = getattr(getattr(found, "response", None), "status_code", None)
        if status is not None:
            break
        found = found.__cause__ or found.__context__
    shown = found if status is not None and found is not None else exc
    text = str(shown).strip()
    first_line = text.splitlines()[0] if text else ""
    prefix = f"HTTP {status} " if status is not None else ""
    return f"{prefix}{type(shown).__name__}: {first_line}"[:300]


def _available_host_bytes() -> int | None:
    memory = memory_limit()  # the container's limit where there is one, not the host's MemAvailable
    return memory.available_bytes if memory is not None else None


def check_memory(path: Path, device: str, *, available_bytes: int | None = None) -> None:
    """Refuse to load weights that cannot fit, instead of letting the OOM killer end the app.

    Raises:
        ModelOutOfMemory: the estimated need exceeds what is free on the device.
    """
    weights = [*path.glob("*.safetensors"), *path.glob("pytorch_model*.bin")]
    size = sum(file.stat().st_size for file in weights if file.is_file())
    if size == 0:
        return
    if device.startswith("cuda"):
        need = size // 2 * _LOAD_MEMORY_FACTOR  # fp16 on GPU
        if available_bytes is None:
            free, _ = torch.cuda.mem_get_info(torch.device(device))
            available_bytes = int(free)
    else:
        need = size * _LOAD_MEMORY_FACTOR
        if available_bytes is None:
            available_bytes = _available_host_bytes()
    if available_bytes is not None and need > available_bytes:
        raise ModelOutOfMemory(
            f"out of memory: needs about {need / 2**20:.0f} MiB on {device}, "
            f"{available_bytes / 2**20:.0f} MiB free"
        )


def translate_load_error(exc: BaseException) -> ModelLoadError:
    """Turn a third-party load failure into our error with a short reason."""
    if isinstance(exc, ModelLoadError):
        return exc
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return ModelOutOfMemory(f"out of memory while loading: {exc}".strip())
    if isinstance(exc, LabelMappingError):
        return ModelFilesInvalid(f"bad labels: {exc}")
    return ModelFilesInvalid(f"bad or incomplete model files: {type(exc).__name__}: {exc}")


def load_transformers_classifier(
    spec: ModelSpec, source: ModelSource, options: LoadOptions
) -> TransformersClassifier:
    """Load a sequence classifier from a resolved directory, on the options' device.

    Raises:
        ModelLoadError: any failure, translated (bad files, bad labels, out of memory).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    device = options.device
    try:
        check_memory(source.path, device)
        config = AutoConfig.from_pretrained(source.path, local_files_only=True)
        labels = map_labels(config.id2label, known_order=spec.known_order, model_id=spec.id)
        tokenizer = AutoTokenizer.from_pretrained(source.path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            source.path, local_files_only=True, dtype=torch.float32
        )
        model.eval().to(device)
        base = TransformersClassifier(
            spec.id,
            model,
            tokenizer,
            labels,
            device=device,
            max_length=token_window(spec.max_length, config),
            micro_batch=options.micro_batch,
        )
        return prepare_classifier(
            base, options.precision, options.autotune, digest=directory_digest(source.path)
        )
    except Exception as exc:
        raise translate_load_error(exc) from exc


def token_window(catalog_window: int, config: Any) -> int:
    """The catalog's window, or less where the checkpoint has fewer positions (longer inputs crash it).

    RoBERTa-family models number positions from `pad_token_id + 1`, so they hold two fewer tokens
    than `max_position_embeddings`.
    """
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return catalog_window
    offset = (getattr(config, "pad_token_id", 0) or 0) + 1 if config.model_type in _OFFSET_POSITIONS else 0
    return max(1, min(catalog_window, positions - offset))


_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "camembert", "bertweet"})


async def run_in_daemon_thread(fn: Callable[[], T], *, name: str) -> T:
    """Run a blocking function in a daemon thread and await its result.

    A daemon thread (not the default executor) so a hub download that hangs cannot delay
    interpreter exit; the price is that it cannot be cancelled, only abandoned.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(result: object, error: BaseException | None) -> None:
        if future.done():  # the awaiting task was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        result: object = None
        error: BaseException | None = None
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting task, which decides
            error = exc
        try:
            loop.call_soon_threadsafe(deliver, result, error)
        except RuntimeError:  # the loop closed while we worked: nobody is waiting any more
            logger.debug("load %s: finished after the event loop closed", name)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future


class ModelSlot:
    """One catalog model and its load state: not_loaded -> loading -> available | failed, or skipped.

    `skipped` is a model listed but deliberately not loaded (the budget, MODELS, an admin's
    unload); `load()` may still be called on it later.

    Args:
        spec: the catalog entry.
        load: blocking function that returns the loaded model or raises (any error is
            translated into a `ModelLoadError` reason).
    """

    def __init__(self, spec: ModelSpec, load: Callable[[], SentimentModel]) -> None:
        self.spec = spec
        self._load = load
        self.status = ModelStatus.NOT_LOADED
        self.reason: str | None = None
        self.model: SentimentModel | None = None
        self.load_seconds: float | None = None
        self.download: DownloadProgress | None = None  # set while a hub download runs

    @property
    def model_id(self) -> str:
        """The catalog id of this model."""
        return self.spec.id

    @property
    def is_available(self) -> bool:
        """True once the model is loaded and usable."""
        return self.status is ModelStatus.AVAILABLE and self.model is not None

    def skip(self, reason: str) -> None:
        """Say the model is listed but not loaded, and why (`reason` starts with what to do about it)."""
        self.status = ModelStatus.SKIPPED
        self.reason = reason
        self.model = None

    def track_download(self, progress: DownloadProgress) -> None:
        """Keep the progress of this model's hub download, for its status."""
        self.download = progress

    def mark_loading(self, waiting: str) -> None:
        """Say a load is scheduled and what it waits for: clients see `loading` at once, not the state before
        (`not_loaded`, or a skip's or failure's reason). A loaded or loading model is left as it is."""
        if self.status in (ModelStatus.NOT_LOADED, ModelStatus.SKIPPED, ModelStatus.FAILED):
            self.status = ModelStatus.LOADING
            self.reason = waiting

    async def load(self) -> None:
        """Load in a daemon thread; record `available` or `failed` with a reason, never raise."""
        self.status = ModelStatus.LOADING
        self.reason = None
        self.download = None
        started = time.monotonic()
        logger.info("load %s: started", self.model_id)
        try:
            model = await run_in_daemon_thread(self._load, name=f"load:{self.model_id}")
        except Exception as exc:
            error = translate_load_error(exc)
            self.status = ModelStatus.FAILED
            self.reason = error.reason
            if isinstance(error, ModelNotCached):
                logger.info("load %s: skipped: %s", self.model_id, error.reason)
            elif isinstance(exc, ModelLoadError):
                logger.warning("load %s: failed: %s", self.model_id, error.reason)
            else:
                logger.warning("load %s: failed: %s", self.model_id, error.reason, exc_info=exc)
            return
        self.model = model
        self.load_seconds = time.monotonic() - started
        self.status = ModelStatus.AVAILABLE
        logger.info("load %s: available on %s after %.1fs", self.model_id, model.device, self.load_seconds)
