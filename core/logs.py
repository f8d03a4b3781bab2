"""Logging to stdout and to LOG_FILE (default logs/server.log, as the troubleshooting guide expects)."""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
from pathlib import Path

__all__ = ["RedactSecrets", "configure_logging", "redact_secrets"]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload)


_SECRET = re.compile(r"((?:token|api_key|key)=)[^&\s\"']+", re.IGNORECASE)
# Headers that carry credentials, as uvicorn/websockets log them at DEBUG ("< authorization: Bearer x")
# or as a repr of header pairs ("('authorization', 'Bearer x')"). Every Sec-WebSocket-Protocol value is
# masked, not only `token.` ones: the app accepts any offered subprotocol as a token.
_SECRET_HEADER = re.compile(
    r"((?:proxy-)?authorization|sec-websocket-protocol|x-api-key|cookie)(['\"]?\s*[:=,]\s*(?:b?['\"])?)[^'\"\r\n]+",
    re.IGNORECASE,
)


def redact_secrets(text: str) -> str:
    """Return `text` with token query values and credential headers masked."""
    if "=" in text:
        text = _SECRET.sub(r"\1***", text)
    return _SECRET_HEADER.sub(r"\1\2***", text)


class RedactSecrets(logging.Filter):
    """Masks tokens at every level: query values (uvicorn logs paths with their query strings) and
    credential headers (the websockets protocol logs every handshake header at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(level: str = "INFO", log_file: str | None = "logs/server.log", as_json: bool = False) -> None:
    """Send our and uvicorn's logs to stdout and a rotating file; idempotent."""
    formatter: logging.Formatter = (
        _JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        if getattr(handler, "_hub", False):
            root.removeHandler(handler)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=3))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactSecrets())
        handler._hub = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
