"""Every name the README and docs/*.md give the reader exists in the tree, so the docs cannot drift.

Each kind of name has its own test, so a failure says which kind drifted. The rules:

- File paths: a relative path in backticks with a known extension or a trailing slash, and anywhere in
  the text (code blocks too) a path that starts at one of the project's folders (`core/store/news.py`,
  `scripts/check`, `tests/test_sources_*.py` as a glob), exists from the repository root or from a
  package folder (the README's package table names `static/live.js` from `space/`). URLs, URL
  paths (`/ws/news`), `../shared`, paths under a setting's folder (`DATA_DIR/x.json`) and the names
  in `NOT_IN_THE_TREE` are left out. A bare backticked `name.py` is some file of the tree.
- Links between the docs (`docs/limits.md#scoring`) resolve from the linking file, anchors included
  (GitHub's heading slugs).
- Modules: `python -m X` names a module that exists, and a backticked dotted name rooted at one of
  our packages (`core.protocol.StreamErrorMessage`, `training.evaluate`) imports (the longest
  module prefix) and resolves (`getattr` for the rest).
- Settings: a name in the first column of a table headed `variable`, and a name assigned as
  `NAME=value` (in backticks or code blocks; not a shell variable the same example reads as
  `$NAME`), is a field of `core.config.Settings` (whose `SourcesSection` configures `sources.SourceService`),
  read from the environment by the code (`environ.get("NAME")`, `environ["NAME"]`, `getenv("NAME")`)
  or declared in the Dockerfile (`ARG`/`ENV`, for `docker build --build-arg`).
- Error codes: a name in the first column of a table headed `code` is a `core.protocol.ErrorCode`.
- Every other backticked UPPER_CASE word is one of the above, a REST error code the code raises
  (`"code": "BUSY"`), a constant the code defines (`SINCE_AHEAD_GRACE_S`), or in `NOT_OURS` (log
  levels, socket options, other programs' words), each with its reason.
- Message types: a backticked snake_case name in a table column headed `server sends` or `stream`,
  right before the word "cadence" or "message", or ending in `_status` or `_update`, is the `type`
  (or a client request's `action`) of a model in `core.protocol`. A dotted name that starts with a
  message type (`system_status.database.storage`, `news.data.scored_by`) is a chain of fields of
  that message, starting at any depth of its models; a model that takes extra fields (a model
  entry) takes any name.
- Code comments and docstrings that cite a Markdown file cite one of this tree's.
- The license the README's front matter declares for the Space has its text in LICENSE.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import io
import re
import tokenize
import tomllib
import typing
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from pydantic import BaseModel

import core.protocol
from core.config import Settings
from core.protocol import ErrorCode
from core.rest import RestErrorCode
from core.settings_base import env_name

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
PACKAGES = ("api", "ws", "space", "desk", "sources", "inference", "training", "core", "bench", "clients")
FOLDERS = (*PACKAGES, "tests", "docs", "scripts", "fuzz", ".ci")  # a path starting here is one of ours
EXTENSIONS = ("py", "md", "js", "json", "jsonl", "toml", "txt", "css", "html", "sh", "cfg", "lock.json")

# Paths the docs name that are not, and need not be, in this tree.
NOT_IN_THE_TREE = {
    "artifacts/screenshots/": "written by the browser tests, git-ignored",
    "logs/server.log": "written at run time (LOG_FILE)",
    "data/finetune/ChanceFocus_fiqa.csv": "a file of the FinTwitBERT repository, where the data set comes from",
    "twitter_financial_news_sentiment/train.csv": "a data set under DIR (../shared/datasets), never copied here",
    "fiqa_sentiment/fiqa.csv": "a data set under DIR (../shared/datasets), never copied here",
    "twitter_financial_news_sentiment/valid.csv": "a data set under DIR, never copied here",
}

# Markdown files the code's comments cite that live outside this tree.
CITED_ELSEWHERE = {"spaces-sdks-docker.md": "a page of Hugging Face's hub-docs"}

# Backticked UPPER_CASE words that name nothing of ours.
NOT_OURS = {
    "DEBUG": "a log level",
    "INFO": "a log level",
    "WARNING": "a log level",
    "ERROR": "a log level",
    "CRITICAL": "a log level",
    "NORMAL": "SQLite's synchronous mode",
    "OR": "a full-text query operator, taken as plain text",
    "INCR": "a Redis command",
    "SO_REUSEPORT": "a socket option",
    "DIR": "the argument of --data-dir, a placeholder",
    "MPNET": "the argument of the teacher's --model-dir, a placeholder",
    "LABEL_0": "a label name of a hub model's config",
    "XXBTZUSD": "Kraken's name of a trading pair",
    "HF_ENDPOINT": "read by huggingface_hub, not by us",
    "HF_HUB_DOWNLOAD_TIMEOUT": "read by huggingface_hub, not by us",
}

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
UPPER = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
ASSIGNED = re.compile(r"(?<![\w./-])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)=")
SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[a-z]+")


# ------------------------------------------------------------ reading the docs


def _name(doc: Path) -> str:
    return doc.relative_to(ROOT).as_posix()


def _prose(doc: Path) -> str:
    """Return the text outside fenced code blocks (and outside the README's front matter)."""
    text = doc.read_text(encoding="utf-8")
    if text.startswith("---\n"):
        text = text[text.index("\n---\n", 4) + 5:]
    return FENCE.sub("", text)


def _code_blocks(doc: Path) -> list[str]:
    return FENCE.findall(doc.read_text(encoding="utf-8"))


def _spans(doc: Path) -> Iterator[str]:
    yield from SPAN.findall(_prose(doc))


def _tables(doc: Path) -> Iterator[tuple[list[str], list[list[str]]]]:
    """Yield (header cells, rows of cells) of every Markdown table; `\\|` stays inside its cell."""
    lines = _prose(doc).splitlines()
    for i in range(len(lines) - 1):
        if lines[i].startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1].strip()):
            header = _cells(lines[i])
            rows = []
            for line in lines[i + 2:]:
                if not line.startswith("|"):
                    break
                rows.append(_cells(line))
            yield header, rows


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _column(doc: Path, titles: tuple[str, ...], index: int | None = None) -> Iterator[str]:
    """Yield the backticked names in the table columns headed by one of `titles` (or the first column)."""
    for header, rows in _tables(doc):
        for col, title in enumerate(header):
            if title.lower() in titles and (index is None or col == index):
                for row in rows:
                    if col < len(row):
                        yield from SPAN.findall(row[col])


def _all(names: dict[str, list[str]]) -> str:
    """Return one line per drifted name, `doc: name`; empty when nothing drifted."""
    return "\n".join(sorted(f"{doc}: {name}" for doc, found in names.items() for name in found))


# ------------------------------------------------------------ reading the code


@cache
def _sources() -> dict[Path, str]:
    files = [ROOT / "app.py", *(p for pkg in (*PACKAGES, "tests") for p in (ROOT / pkg).rglob("*.py"))]
    return {p: p.read_text(encoding="utf-8") for p in files}


@cache
def _environment_read_by_code() -> frozenset[str]:
    pattern = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]*)["']""")
    names = {m for text in _sources().values() for m in pattern.findall(text)}
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    names |= set(re.findall(r"^ARG\s+([A-Z][A-Z0-9_]*)", dockerfile, re.M))
    for line in re.findall(r"^ENV\s+(.*(?:\\\n.*)*)", dockerfile, re.M):
        names |= set(re.findall(r"([A-Z][A-Z0-9_]*)=", line))
    return frozenset(names)


@cache
def _settings() -> frozenset[str]:
    return frozenset(env_name(field) for field in Settings.model_fields) | _environment_read_by_code()


@cache
def _constants() -> frozenset[str]:
    pattern = re.compile(r"^\s*([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\s*(?::[^=\n]+)?=", re.M)
    return frozenset(m for text in _sources().values() for m in pattern.findall(text))


@cache
def _rest_error_codes() -> frozenset[str]:
    """The REST error codes: `core.rest.RestErrorCode`, and any `"code": "X"` written in the code."""
    pattern = re.compile(r"""["']code["']\s*:\s*["']([A-Z][A-Z0-9_]*)["']""")
    written = {m for text in _sources().values() for m in pattern.findall(text)}
    return frozenset(written | {code.value for code in RestErrorCode})


@cache
def _message_models() -> dict[str, type[BaseModel]]:
    """Map each message's `type` (server messages, `ping`) or `action` (client requests) to its model."""
    models: dict[str, type[BaseModel]] = {}
    for value in vars(core.protocol).values():
        if isinstance(value, type) and issubclass(value, BaseModel):
            for key in ("type", "action"):
                if key in value.model_fields:
                    for literal in typing.get_args(value.model_fields[key].annotation):
                        models.setdefault(literal, value)
    return models


def _nested_models(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _nested_models(arg)


def _has_path(model: type[BaseModel], path: list[str], seen: frozenset[type[BaseModel]] = frozenset()) -> bool:
    """Whether `path` is a chain of fields starting at `model` or at any model nested in it."""
    if _follows(model, path):
        return True
    return any(
        _has_path(inner, path, seen | {model})
        for info in model.model_fields.values()
        for inner in _nested_models(info.annotation)
        if inner not in seen
    )


def _follows(model: type[BaseModel], path: list[str]) -> bool:
    if not path:
        return True
    if path[0] not in model.model_fields:
        return model.model_config.get("extra") == "allow"
    inner = list(_nested_models(model.model_fields[path[0]].annotation))
    return len(path) == 1 or any(_follows(m, path[1:]) for m in inner)


# ------------------------------------------------------------ what the docs name


def _named_paths(doc: Path) -> Iterator[str]:
    top = "|".join(re.escape(folder) for folder in FOLDERS)
    rooted = re.compile(rf"(?<![\w./-])((?:{top})/[\w./*-]*[\w/*])")
    text = URL.sub("", doc.read_text(encoding="utf-8"))
    yield from rooted.findall(text)
    known = "|".join(re.escape(e) for e in EXTENSIONS)
    for span in _spans(doc):
        if re.fullmatch(rf"[\w.-]+(?:/[\w.-]+)+(?:\.(?:{known})|/)", span) and not span.startswith(".."):
            if not UPPER.fullmatch(span.split("/")[0]):  # `DATA_DIR/x.json` is under a folder a setting names
                yield span


def _linked(doc: Path) -> Iterator[str]:
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(doc)):
        if not URL.match(target):
            yield target


def _modules(doc: Path) -> Iterator[str]:
    text = doc.read_text(encoding="utf-8")
    yield from re.findall(r"python3? -m ([\w.]+)", text)
    for span in _spans(doc):
        if re.fullmatch(rf"(?:{'|'.join(PACKAGES)})(?:\.\w+)+", span):
            yield span


def _assigned(doc: Path) -> Iterator[str]:
    for text in (*_spans(doc), *_code_blocks(doc)):
        # A name the example itself reads as `$NAME` is its own shell variable, not a setting.
        local = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text))
        yield from (name for name in ASSIGNED.findall(URL.sub("", text)) if name not in local)


def _message_names(doc: Path) -> Iterator[str]:
    yield from (n for n in _column(doc, ("server sends", "stream")) if SNAKE.fullmatch(n))
    prose = _prose(doc)
    yield from re.findall(r"`([a-z][a-z0-9_]*)`\s+(?:cadence|message)\b", prose)
    for span in _spans(doc):
        if re.fullmatch(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*_(?:status|update)", span):
            yield span


def _message_fields(doc: Path) -> Iterator[str]:
    # `news.ack_ms` (a benchmark figure) is not a field, `news.data.scored_by` and `system_status.x` are.
    for span in _spans(doc):
        head, _, rest = span.partition(".")
        if re.fullmatch(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+", span) and head in _message_models():
            if "_" in head or rest.startswith("data."):
                yield span


# ------------------------------------------------------------ the checks


def test_the_rules_find_names_in_the_docs() -> None:
    """Guards the parsing: rules that find nothing would pass on any docs."""
    readme = ROOT / "README.md"
    assert "core/store/journal.py" in set(_named_paths(readme))
    assert "training.evaluate" in set(_modules(readme))
    assert "HISTORY_SIZE" in set(_column(readme, ("variable",), 0))
    assert "SEQ_AHEAD" in set(_column(readme, ("code",), 0))
    assert {"models_status", "price_update"} <= set(_message_names(readme))


def test_file_paths_named_in_docs_exist() -> None:
    files = {p.name for p in ROOT.rglob("*.py")}
    missing: dict[str, list[str]] = {}
    for doc in DOCS:
        gone = [p for p in set(_named_paths(doc)) if p not in NOT_IN_THE_TREE and not _exists(p)]
        gone += [s for s in _spans(doc) if re.fullmatch(r"[\w-]+\.py", s) and s not in files]
        missing[_name(doc)] = sorted(set(gone))
    assert not _all(missing), f"files the docs name are not in the tree:\n{_all(missing)}"


def _exists(path: str) -> bool:
    """Whether `path` is in the tree from the root, or from a package (the README's package table)."""
    return any(next(base.glob(path), None) is not None for base in (ROOT, *(ROOT / p for p in PACKAGES)))


def test_links_between_docs_resolve() -> None:
    broken: dict[str, list[str]] = {}
    for doc in DOCS:
        for target in _linked(doc):
            path, _, anchor = target.partition("#")
            linked = (doc.parent / path).resolve() if path else doc
            if not linked.exists():
                broken.setdefault(_name(doc), []).append(target)
            elif anchor and anchor not in _anchors(linked):
                broken.setdefault(_name(doc), []).append(f"{target} (no such heading)")
    assert not _all(broken), f"links that lead nowhere:\n{_all(broken)}"


def _anchors(doc: Path) -> set[str]:
    headings = re.findall(r"^#+\s+(.+)$", _prose(doc), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_python_modules_named_in_docs_import() -> None:
    unknown: dict[str, list[str]] = {}
    for doc in DOCS:
        unknown[_name(doc)] = sorted({m for m in _modules(doc) if not _resolves(m)})
    assert not _all(unknown), f"modules that do not import or resolve:\n{_all(unknown)}"


def _resolves(dotted: str) -> bool:
    """Whether the longest module prefix of `dotted` exists and `getattr` finds the rest."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        if not _is_module(module):
            continue
        target: object = importlib.import_module(module) if cut < len(parts) else None
        for attr in parts[cut:]:
            if not hasattr(target, attr):
                return False
            target = getattr(target, attr)
        return True
    return False


def _is_module(name: str) -> bool:
    # Our modules by their files: importing `inference` to look for `training.evaluate` loads torch.
    if name.split(".")[0] in PACKAGES:
        path = ROOT.joinpath(*name.split("."))
        return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def test_settings_named_in_docs_are_read() -> None:
    unknown: dict[str, list[str]] = {}
    for doc in DOCS:
        named = {*(n for n in _column(doc, ("variable",), 0) if UPPER.fullmatch(n)), *_assigned(doc)}
        unknown[_name(doc)] = sorted(named - _settings())
    assert not _all(unknown), f"variables no setting or code reads:\n{_all(unknown)}"


def test_error_codes_named_in_docs_are_protocol_codes() -> None:
    unknown: dict[str, list[str]] = {}
    for doc in DOCS:
        unknown[_name(doc)] = sorted(set(_column(doc, ("code",), 0)) - set(ErrorCode))
    assert not _all(unknown), f"error codes core.protocol.ErrorCode lacks:\n{_all(unknown)}"


def test_uppercase_names_in_docs_are_known() -> None:
    known = _settings() | set(ErrorCode) | _rest_error_codes() | _constants() | set(NOT_OURS)
    unknown: dict[str, list[str]] = {}
    for doc in DOCS:
        unknown[_name(doc)] = sorted({s for s in _spans(doc) if UPPER.fullmatch(s) and len(s) > 1} - known)
    assert not _all(unknown), f"UPPER_CASE names nothing defines:\n{_all(unknown)}"


def test_message_types_named_in_docs_exist() -> None:
    unknown: dict[str, list[str]] = {}
    for doc in DOCS:
        unknown[_name(doc)] = sorted(set(_message_names(doc)) - set(_message_models()))
    assert not _all(unknown), f"message types core.protocol lacks:\n{_all(unknown)}"


def test_message_fields_named_in_docs_exist() -> None:
    unknown: dict[str, list[str]] = {}
    for doc in DOCS:
        fields = set(_message_fields(doc))
        unknown[_name(doc)] = sorted(f for f in fields if not _has_path(_message_models()[f.split(".")[0]],
                                                                        f.split(".")[1:]))
    assert not _all(unknown), f"message fields the models lack:\n{_all(unknown)}"


def _comments_and_docstrings(text: str) -> Iterator[str]:
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            yield token.string
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            yield ast.get_docstring(node) or ""


def test_docs_cited_in_code_comments_exist() -> None:
    """A comment or docstring that sends the reader to a Markdown file names one of the project's."""
    missing: dict[str, list[str]] = {}
    for path, text in _sources().items():
        if ".md" not in text:
            continue  # parsing every file costs seconds; most cite nothing
        cited = {m for part in _comments_and_docstrings(text) for m in re.findall(r"[\w/-]+\.md\b", part)}
        gone = {c for c in cited - set(CITED_ELSEWHERE) if not (ROOT / c).exists() and not (ROOT / "docs" / c).exists()}
        missing[path.relative_to(ROOT).as_posix()] = sorted(gone)
    assert not _all(missing), f"Markdown files the code cites are not in the tree:\n{_all(missing)}"


def test_declared_license_has_its_text() -> None:
    """The Space's front matter says MIT: LICENSE holds the MIT text, and pyproject says the same."""
    front_matter = (ROOT / "README.md").read_text(encoding="utf-8").split("\n---\n", 1)[0]
    declared = re.search(r"^license:\s*(\S+)$", front_matter, re.M)
    assert declared is not None and declared.group(1) == "mit"
    license_file = ROOT / "LICENSE"
    assert license_file.is_file(), "the README's front matter declares `license: mit`; LICENSE is missing"
    assert license_file.read_text(encoding="utf-8").startswith("MIT License\n")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert pyproject.get("license", "MIT") == "MIT"
