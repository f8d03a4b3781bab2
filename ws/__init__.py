"""The WebSocket API: message models, per-connection sessions, the five routes and a Python client."""
