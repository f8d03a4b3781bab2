"""The package's public entry stays complete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import inference

ROOT = Path(__file__).resolve().parent.parent


def test_exports_all_names_exist():
    assert all(hasattr(inference, name) for name in inference.__all__)


def test_exports_every_public_member_listed():
    public = {name for name in vars(inference) if not name.startswith("_")}
    # Submodules and `from __future__ import annotations` are not API.
    modules = {
        name for name, value in vars(inference).items() if type(value).__name__ in ("module", "_Feature")
    }
    assert public - modules == set(inference.__all__)


def test_importing_the_service_loads_no_web_framework():
    """The HTTP routes live in api/: the inference package alone never pulls in a web framework."""
    code = ("import sys; from inference import InferenceService; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette', 'gradio', 'uvicorn'}))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
