"""Where the data lives and whether it survives a restart: `system_status.database.storage`."""

from __future__ import annotations

from pathlib import Path

import httpx

from core.data_place import locate_data
from testbed.harness import running_app


def test_data_in_the_space_storage_is_persistent(tmp_path: Path) -> None:
    place = locate_data(tmp_path / "hub", space_id="owner/hub", database_url_set=False, space_storage_dir=tmp_path)
    assert place.storage == "persistent"


def test_data_on_a_space_without_persistent_storage_is_ephemeral(tmp_path: Path) -> None:
    place = locate_data(Path("data"), space_id="owner/hub", database_url_set=False,
                        space_storage_dir=tmp_path / "absent")
    assert place.storage == "ephemeral" and "wiped when the Space restarts" in place.reason


def test_data_off_a_space_is_local_and_with_a_database_url_external(tmp_path: Path) -> None:
    def storage(database_url_set: bool) -> str:
        return locate_data(Path("data"), space_id=None, database_url_set=database_url_set,
                           space_storage_dir=tmp_path / "absent").storage

    assert (storage(False), storage(True)) == ("local", "external")


def test_status_says_ephemeral_on_a_space_without_persistent_storage(tmp_path: Path) -> None:
    with running_app(tmp_path, SPACE_ID="owner/hub", SPACE_STORAGE_DIR=str(tmp_path / "absent")) as app:
        database = httpx.get(f"{app.http}/api/status", timeout=10).json()["database"]
    assert (database["storage"], database["data_dir"]) == ("ephemeral", str(tmp_path))
    assert "persistent storage" in database["storage_reason"]


def test_status_says_persistent_when_data_lives_in_the_space_storage(tmp_path: Path) -> None:
    with running_app(tmp_path, SPACE_ID="owner/hub", SPACE_STORAGE_DIR=str(tmp_path)) as app:
        database = httpx.get(f"{app.http}/api/status", timeout=10).json()["database"]
    assert database["storage"] == "persistent"
