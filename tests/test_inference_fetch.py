"""`python -m inference.fetch` takes what a start loads by default, and only that."""

from __future__ import annotations

from inference.catalog import CATALOG, EMBEDDED_MODEL_ID, LEXICON_MODEL_ID
from inference.fetch import default_fetch_ids, fetch_models


def test_default_fetch_is_the_embedded_model_on_cpu_and_the_catalog_on_cuda():
    assert default_fetch_ids("cpu") == [EMBEDDED_MODEL_ID, LEXICON_MODEL_ID]
    assert set(default_fetch_ids("cuda")) == set(CATALOG)


def test_fetching_the_embedded_model_finds_its_checked_encoder(tmp_path):
    report = fetch_models([EMBEDDED_MODEL_ID, LEXICON_MODEL_ID], lock_path=tmp_path / "none.json", cache_dir=tmp_path)
    assert list(report) == [EMBEDDED_MODEL_ID]  # the lexicon has no files
    assert report[EMBEDDED_MODEL_ID]["ok"] is True and report[EMBEDDED_MODEL_ID]["pinned"] is True
