"""The hub's version, read in one place: the installed package's metadata, else the checkout's pyproject.toml.

`pip install -e .` records pyproject.toml's `version` as the metadata of `crypto-market-hub`. The Space
and the Docker image run `python app.py` in a checkout that was never installed, so there the same
field is read from pyproject.toml beside the packages. Neither present (a copied tree without its
pyproject.toml) is an error at import, not a made-up version.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

__all__ = ["DISTRIBUTION", "VERSION", "read_version"]

DISTRIBUTION = "crypto-market-hub"
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def read_version() -> str:
    """Return the hub's version from its package metadata, or from pyproject.toml when not installed."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        with PYPROJECT.open("rb") as file:
            return str(tomllib.load(file)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise RuntimeError(
            f"no version: {DISTRIBUTION} is not installed and {PYPROJECT} has no [project] version; "
            "run `pip install -e .` in the checkout"
        ) from exc


VERSION = read_version()
