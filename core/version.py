"""The app's version, written once: `system_status`, the OpenAPI and the AsyncAPI documents carry it."""

from __future__ import annotations

__all__ = ["VERSION"]

VERSION = "0.1.0"
