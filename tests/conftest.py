from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.harness import AppProcess, running_app


@pytest.fixture
def app_server(tmp_path: Path) -> Iterator[AppProcess]:
    """A real app on a free port in demo mode with fast cadences."""
    with running_app(tmp_path) as app:
        yield app
