"""What `pip install -r requirements.txt` installs: CPU torch on the Space, markers, nothing unused."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from testbed.harness import ROOT

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
INDEX_OPTION = f"--extra-index-url {CPU_INDEX}"

# Runtime requirements that no module of ours imports, each with the reason it is installed.
NOT_IMPORTED = {
    "httptools": "uvicorn's http='auto' imports it by name for HTTP parsing",
    "uvloop": "uvicorn's loop='auto' (SERVER_LOOP=auto) imports it by name",
    "psycopg": "SQLAlchemy loads it for DATABASE_URL=postgresql+psycopg://...",
    "tokenizers": "transformers' fast tokenizers (AutoTokenizer) run on it; pinned beside transformers",
}


def _lines(name: str) -> list[str]:
    return [line.strip() for line in (ROOT / name).read_text().splitlines()]


def _requirements(name: str) -> list[Requirement]:
    return [Requirement(line) for line in _lines(name) if line and not line.startswith(("#", "-"))]


def _options(name: str) -> list[str]:
    return [line for line in _lines(name) if line.startswith("-")]


def test_space_requirements_take_torch_from_the_cpu_index():
    assert _options("requirements.txt") == [INDEX_OPTION]
    torch = next(req for req in _requirements("requirements.txt") if req.name == "torch")
    assert str(torch.specifier) == "==2.13.0"  # matches 2.13.0+cpu too: no local label in the pin
    assert torch.specifier.contains("2.13.0+cpu")


def test_requirements_name_the_line_a_gpu_machine_changes():
    comments = " ".join(line for line in _lines("requirements.txt") if line.startswith("#"))
    assert "GPU machine: delete the --extra-index-url line" in comments
    readme = (ROOT / "README.md").read_text()
    assert INDEX_OPTION in readme and "GPU" in readme


def _wheel(directory: Path, version: str) -> str:
    """Write an empty `torch` wheel of this version; return its file name."""
    name = f"torch-{version}-py3-none-any.whl"
    info = f"torch-{version}.dist-info"
    with zipfile.ZipFile(directory / name, "w") as wheel:
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return name


def _index(root: Path, version: str) -> str:
    """A PEP 503 index in `root` that serves one torch wheel; return its file:// URL."""
    (root / "torch").mkdir(parents=True)
    name = _wheel(root, version)
    href = "../" + name.replace("+", "%2B")
    (root / "torch" / "index.html").write_text(f'<html><body><a href="{href}">{name}</a></body></html>')
    return root.as_uri()


def _resolved_torch(tmp_path: Path, lines: list[str]) -> str:
    """The torch version pip picks for these requirement lines, PyPI standing in as a local index."""
    pypi = _index(tmp_path / "pypi", "2.13.0")  # PyPI's Linux torch: the CUDA build
    cpu = _index(tmp_path / "cpu", "2.13.0+cpu")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(line.replace(CPU_INDEX, cpu) for line in lines) + "\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no machine-wide find-links, mirrors or constraints
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet",
         "--no-cache-dir", "--disable-pip-version-check", "--report", "-", "--index-url", pypi,
         "-r", str(requirements)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [item] = json.loads(done.stdout)["install"]
    return str(item["metadata"]["version"])


def _torch_lines() -> list[str]:
    return [line for line in _lines("requirements.txt") if line.startswith(("--", "torch=="))]


def test_pip_takes_the_cpu_build_with_the_requirements_as_committed(tmp_path):
    assert _resolved_torch(tmp_path, _torch_lines()) == "2.13.0+cpu"


def test_pip_takes_pypis_build_once_the_gpu_line_is_deleted(tmp_path):
    lines = [line for line in _torch_lines() if line != INDEX_OPTION]
    assert _resolved_torch(tmp_path, lines) == "2.13.0"


def test_ci_installs_the_runtime_without_the_unreachable_index(tmp_path):
    script = (ROOT / ".ci" / "run").read_text()
    [grep] = [line for line in script.splitlines() if line.startswith("grep ") and "requirements.txt" in line]
    runtime = tmp_path / "runtime.txt"
    subprocess.run(["bash", "-c", grep], cwd=ROOT, env={**os.environ, "runtime": str(runtime)}, check=True)
    assert '-r "$runtime" -r requirements-dev.txt' in script
    kept = [line.strip() for line in runtime.read_text().splitlines()]
    assert "download.pytorch.org" not in " ".join(line for line in kept if line.startswith("-"))
    assert [line for line in _lines("requirements.txt") if line not in kept] == [INDEX_OPTION]


def test_dev_requirements_leave_the_runtime_and_its_index_to_requirements_txt():
    assert _options("requirements-dev.txt") == ["-e .", "-e ./clients/python"]  # this checkout's own packages
    runtime = {req.name for req in _requirements("requirements.txt")}
    assert runtime.isdisjoint(req.name for req in _requirements("requirements-dev.txt"))


@pytest.mark.parametrize(
    ("name", "platform", "installed"),
    [
        ("uvloop", "linux", True),
        ("uvloop", "darwin", True),
        ("uvloop", "win32", False),  # no Windows build; SERVER_LOOP=auto serves on asyncio there
        ("atheris", "linux", True),
        ("atheris", "darwin", False),  # libFuzzer wheels are Linux-only; the fuzz test skips
        ("atheris", "win32", False),
    ],
)
def test_platform_only_packages_carry_a_marker(name, platform, installed):
    requirements = _requirements("requirements.txt") + _requirements("requirements-dev.txt")
    [req] = [req for req in requirements if req.name == name]
    assert req.marker is not None
    assert req.marker.evaluate({**default_environment(), "sys_platform": platform}) is installed


def test_server_loop_auto_serves_on_asyncio_without_uvloop(monkeypatch):
    from uvicorn.loops.auto import auto_loop_factory

    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    loop = auto_loop_factory()()
    try:
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()


def _runtime_sources() -> list[Path]:
    """app.py, compose.py and the packages they are made of (the import contract's root packages)."""
    packages = ("api", "ws", "space", "desk", "sources", "inference", "training", "core")
    modules = [ROOT / "app.py", ROOT / "compose.py"]
    return [*modules, *(path for package in packages for path in (ROOT / package).rglob("*.py"))]


def _imported_modules() -> set[str]:
    modules = set()
    for path in _runtime_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.partition(".")[0])
    return modules


def _top_level_modules(distribution: str) -> set[str]:
    """The modules an installed distribution provides (`scikit-learn` -> sklearn)."""
    provided = {
        module
        for module, names in importlib.metadata.packages_distributions().items()
        for name in names
        if canonicalize_name(name) == canonicalize_name(distribution)
    }
    return provided or {re.sub(r"[-.]", "_", distribution)}  # not installed here (a marker): its own name


def test_every_runtime_requirement_is_imported_or_named_with_a_reason():
    imported = _imported_modules()
    unused = [
        req.name
        for req in _requirements("requirements.txt")
        if not _top_level_modules(req.name) & imported and canonicalize_name(req.name) not in NOT_IMPORTED
    ]
    assert unused == [], "imported nowhere in app.py or the app's packages: remove, or name it in NOT_IMPORTED"


def test_every_reason_names_a_runtime_requirement_that_is_not_imported():
    required = {canonicalize_name(req.name) for req in _requirements("requirements.txt")}
    assert set(NOT_IMPORTED) <= required
    imported = _imported_modules()
    assert [name for name in NOT_IMPORTED if _top_level_modules(name) & imported] == []
