"""The repository deploys as a HuggingFace Space and as a Docker image, as committed."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from inference.catalog import CATALOG
from inference.lock import read_lock
from tests.harness import ROOT


def _front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with the Space's YAML front matter"
    return yaml.safe_load(match.group(1))


def _pins(name: str = "requirements.txt") -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(3)
    return pins


def test_space_python_version_satisfies_requires_python():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    version = str(_front_matter()["python_version"])
    assert Version(version) in SpecifierSet(requires), (version, requires)


def test_space_sdk_version_is_the_pinned_gradio():
    front = _front_matter()
    assert front["sdk"] == "gradio" and str(front["sdk_version"]) == _pins()["gradio"]


def test_space_app_file_exists():
    assert (ROOT / _front_matter()["app_file"]).is_file()


def test_space_preloads_every_catalog_hub_model_at_its_locked_commit():
    entries = [str(line).split() for line in _front_matter()["preload_from_hub"]]
    hub_models = [spec.id for spec in CATALOG.values() if spec.kind == "transformers"]
    assert [entry[0] for entry in entries] == hub_models
    lock = read_lock()
    for entry in entries:
        if entry[0] in lock:  # locked: the Space must fetch that commit, not whatever main is
            assert entry[-1] == lock[entry[0]].revision, entry


def _repository_files() -> list[str]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        return [name for name in listed.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # a checkout without git: walk the tree
        skipped = {".git", "__pycache__", "data", "logs", ".pytest_cache", ".ruff_cache", ".venv"}
        return [
            path.relative_to(ROOT).as_posix()
            for path in ROOT.rglob("*")
            if path.is_file() and not skipped & set(path.relative_to(ROOT).parts)
        ]


def _lfs_patterns() -> list[str]:
    lines = (ROOT / ".gitattributes").read_text().splitlines()
    return [line.split()[0] for line in lines if "filter=lfs" in line.split()[1:]]


def test_every_committed_binary_file_is_stored_with_lfs():
    binaries = [
        name
        for name in _repository_files()
        if (ROOT / name).is_file() and b"\0" in (ROOT / name).read_bytes()[:8192]
    ]
    assert binaries, "expected at least the embedded head's weights"
    patterns = _lfs_patterns()
    # Patterns without a slash match the file name at any depth, as in .gitattributes.
    not_lfs = [name for name in binaries if not any(fnmatch.fnmatch(Path(name).name, p) for p in patterns)]
    assert not_lfs == []


def test_documented_backends_install_from_runtime_requirements():
    pins = _pins()
    readme = (ROOT / "README.md").read_text()
    assert "postgresql+psycopg://" in readme and "psycopg" in pins  # DATABASE_URL
    assert "REDIS_URL" in readme and "redis" in pins
    assert "psycopg" not in _pins("requirements-dev.txt")  # not only a test dependency


def test_dockerfile_installs_cpu_torch_unless_told_otherwise():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", dockerfile, re.M)
    assert "download.pytorch.org/whl/${TORCH_VARIANT}" in dockerfile
    install = dockerfile.index("--index-url")
    assert install < dockerfile.index("-r requirements.txt")  # torch comes from that index, not PyPI's CUDA build
    assert "python -m inference.fetch" in dockerfile
    assert "TORCH_VARIANT" in (ROOT / "README.md").read_text()


def test_dockerfile_leaves_data_dir_to_the_persistent_storage_default():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"\bDATA_DIR=", dockerfile)  # a fixed DATA_DIR would hide the Space's /data
