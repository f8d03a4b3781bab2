"""Kinds of setting value beyond numbers and words: URLs, hosts, paths, names, start prices.

Each kind is an `Annotated` type whose check runs while the settings are read, so a bad value stops the
start in the one error line (`NAME must be <what is allowed>, got <value>`), not later in a traceback.
Checks look at the value and, for paths, at what already exists there; none creates anything.
"""

from __future__ import annotations

import ipaddress
import math
import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, SecretStr
from pydantic_settings import NoDecode

from .settings_base import Csv, split_csv

__all__ = [
    "DatabaseUrl",
    "ExistingFile",
    "ExistingFolder",
    "FileName",
    "FilePath",
    "Folder",
    "Host",
    "HttpUrl",
    "HttpUrls",
    "Names",
    "Origins",
    "PlainText",
    "RedisUrl",
    "SpaceId",
    "StartPrices",
    "Subreddits",
    "WsUrl",
]

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SUBREDDIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}$")
_SPACE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        labels = value.rstrip(".").split(".")
        return all(_HOST_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _check_host(value: str) -> str:
    if not _is_host(value):
        raise ValueError("an IP address or a host name, e.g. 0.0.0.0 or localhost")
    return value


def _url_checker(schemes: tuple[str, ...], kind: str, example: str) -> AfterValidator:
    def check(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname or not _is_host(parts.hostname):
            raise ValueError(f"{kind}, e.g. {example}")
        try:
            _ = parts.port  # raises ValueError on a port that is not a number in 0-65535
        except ValueError:
            raise ValueError(f"{kind} with a port in 0-65535, e.g. {example}") from None
        return value

    return AfterValidator(check)


def _check_origins(value: tuple[str, ...]) -> tuple[str, ...]:
    # Compared as written against the browser's Origin header (ws/session.py), so a path, a trailing
    # slash or a missing scheme would never match anything.
    for origin in value:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            raise ValueError("browser origins such as https://example.com (scheme, host, optional port, no path)")
    return value


def _check_names(value: tuple[str, ...]) -> tuple[str, ...]:
    if not all(_NAME.match(name) for name in value):
        raise ValueError("names of letters, digits, '.', '_' or '-', comma-separated, e.g. coinbase,reddit")
    return value


def _check_subreddits(value: tuple[str, ...]) -> tuple[str, ...]:
    if not all(_SUBREDDIT.match(name) for name in value):
        raise ValueError("subreddit names without r/ (2-21 letters, digits or _), e.g. CryptoCurrency,Bitcoin")
    return value


def _check_space_id(value: str) -> str:
    if not _SPACE_ID.match(value):
        raise ValueError("owner/name, as Hugging Face sets it in a Space")
    return value


def _check_plain_text(value: str) -> str:
    # Sent as an HTTP header value: a line break or other control character would be refused there.
    if _CONTROL.search(value):
        raise ValueError("text without line breaks or other control characters")
    return value


def _check_folder(value: Path) -> Path:
    if value.exists() and not value.is_dir():
        raise ValueError("a folder (made when missing), not a file")
    return value


def _check_existing_folder(value: Path) -> Path:
    if not value.is_dir():
        raise ValueError("an existing folder")
    return value


def _check_existing_file(value: Path) -> Path:
    if not value.is_file():
        raise ValueError("an existing file")
    return value


def _check_file_path(value: Path) -> Path:
    if value.is_dir():
        raise ValueError("a file path, not a folder")
    if value.parent.exists() and not value.parent.is_dir():
        raise ValueError("a file path inside a folder, not inside a file")
    return value


def _check_file_name(value: str) -> str:
    _check_file_path(Path(value))
    return value


def _check_redis_url(value: SecretStr) -> SecretStr:
    if urlsplit(value.get_secret_value()).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("a redis://, rediss:// or unix:// URL, e.g. redis://localhost:6379/0")
    return value


def _check_database_url(value: SecretStr) -> SecretStr:
    # Imported here: SQLAlchemy is heavy and only this check of the settings needs it.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(value.get_secret_value()).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ValueError(
            "a SQLAlchemy URL of an installed dialect, e.g. postgresql+psycopg://user:pw@host/db") from None
    return value


def _parse_start_prices(value: object) -> object:
    # `BTC:90000,ETH:3000`; an entry that does not parse is an error, never skipped.
    if not isinstance(value, str):
        return value
    prices: list[tuple[str, float]] = []
    for entry in split_csv(value):
        symbol, colon, number = entry.partition(":")
        try:
            price = float(number)
        except ValueError:
            price = math.nan
        if not colon or not symbol.strip() or not math.isfinite(price) or price <= 0:
            raise ValueError(f"SYMBOL:price entries with prices > 0, e.g. BTC:90000,ETH:3000 (bad entry {entry!r})")
        prices.append((symbol.strip().upper(), price))
    return tuple(prices)


Host = Annotated[str, AfterValidator(_check_host)]
HttpUrl = Annotated[str, _url_checker(("http", "https"), "an http(s) URL", "https://api.example.com")]
WsUrl = Annotated[str, _url_checker(("ws", "wss"), "a ws(s) URL", "wss://stream.example.com/ws")]
HttpUrls = Annotated[tuple[HttpUrl, ...], NoDecode, BeforeValidator(split_csv)]
Origins = Annotated[Csv, AfterValidator(_check_origins)]
Names = Annotated[Csv, AfterValidator(_check_names)]
Subreddits = Annotated[Csv, AfterValidator(_check_subreddits)]
SpaceId = Annotated[str, AfterValidator(_check_space_id)]
PlainText = Annotated[str, AfterValidator(_check_plain_text)]
Folder = Annotated[Path, AfterValidator(_check_folder)]
ExistingFolder = Annotated[Path, AfterValidator(_check_existing_folder)]
ExistingFile = Annotated[Path, AfterValidator(_check_existing_file)]
FilePath = Annotated[Path, AfterValidator(_check_file_path)]
FileName = Annotated[str, AfterValidator(_check_file_name)]
RedisUrl = Annotated[SecretStr, AfterValidator(_check_redis_url)]
DatabaseUrl = Annotated[SecretStr, AfterValidator(_check_database_url)]
# (symbol, price) pairs, not a dict: the settings are frozen and hashable.
StartPrices = Annotated[tuple[tuple[str, float], ...], NoDecode, BeforeValidator(_parse_start_prices)]
