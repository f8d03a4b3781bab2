"""Screens: the Gradio UI at `/`, built from the parts it reads (`space.parts`), and the static /live page."""
