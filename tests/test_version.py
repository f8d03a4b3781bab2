"""core/version.py: the version is pyproject.toml's, read from the package metadata or, not installed, the file."""

from __future__ import annotations

import importlib.metadata
import tomllib

import pytest

from core import version
from testbed.harness import ROOT

PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _not_installed(name: str) -> str:
    raise importlib.metadata.PackageNotFoundError(name)


def test_the_version_is_the_projects():
    assert version.VERSION == version.read_version() == PROJECT_VERSION


def test_a_checkout_that_was_never_installed_reads_pyproject(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", _not_installed)
    assert version.read_version() == PROJECT_VERSION


def test_no_metadata_and_no_pyproject_is_an_error_that_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.metadata, "version", _not_installed)
    monkeypatch.setattr(version, "PYPROJECT", tmp_path / "pyproject.toml")
    with pytest.raises(RuntimeError, match="pip install -e ."):
        version.read_version()
