"""The Gradio Space UI and the static JavaScript client."""

from space.ui import build_ui

__all__ = ["build_ui"]
