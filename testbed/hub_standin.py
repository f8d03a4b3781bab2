"""A local stand-in for the HuggingFace Hub's HTTP API, serving checkpoints the tests build.

It implements what `huggingface_hub` 2.4 calls to resolve a revision and download files
(read in `_snapshot_download.py` and `file_download.py`):

- `GET /api/models/{repo}/revision/{rev}`: model info; `sha` is the resolved commit;
- `GET /api/models/{repo}/tree/{rev}?recursive=...`: the file list, weights described as LFS
  files (`lfs.oid` is the SHA-256), without pagination;
- `HEAD|GET /{repo}/resolve/{rev}/{file}`: `X-Repo-Commit`, `ETag` (git blob id) and, for weights,
  `X-Linked-Etag` (SHA-256) and `X-Linked-Size`; `Range` requests are honoured.

Errors follow the Hub: 404 with `X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound`,
401 with `X-Error-Code: GatedRepo`, and injected 429, 500 or a download that stalls half-way.
Every request is counted, so a test can prove that a start made none.

The checkpoints: for each catalog entry, a model of the same architecture family and tokenizer
type, carrying that model's real label names in their real order (from its `config.json` on the
Hub); tiny by default, or full-size (BERT-base / RoBERTa-base dimensions, random weights) for the
memory and cold-start benchmark.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from testbed.inference_fixtures import Family, build_tiny_classifier

Fault = Literal["gated", "429", "500", "stall"]

# The real id2label of each catalog model, in index order, and its architecture family.
# ElKulako/cryptobert is a BERTweet (RoBERTa) model; its tokenizer is BPE like RoBERTa's.
REAL_LABELS: dict[str, tuple[Family, tuple[str, ...]]] = {
    "ElKulako/cryptobert": ("roberta", ("Bearish", "Neutral", "Bullish")),
    "kk08/CryptoBERT": ("bert", ("LABEL_0", "LABEL_1")),
    "ProsusAI/finbert": ("bert", ("positive", "negative", "neutral")),
    "StephanAkkerman/FinTwitBERT-sentiment": ("bert", ("NEUTRAL", "BULLISH", "BEARISH")),
    "mrm8488/distilroberta-finetuned-financial-news-sentiment-analysis": (
        "roberta",
        ("negative", "neutral", "positive"),
    ),
    "cardiffnlp/twitter-roberta-base-sentiment-latest": ("roberta", ("negative", "neutral", "positive")),
    "yiyanghkust/finbert-tone": ("bert", ("Neutral", "Positive", "Negative")),
}
# Sizes of the real checkpoints' families (BERT-base / RoBERTa-base).
FULL_SIZE: dict[str, dict[str, int]] = {
    "bert": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "vocab_size": 30522,
        "max_position_embeddings": 512,
    },
    "roberta": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "vocab_size": 50265,
        "max_position_embeddings": 514,
    },
}
# Where a real checkpoint departs from its family's base size (from each model's config.json).
FULL_SIZE_OVERRIDES: dict[str, dict[str, int]] = {
    "ElKulako/cryptobert": {"vocab_size": 64001, "max_position_embeddings": 130},  # BERTweet-base
    "mrm8488/distilroberta-finetuned-financial-news-sentiment-analysis": {"num_hidden_layers": 6},
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".h5", ".msgpack", ".onnx")


def git_blob_id(data: bytes) -> str:
    """Return git's blob id of a file, which the Hub sends as the ETag of non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class StandinRepo:
    """One model repository: a commit and its files (read from disk per request, digests cached)."""

    repo_id: str
    files: dict[str, Path]
    commit: str = ""
    _digests: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.commit:
            digest = hashlib.sha1()
            for name in sorted(self.files):
                digest.update(name.encode() + b"\0" + self.sha256(name).encode())
            self.commit = digest.hexdigest()

    def data(self, name: str) -> bytes:
        return self.files[name].read_bytes()

    def size(self, name: str) -> int:
        return self.files[name].stat().st_size

    def is_lfs(self, name: str) -> bool:
        return name.endswith(_WEIGHT_SUFFIXES)

    def sha256(self, name: str) -> str:
        key = ("sha256", name)
        if key not in self._digests:
            self._digests[key] = hashlib.sha256(self.data(name)).hexdigest()
        return self._digests[key]

    def blob_id(self, name: str) -> str:
        key = ("git", name)
        if key not in self._digests:
            self._digests[key] = git_blob_id(self.data(name))
        return self._digests[key]


@dataclass
class StandinHub:
    """The server's state: repos, injected faults and a request log."""

    repos: dict[str, StandinRepo] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    stall_s: float = 30.0
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_dir(self, repo_id: str, directory: Path) -> StandinRepo:
        """Serve every file of a saved checkpoint directory as `repo_id`."""
        files = {
            path.relative_to(directory).as_posix(): path for path in sorted(directory.rglob("*")) if path.is_file()
        }
        repo = StandinRepo(repo_id, files)
        self.repos[repo_id] = repo
        return repo

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def requests_for(self, repo_id: str) -> list[tuple[str, str]]:
        with self._lock:
            return [entry for entry in self.requests if f"/{repo_id}/" in entry[1]]


_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<kind>revision|tree)/(?P<rev>[^/?]+)(?P<rest>/.*)?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


class _Handler(BaseHTTPRequestHandler):
    hub: StandinHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _error(self, status: int, code: str | None, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _repo(self, repo_id: str, revision: str) -> StandinRepo | None:
        hub = self.hub
        repo = hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return None
        fault = hub.faults.get(repo_id)
        if fault == "gated":
            self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted")
            return None
        if fault == "429":
            self._error(429, None, "Too many requests")
            return None
        if fault == "500":
            self._error(500, None, "Internal Error")
            return None
        if revision not in ("main", repo.commit):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return repo

    def _serve(self, *, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.record(self.command, path)
        api = _API.match(path)
        if api:
            repo = self._repo(api["repo"], api["rev"])
            if repo is None:
                return
            if api["kind"] == "revision":
                self._json(
                    {
                        "id": repo.repo_id,
                        "modelId": repo.repo_id,
                        "sha": repo.commit,
                        "private": False,
                        "gated": False,
                        "siblings": [{"rfilename": name} for name in sorted(repo.files)],
                    }
                )
            else:
                self._json([self._tree_entry(repo, name) for name in sorted(repo.files)])
            return
        resolve = _RESOLVE.match(path)
        if resolve is None:
            self._error(404, None, f"no route for {path}")
            return
        repo = self._repo(resolve["repo"], resolve["rev"])
        if repo is None:
            return
        name = resolve["file"]
        if name not in repo.files:
            self._error(404, "EntryNotFound", f"{name} does not exist on {resolve['rev']}")
            return
        self._send_file(repo, name, head=head)

    def _tree_entry(self, repo: StandinRepo, name: str) -> dict[str, object]:
        size = repo.size(name)
        entry: dict[str, object] = {"type": "file", "oid": repo.blob_id(name), "size": size, "path": name}
        if repo.is_lfs(name):
            entry["lfs"] = {"oid": repo.sha256(name), "size": size, "pointerSize": 134}
        return entry

    def _send_file(self, repo: StandinRepo, name: str, *, head: bool) -> None:
        size = repo.size(name)
        start = 0
        ranged = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if ranged and not head:
            start = min(int(ranged.group(1)), size)
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", repo.commit)
        if repo.is_lfs(name):
            self.send_header("X-Linked-Etag", f'"{repo.sha256(name)}"')
            self.send_header("X-Linked-Size", str(size))
        self.send_header("ETag", f'"{repo.blob_id(name)}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(size - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        if head:
            return
        stall_at = start + max(1, (size - start) // 2)
        stalls = self.hub.faults.get(repo.repo_id) == "stall" and repo.is_lfs(name)
        # Streamed from disk in 1 MiB chunks: full-size checkpoints are hundreds of megabytes.
        with repo.files[name].open("rb") as handle:
            handle.seek(start)
            sent = start
            while chunk := handle.read(min(1 << 20, (stall_at - sent) if stalls else 1 << 20)):
                self.wfile.write(chunk)
                sent += len(chunk)
                if stalls and sent >= stall_at:
                    # Half the bytes, then silence: the client's read timeout must end it.
                    self.wfile.flush()
                    time.sleep(self.hub.stall_s)
                    return


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def serve(hub: StandinHub) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start serving `hub` on a free loopback port (sets `hub.port`)."""
    handler = type("Handler", (_Handler,), {"hub": hub})
    server = _Server(("127.0.0.1", 0), handler)
    hub.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="hub-standin", daemon=True)
    thread.start()
    return server, thread


@contextlib.contextmanager
def running_hub(hub: StandinHub) -> Iterator[StandinHub]:
    """Serve `hub` for the duration of a with-block or fixture."""
    server, thread = serve(hub)
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def build_catalog_checkpoint(
    out: Path, repo_id: str, *, full_size: bool = False, seed: int = 0, favour: int | None = None
) -> Path:
    """Save a stand-in for one catalog model: same family and tokenizer type, real label order.

    Tiny ones still take the catalog's 128-token window (RoBERTa counts 2 extra positions).
    """
    family, names = REAL_LABELS[repo_id]
    id2label = dict(enumerate(names))
    dims: Mapping[str, int] = (
        {**FULL_SIZE[family], **FULL_SIZE_OVERRIDES.get(repo_id, {})}
        if full_size
        else {"max_position_embeddings": 128 if family == "bert" else 130}
    )
    return build_tiny_classifier(family, out, id2label, seed=seed, dims=dims, favour=favour)


def lock_entry(repo: StandinRepo) -> dict[str, object]:
    """Return what `python -m training.lock` should write for this repo: the files loading reads (for comparisons)."""
    from inference.hubfiles import loaded_files

    return {"revision": repo.commit, "files": {name: repo.sha256(name) for name in loaded_files(repo.files)}}
