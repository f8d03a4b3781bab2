"""The server's WebSocket transport: per-connection sessions, admission, outboxes and the five routes."""
