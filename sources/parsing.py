"""Helpers shared by the pure parsers: JSON loading and strict number checks.

The rule everywhere: a body that is not the documented shape raises `UpstreamGarbage`; one bad
item inside a good body is skipped and its reason appended to `rejects`; a body with items but
not one usable record raises `UpstreamGarbage` too (so the fault counts against health).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from core.clock import parse_utc

from .errors import UpstreamGarbage

__all__ = [
    "PARSE_OFF_LOOP_BYTES",
    "ItemRejected",
    "collect_items",
    "collect_records",
    "load_json",
    "load_json_list",
    "load_json_object",
    "optional_change",
    "optional_nonnegative",
    "optional_text",
    "parse_epoch",
    "parse_off_loop",
    "parse_timestamp",
    "positive_number",
    "require_http_url",
    "require_list",
    "require_mapping",
    "require_object",
    "require_records",
    "require_text",
]

ItemT = TypeVar("ItemT")
RecordT = TypeVar("RecordT")
ParsedT = TypeVar("ParsedT")
P = ParamSpec("P")

# Bodies at least this large are parsed in a worker thread: `json.loads` and the checks after it
# hold the event loop for tens of milliseconds per MB (CoinPaprika's tickers run to 16 MB), during
# which no socket is served. Below it, a thread hand-off would cost more than the parse.
PARSE_OFF_LOOP_BYTES = 256 * 1024
# One thread: providers' polls are minutes apart, and a second big parse waits rather than taking a
# second core from the sockets. Its own pool, so a parse never queues behind news commits.
_parse_pool: ThreadPoolExecutor | None = None
_parse_pool_lock = threading.Lock()

# How a rejected item is named in `rejects`: the value of this key on an object item ("?" when
# the item is not an object or lacks it), or a function of the item.
Label = str | Callable[[Any], object]

# A percent change below -100 % is impossible; above this it is a data error, not a pump.
MAX_ABS_CHANGE_PCT = 100_000.0


async def parse_off_loop(
    parse: Callable[Concatenate[bytes, P], ParsedT], raw: bytes, /, *args: P.args, **kwargs: P.kwargs
) -> ParsedT:
    """Return `parse(raw, ...)`, run here for a small body and in the parse thread for a large one."""
    if len(raw) < PARSE_OFF_LOOP_BYTES:
        return parse(raw, *args, **kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_parse_executor(), functools.partial(parse, raw, *args, **kwargs))


def _parse_executor() -> ThreadPoolExecutor:
    global _parse_pool
    with _parse_pool_lock:
        if _parse_pool is None:
            _parse_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="provider-parse")
        return _parse_pool


class ItemRejected(ValueError):
    """One item is unusable; the parser skips it and records the reason."""


def load_json(raw: bytes, provider: str) -> Any:
    """Decode a JSON body; raise `UpstreamGarbage` saying what came instead."""
    text = raw.lstrip()[:200].lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        raise UpstreamGarbage(f"{provider}: expected JSON, got an HTML page (error page or captcha?)")
    if not raw.strip():
        raise UpstreamGarbage(f"{provider}: expected JSON, got an empty body")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UpstreamGarbage(f"{provider}: malformed JSON ({exc})") from exc


def _reject_constant(name: str) -> Any:
    # json accepts NaN/Infinity by default; no provider documents them, so treat them as garbage.
    raise ValueError(f"non-standard JSON constant {name}")


def require_list(value: Any, provider: str, what: str) -> list[Any]:
    """Return `value` if it is a list; raise `UpstreamGarbage` otherwise."""
    if not isinstance(value, list):
        raise UpstreamGarbage(f"{provider}: expected {what} as a JSON array, got {type(value).__name__}")
    return value


def require_mapping(value: Any, provider: str, what: str) -> Mapping[str, Any]:
    """Return `value` if it is an object; raise `UpstreamGarbage` otherwise."""
    if not isinstance(value, Mapping):
        raise UpstreamGarbage(f"{provider}: expected {what} as a JSON object, got {type(value).__name__}")
    return value


def load_json_list(raw: bytes, provider: str, what: str) -> list[Any]:
    """Decode a body that must be a JSON array (`what` names it in the error)."""
    return require_list(load_json(raw, provider), provider, what)


def load_json_object(raw: bytes, provider: str, what: str) -> Mapping[str, Any]:
    """Decode a body that must be a JSON object (`what` names it in the error)."""
    return require_mapping(load_json(raw, provider), provider, what)


def require_object(item: Any, what: str = "item") -> dict[str, Any]:
    """Return one item of a body if it is an object; raise `ItemRejected` otherwise."""
    if not isinstance(item, dict):
        raise ItemRejected(f"{what} is a {type(item).__name__}, expected an object")
    return item


def require_records(records: Sequence[Any], total: int, rejects: Sequence[str], provider: str) -> None:
    """Raise `UpstreamGarbage` when a response produced no usable record."""
    if records:
        return
    if total == 0:
        raise UpstreamGarbage(f"{provider}: expected at least one item, got an empty list")
    sample = "; ".join(rejects[:3]) or "none matched the requested symbols"
    raise UpstreamGarbage(f"{provider}: 0 of {total} items usable ({sample})")


def collect_items(
    items: Iterable[ItemT], convert: Callable[[ItemT], RecordT | None], *, label: Label, rejects: list[str]
) -> list[RecordT]:
    """Convert each item; skip None results; append `"<label>: <reason>"` for `ItemRejected`."""
    records: list[RecordT] = []
    for item in items:
        try:
            record = convert(item)
        except ItemRejected as exc:
            rejects.append(f"{_label(item, label)}: {exc}")
            continue
        if record is not None:
            records.append(record)
    return records


def collect_records(
    items: Collection[ItemT],
    convert: Callable[[ItemT], RecordT | None],
    *,
    name: str,
    label: Label,
    rejects: list[str] | None = None,
    noun: str | None = None,
) -> list[RecordT]:
    """`collect_items`, then raise `UpstreamGarbage` when not one record came out.

    Without `noun` the check is `require_records`; with it, the message is
    `"<name>: 0 of <n> <noun> usable (<first rejects>)"`, an empty list included.
    """
    rejects = rejects if rejects is not None else []
    records = collect_items(items, convert, label=label, rejects=rejects)
    if noun is None:
        require_records(records, len(items), rejects, name)
    elif not records:
        raise UpstreamGarbage(f"{name}: 0 of {len(items)} {noun} usable ({'; '.join(rejects[:3])})")
    return records


def _label(item: Any, label: Label) -> object:
    if callable(label):
        return label(item)
    return item.get(label, "?") if isinstance(item, dict) else "?"


def _as_float(value: Any, field: str) -> float:
    if isinstance(value, bool) or value is None:
        raise ItemRejected(f"{field} is {value!r}, expected a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ItemRejected(f"{field} is {value!r}, expected a number") from None
    else:
        raise ItemRejected(f"{field} is a {type(value).__name__}, expected a number")
    if not math.isfinite(number):
        raise ItemRejected(f"{field} is {value!r}, expected a finite number")
    return number


def positive_number(value: Any, field: str) -> float:
    """Return a finite number > 0 (numbers or numeric strings); raise `ItemRejected` otherwise."""
    number = _as_float(value, field)
    if number <= 0:
        raise ItemRejected(f"{field} is {number!r}, expected > 0")
    return number


def optional_nonnegative(value: Any, field: str) -> float | None:
    """Return None for null/absent, a finite number >= 0 otherwise; raise `ItemRejected` if bad."""
    return _optional_in_range(value, field, 0.0, math.inf, "expected >= 0")


def optional_change(value: Any, field: str) -> float | None:
    """Return a percent change (None if absent); reject values a real market cannot produce."""
    expected = f"expected a percent change in [-100, {MAX_ABS_CHANGE_PCT:g}]"
    return _optional_in_range(value, field, -100.0, MAX_ABS_CHANGE_PCT, expected)


def _optional_in_range(value: Any, field: str, low: float, high: float, expected: str) -> float | None:
    if value is None or value == "":
        return None
    number = _as_float(value, field)
    if not low <= number <= high:
        raise ItemRejected(f"{field} is {number!r}, {expected}")
    return number


def optional_text(value: Any) -> str | None:
    """Return `value` if it is a non-empty string, else None (for display-only fields)."""
    return value if isinstance(value, str) and value else None


def require_text(value: Any, field: str) -> str:
    """Return a non-empty stripped string; raise `ItemRejected` otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ItemRejected(f"{field} is {value!r}, expected non-empty text")
    return value.strip()


def require_http_url(value: Any, field: str) -> str:
    """Return a non-empty http(s) URL; raise `ItemRejected` otherwise."""
    url = require_text(value, field)
    if not url.startswith(("http://", "https://")):
        raise ItemRejected(f"{field} is {url!r}, expected an http(s) URL")
    return url


def parse_timestamp(value: Any, field: str) -> datetime:
    """Parse an ISO 8601 string into aware UTC; raise `ItemRejected` if it is not one."""
    if not isinstance(value, str):
        raise ItemRejected(f"{field} is {value!r}, expected an ISO 8601 timestamp")
    try:
        return parse_utc(value.strip())
    except ValueError:
        raise ItemRejected(f"{field} is {value!r}, expected an ISO 8601 timestamp") from None


def parse_epoch(value: Any, field: str, *, millis: bool = False) -> datetime:
    """Parse Unix seconds (or milliseconds) given as number or string into aware UTC."""
    number = _as_float(value, field)
    if millis:
        number /= 1000.0
    # Before 2009 (no crypto markets) or after 2100: a unit mix-up, not a real time.
    if not 1_230_000_000 <= number <= 4_102_444_800:
        raise ItemRejected(f"{field} is {value!r}, not a plausible Unix time")
    return datetime.fromtimestamp(number, UTC)
