"""The Python client as users get it: its own package in clients/python/, installable without the server."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import crypto_hub_client.endpoints
import crypto_hub_client.resume
from core import endpoints
from core.protocol import SubscribeRequest
from testbed.harness import ROOT, AppProcess

CLIENT = ROOT / "clients" / "python"
SERVER_PACKAGES = {"api", "ws", "space", "desk", "sources", "inference", "core", "app", "testbed", "bench"}


def test_the_clients_copy_of_the_paths_is_the_servers():
    assert crypto_hub_client.endpoints.STREAM_PATHS == endpoints.STREAM_PATHS
    assert crypto_hub_client.endpoints.MARKET_PATH == endpoints.MARKET_PATH
    assert crypto_hub_client.endpoints.NEWS_PATH == endpoints.NEWS_PATH


def test_the_client_chunks_subscriptions_by_the_servers_bound():
    [bound] = [m.max_length for m in SubscribeRequest.model_fields["symbols"].metadata if hasattr(m, "max_length")]
    assert crypto_hub_client.resume.MAX_SYMBOLS_PER_REQUEST == bound


def test_the_client_imports_no_server_code():
    imported = set()
    for path in CLIENT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.partition(".")[0])
    assert imported & SERVER_PACKAGES == set()


def test_ws_is_only_the_server_transport():
    assert importlib.util.find_spec("ws.__main__") is None  # `python -m ws` runs no client
    assert importlib.util.find_spec("ws.client") is None


def test_the_client_is_installed_from_this_checkout():
    [script] = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "crypto-hub-client"]
    assert script.value == "crypto_hub_client.__main__:main"
    assert Path(crypto_hub_client.endpoints.__file__).resolve().is_relative_to(CLIENT)


def _readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    [example] = [block for block in blocks if "from crypto_hub_client import" in block]
    return example


def _wheelhouse(directory: Path) -> Path:
    """Build the client's wheel and fetch websockets' into `directory`, for an install with --no-index.

    The client's wheel is built from a copy of clients/python/ (setuptools writes build/ and egg-info
    into the tree it builds) with this environment's setuptools (`--no-build-isolation`) where it is
    new enough, so the build needs no network; else pip builds it in isolation from the index.
    websockets is the version installed here, which pip takes from its cache or the configured index
    (PyPI in CI): the only download, and none when the cache holds it. The install into the fresh
    environment then reads this directory alone, so it cannot pick up anything else.
    """
    try:
        from setuptools import __version__ as setuptools_version
    except ImportError:
        setuptools_version = "0"
    offline_build = ["--no-build-isolation"] if int(setuptools_version.split(".")[0]) >= 77 else []
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    unbuilt = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    source = shutil.copytree(CLIENT, directory.parent / "client-source", ignore=unbuilt)
    subprocess.run([*pip, "wheel", "--no-deps", *offline_build, "-w", str(directory), str(source)],
                   check=True, timeout=300)
    websockets = f"websockets=={importlib.metadata.version('websockets')}"
    subprocess.run([*pip, "download", "--no-deps", "--only-binary", ":all:", "-d", str(directory), websockets],
                   check=True, timeout=300)
    return directory


@pytest.mark.slow
def test_readme_example_runs_from_a_fresh_virtual_environment(tmp_path: Path, app_server: AppProcess):
    """`pip install ./clients/python` in a new venv, then the README's example, from outside the checkout."""
    wheels = _wheelhouse(tmp_path / "wheels")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index",
                    "--find-links", str(wheels), "crypto-hub-client"], check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "example.py").write_text(_readme_example(), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env["HUB_URL"] = f"ws://127.0.0.1:{app_server.port}"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)

    found = "import importlib.util as u; print([m for m in ('core', 'ws', 'app') if u.find_spec(m)])"
    server = run(str(python), "-c", found)
    assert server.stdout.strip() == "[]", server.stderr  # nothing of the server can be imported there

    done = run(str(python), "example.py")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 5
    for line in lines:
        symbol, price, _, seq = line.split()
        assert symbol in {"BTC", "ETH"} and float(price) > 0 and int(seq) > 0

    cli = run(str(venv / "bin" / "crypto-hub-client"), "market", "--symbols", "BTC", "--count", "2")
    assert cli.returncode == 0, cli.stderr
    assert '"type":"price_update"' in cli.stdout.splitlines()[-1]
