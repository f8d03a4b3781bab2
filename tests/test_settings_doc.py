"""The README's configuration tables are generated from the settings models and kept current."""

from __future__ import annotations

import pytest

from core.config import Settings
from core.settings_base import env_name
from core.settings_doc import BEGIN, END, README, render_tables, rewrite_readme


def test_readme_configuration_tables_match_the_models() -> None:
    text = README.read_text(encoding="utf-8")
    assert rewrite_readme(text) == text, "README.md is stale: run python -m core.settings_doc"


def test_rendered_tables_list_every_variable_once() -> None:
    tables = render_tables()
    assert all(tables.count(f"| `{env_name(name)}` |") == 1 for name in Settings.model_fields)


def test_rendered_rows_take_the_field_description() -> None:
    assert "| `PORT` | `7860` | where `python app.py` listens |" in render_tables()


def test_rewrite_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="settings:begin"):
        rewrite_readme("# no markers\n")


def test_rewrite_replaces_only_between_markers() -> None:
    text = f"before\n{BEGIN}\nstale\n{END}\nafter\n"
    rewritten = rewrite_readme(text)
    assert rewritten.startswith(f"before\n{BEGIN}\n") and rewritten.endswith(f"{END}\nafter\n")
    assert "stale" not in rewritten
