from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.harness import AppProcess, running_app
from testbed.services import PostgresServer, postgres_server
from tests.browser import launch_browser


@pytest.fixture
def app_server(tmp_path: Path) -> Iterator[AppProcess]:
    """A real app on a free port in demo mode with fast cadences."""
    with running_app(tmp_path) as app:
        yield app


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server (in a fresh temp dir) shared by the tests of one module."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for one test module (skipped where none is installed)."""
    with launch_browser() as chromium:
        yield chromium


@pytest.fixture
def torch_settings() -> Iterator[None]:
    """Training sets torch's process-wide threads and determinism: put them back after the test."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    torch.set_flush_denormal(False)  # torch's default
