"""`sources.__all__` names exactly the package's public objects."""

from __future__ import annotations

import types

import sources


def test_sources_all_is_complete_and_exact() -> None:
    public = {
        name
        for name, value in vars(sources).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert sorted(sources.__all__) == sorted(public)


def test_sources_all_entries_resolve() -> None:
    missing = [name for name in sources.__all__ if not hasattr(sources, name)]
    assert missing == []
