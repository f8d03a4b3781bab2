"""Logging to stdout and to LOG_FILE (default logs/server.log, as the troubleshooting guide expects)."""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.log_context import current_served

__all__ = ["JsonFormatter", "RedactSecrets", "TextFormatter", "configure_logging", "redact_secrets", "utc_timestamp"]

# What every LogRecord has; anything else on a record came in `extra=` and is a field of its JSON line.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_NOT_FIELDS = frozenset({"color_message"})  # uvicorn's copy of the message with terminal colours


def _context_fields(record: logging.LogRecord) -> dict[str, str]:
    """Return the request or connection a record was logged for: its own `extra=`, else the context's."""
    if getattr(record, "path", None) is not None:
        return {}  # passed in `extra=` (a session logging from outside its own context): a field already
    served = current_served()
    return served.fields() if served is not None else {}


def utc_timestamp(created: float) -> str:
    """Return `created` as ISO-8601 UTC with milliseconds: `2026-12-07T11:02:03.123Z`."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, the request or connection served
    (`request_id` or `connection_id`, `path`, `client`), fields passed in `extra=`, and a traceback in `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(_context_fields(record))
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES and name not in _NOT_FIELDS and not name.startswith("_"):
                payload[name] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`, then the request or connection served: `[connection=ID /ws/news 1.2.3.4]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _context_fields(record) or {
            key: value for key in ("connection_id", "request_id", "path", "client")
            if isinstance(value := getattr(record, key, None), str)
        }
        if not fields:
            return line
        first, _, rest = line.partition("\n")  # a traceback follows the first line
        context = " ".join(f"{key.removesuffix('_id')}={value}" if key.endswith("_id") else value
                           for key, value in fields.items())
        return f"{first} [{context}]" + (f"\n{rest}" if rest else "")


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
    formatter: logging.Formatter = JsonFormatter() if as_json else TextFormatter()
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
