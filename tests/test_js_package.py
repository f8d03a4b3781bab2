"""clients/js/: the npm package of the JS client, and the app serving that same file."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from space.routes import JS_CLIENT, STATIC_DIR, build_space_router
from testbed.harness import ROOT
from tests.npm import PACKAGE, npm_pack, unpack

MANIFEST = json.loads((PACKAGE / "package.json").read_text(encoding="utf-8"))
SHIPPED = {"package.json", "hub-client.js", "hub-client.d.ts", "messages.d.ts", "README.md", "LICENSE"}


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
    app.include_router(build_space_router(("BTC",)))
    served = TestClient(app).get("/space/static/hub-client.js")
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/javascript")
    assert served.content == (PACKAGE / "hub-client.js").read_bytes() and JS_CLIENT.parent == PACKAGE
    assert not (STATIC_DIR / "hub-client.js").exists(), "a second copy of the client in space/static"


def test_dry_run_lists_the_module_types_readme_and_license(tmp_path: Path) -> None:
    report = npm_pack(tmp_path, "--dry-run")
    assert {f["path"] for f in report["files"]} == SHIPPED
    assert report["filename"] == f"{MANIFEST['name']}-{MANIFEST['version']}.tgz"


def test_tarball_holds_the_files_as_committed(tmp_path: Path) -> None:
    report = npm_pack(tmp_path)
    unpacked = unpack(tmp_path / report["filename"], tmp_path / "unpacked")
    assert {p.name for p in unpacked.iterdir()} == SHIPPED
    for name in SHIPPED - {"package.json"}:  # npm may normalise the manifest
        assert (unpacked / name).read_bytes() == (PACKAGE / name).read_bytes(), name


def test_image_ships_the_served_client() -> None:
    """The app serves clients/js/hub-client.js, so the Docker image must copy clients/ too."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    copies_all = [line for line in dockerfile.splitlines() if line.startswith("COPY ") and line.endswith(" . .")]
    assert copies_all, "the Dockerfile no longer copies the whole tree"
    assert not [p for p in ignored if p.strip("/*") in ("clients", "clients/js", "clients/js/hub-client.js")]
