"""Pack clients/js with the machine's npm for the package tests; skip them where npm is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from testbed.harness import ROOT

__all__ = ["PACKAGE", "npm_pack", "unpack"]

PACKAGE = ROOT / "clients" / "js"
# Quiet and offline: packing a package without dependencies needs no registry.
NPM_ENV = {"npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false",
           "npm_config_offline": "true"}


def npm_pack(destination: Path, *extra: str) -> dict[str, Any]:
    """Run `npm pack --json` in clients/js into `destination`; return its report (skip without npm)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("no `npm` on PATH: apt-get install npm (or install Node.js) to pack the JS client")
    env = {**os.environ, **NPM_ENV, "npm_config_cache": str(destination / ".npm-cache")}
    result = subprocess.run([npm, "pack", "--json", "--pack-destination", str(destination), *extra],
                            cwd=PACKAGE, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    (report,) = json.loads(result.stdout)
    return report  # type: ignore[no-any-return]


def unpack(tarball: Path, into: Path) -> Path:
    """Extract an npm tarball under `into`; return its `package/` folder."""
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")
    return into / "package"
