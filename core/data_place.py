"""Where the data lives, and whether it outlives a restart: the Space's persistent storage or not.

A Hugging Face Space's own disk is wiped whenever the Space restarts; only the persistent storage
upgrade survives, mounted at `/data` ("If you opt-in for a persistent storage upgrade, you can use
the `/data` directory to store data", hub-docs `spaces-sdks-docker.md`). So `DATA_DIR` defaults to
that folder when it exists and this process can write to it, and `system_status.database.storage`
says when the data will not survive a restart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["LOCAL_DATA_DIR", "SPACE_STORAGE_DIR", "DataPlace", "StorageKind", "default_data_dir", "locate_data"]

SPACE_STORAGE_DIR = Path("/data")
LOCAL_DATA_DIR = Path("data")

StorageKind = Literal["persistent", "ephemeral", "local", "external"]


@dataclass(frozen=True)
class DataPlace:
    """Where `DATA_DIR` is and whether what is written there survives a restart of the app."""

    path: Path
    storage: StorageKind
    reason: str


def is_usable_dir(path: Path) -> bool:
    """Return whether `path` is a folder this process can create files in."""
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def default_data_dir(space_storage_dir: Path = SPACE_STORAGE_DIR) -> Path:
    """Return the Space's persistent storage when it is there and writable, else `./data`."""
    return space_storage_dir if is_usable_dir(space_storage_dir) else LOCAL_DATA_DIR


def locate_data(
    data_dir: Path, *, space_id: str | None, database_url_set: bool, space_storage_dir: Path = SPACE_STORAGE_DIR,
) -> DataPlace:
    """Describe `data_dir`: persistent (the Space's storage), ephemeral (a Space's own disk), local or external."""
    if database_url_set:
        return DataPlace(data_dir, "external", "DATABASE_URL: the database server keeps the data; "
                                               "DATA_DIR holds only caches")
    if is_usable_dir(space_storage_dir) and _is_within(data_dir, space_storage_dir):
        return DataPlace(data_dir, "persistent", f"in the Space's persistent storage ({space_storage_dir})")
    if space_id:
        return DataPlace(data_dir, "ephemeral", (
            f"{data_dir} is on the Space's own disk, which is wiped when the Space restarts: news, prices "
            f"and model statistics are lost. Enable the Space's persistent storage (mounted at "
            f"{space_storage_dir}, where DATA_DIR then defaults) or set DATABASE_URL"))
    return DataPlace(data_dir, "local", "a folder on this machine's disk (not a Hugging Face Space)")


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True
