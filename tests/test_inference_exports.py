"""The package's public entry stays complete."""

from __future__ import annotations

import inference


def test_exports_all_names_exist():
    assert all(hasattr(inference, name) for name in inference.__all__)


def test_exports_every_public_member_listed():
    public = {name for name in vars(inference) if not name.startswith("_")}
    # Submodules and `from __future__ import annotations` are not API.
    modules = {
        name for name, value in vars(inference).items() if type(value).__name__ in ("module", "_Feature")
    }
    assert public - modules == set(inference.__all__)
