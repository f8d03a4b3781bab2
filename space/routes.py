"""Routes the Space adds next to the API: the /live page, static files and /asyncapi.json."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

__all__ = ["build_space_router"]


def build_space_router(runtime: Any) -> APIRouter:
    """Return the router of the Space's own pages (registered before Gradio's mount at `/`)."""
    return APIRouter()
