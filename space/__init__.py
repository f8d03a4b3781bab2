"""The Gradio Space UI, its pages and the static JavaScript client."""
