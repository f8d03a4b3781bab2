"""clients/js/: the npm package of the JS client, and the app serving that same file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from space.routes import JS_CLIENT, STATIC_DIR, build_space_router
from tests.harness import ROOT

PACKAGE = ROOT / "clients" / "js"
MANIFEST = json.loads((PACKAGE / "package.json").read_text(encoding="utf-8"))
SHIPPED = {"package.json", "hub-client.js", "hub-client.d.ts", "messages.d.ts", "README.md", "LICENSE"}
# Quiet, offline npm: packing a package without dependencies needs no registry.
NPM_ENV = {"npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false",
           "npm_config_offline": "true"}


def npm_pack(destination: Path, *extra: str) -> list[dict[str, Any]]:
    """Run `npm pack --json` in clients/js (skip without npm); return its report."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("no `npm` on PATH: apt-get install npm (or install Node.js) to pack the JS client")
    env = {**os.environ, **NPM_ENV, "npm_config_cache": str(destination / ".npm-cache")}
    result = subprocess.run([npm, "pack", "--json", "--pack-destination", str(destination), *extra],
                            cwd=PACKAGE, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    report: list[dict[str, Any]] = json.loads(result.stdout)
    return report


def test_package_version_is_the_app_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert MANIFEST["version"] == project["version"]
    assert MANIFEST["name"] == f"{project['name']}-client"


def test_package_is_an_es_module_without_dependencies() -> None:
    assert MANIFEST["type"] == "module" and MANIFEST["license"] == "MIT"
    assert MANIFEST["exports"]["."] == {"types": "./hub-client.d.ts", "default": "./hub-client.js"}
    assert not {"dependencies", "devDependencies", "peerDependencies", "scripts"} & set(MANIFEST)
    assert set(MANIFEST["files"]) | {"package.json"} == SHIPPED


def test_package_license_is_the_repository_license() -> None:
    assert (PACKAGE / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()


def test_app_serves_the_package_module_at_the_old_url() -> None:
    app = FastAPI()
    app.include_router(build_space_router(SimpleNamespace(settings=SimpleNamespace(symbols=("BTC",)))))
    served = TestClient(app).get("/space/static/hub-client.js")
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/javascript")
    assert served.content == (PACKAGE / "hub-client.js").read_bytes() and JS_CLIENT.parent == PACKAGE
    assert not (STATIC_DIR / "hub-client.js").exists(), "a second copy of the client in space/static"


def test_dry_run_lists_the_module_types_readme_and_license(tmp_path: Path) -> None:
    (report,) = npm_pack(tmp_path, "--dry-run")
    assert {f["path"] for f in report["files"]} == SHIPPED
    assert report["filename"] == f"{MANIFEST['name']}-{MANIFEST['version']}.tgz"


def test_tarball_holds_the_files_as_committed(tmp_path: Path) -> None:
    (report,) = npm_pack(tmp_path)
    with tarfile.open(tmp_path / report["filename"]) as tarball:
        names = {name.removeprefix("package/") for name in tarball.getnames()}
        packed = tarball.extractfile("package/hub-client.js")
        assert packed is not None and packed.read() == (PACKAGE / "hub-client.js").read_bytes()
    assert names == SHIPPED
