"""The repository deploys as a HuggingFace Space and as a Docker image, as committed."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from inference.catalog import LEXICON_MODEL_ID
from inference.fetch import default_fetch_ids, preload_lines
from inference.lock import LockEntry, read_lock
from testbed.harness import ROOT


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


def test_space_preloads_only_the_files_the_default_models_load():
    entries = [str(line).split() for line in _front_matter().get("preload_from_hub") or ()]
    expected = [line.split() for line in preload_lines(default_fetch_ids("cpu"), read_lock())]
    assert entries == expected
    assert all(len(entry) == 3 for entry in entries)  # never a whole repository, never whatever main is


def test_preload_line_of_a_locked_model_names_its_locked_files_and_commit():
    files = {"model.safetensors": "1" * 64, "config.json": "2" * 64}
    lock = {"ProsusAI/finbert": LockEntry("c0ffee" * 6 + "abcd", files)}
    line = preload_lines(["ProsusAI/finbert", LEXICON_MODEL_ID], lock)
    assert line == [f"ProsusAI/finbert config.json,model.safetensors {'c0ffee' * 6}abcd"]


def test_preload_line_of_an_unlocked_hub_model_is_refused():
    with pytest.raises(ValueError, match="unpinned"):
        preload_lines(["ProsusAI/finbert"], {})


def test_readme_dockerfile_and_lock_agree_on_pinning():
    readme, dockerfile = (ROOT / "README.md").read_text(), (ROOT / "Dockerfile").read_text()
    if not read_lock():  # nothing is locked: nothing may claim a locked commit
        assert "unpinned" in readme and "unpinned" in dockerfile
        assert "at their locked commits" not in readme + dockerfile
    else:
        assert "unpinned" not in dockerfile


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


def test_dockerfile_sets_ownership_as_it_copies():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "chown -R" not in dockerfile  # a recursive chown layer stores every file, models included, again
    assert re.search(r"^COPY --chown=hub \. \.$", dockerfile, re.M)
    # The model fetch runs as `hub`, so its files land owned by the user that serves them.
    assert dockerfile.index("USER hub") < dockerfile.index("python -m inference.fetch")


def test_dockerignore_leaves_local_state_out_of_the_build_context():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    expected = {".git", ".venv", "venv", "**/__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "data",
                "logs", "*.db"}
    assert expected <= ignored
