"""News de-duplication: canonical URLs and near-identical titles.

The same story reaches us from several feeds (and aggregators) with tracking parameters,
different schemes, `www.` or a trailing slash, and sometimes a re-worded headline. We keep a
bounded memory of what was delivered and pass on only what is new.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from core.records import NewsItem

__all__ = ["NewsDeduper", "canonical_url", "normalize_title"]

# Query parameters that identify a campaign or a click, never the article.
_TRACKING_PARAMS = frozenset({"fbclid", "gclid", "dclid", "mc_cid", "mc_eid", "ref_src", "igshid", "cmpid"})
_TRACKING_PREFIXES = ("utm_",)

_NON_WORD = re.compile(r"[^\w\s]", re.UNICODE)
_SPACES = re.compile(r"\s+")


def canonical_url(url: str) -> str:
    """Return a comparison key for `url`: https, lower-case host without www, no tracking
    parameters, no fragment, no trailing slash, sorted query."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    port = parts.port
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key.lower() not in _TRACKING_PARAMS and not key.lower().startswith(_TRACKING_PREFIXES)
    ]
    path = parts.path.rstrip("/")
    return urlunsplit(("https", netloc, path, urlencode(sorted(query)), ""))


def normalize_title(title: str) -> str:
    """Return `title` lower-cased, accents and punctuation removed, spaces collapsed."""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(char for char in text if not unicodedata.combining(char))
    text = _NON_WORD.sub(" ", text.lower())
    return _SPACES.sub(" ", text).strip()


class NewsDeduper:
    """Remembers delivered news and filters repeats.

    Args:
        max_items: how many URLs and titles to remember (oldest forgotten first).
        similarity: titles whose difflib ratio reaches this are the same story (0.9 catches
            "Bitcoin hits $100K" vs "Bitcoin Hits $100K!" and small edits, not new stories).
        compare_window: how many recent titles each new title is fuzzily compared with; exact
            matches are checked against all `max_items`.
    """

    def __init__(self, *, max_items: int = 5000, similarity: float = 0.9, compare_window: int = 300) -> None:
        if not 0.0 < similarity <= 1.0:
            raise ValueError(f"similarity must be in (0, 1], got {similarity!r}")
        self.similarity = similarity
        self._max_items = max_items
        self._urls: OrderedDict[str, None] = OrderedDict()
        self._titles: OrderedDict[str, None] = OrderedDict()
        self._recent_titles: deque[str] = deque(maxlen=compare_window)

    def mark_seen(self, urls: Iterable[str] = (), titles: Iterable[str] = ()) -> None:
        """Remember URLs and titles delivered before (e.g. from the store after a restart)."""
        for url in urls:
            self._remember(self._urls, canonical_url(url))
        for title in titles:
            key = normalize_title(title)
            if key:
                self._remember(self._titles, key)
                self._recent_titles.append(key)

    def is_duplicate(self, item: NewsItem) -> bool:
        """Return whether `item` repeats a remembered URL or title (does not remember it)."""
        if canonical_url(item.url) in self._urls:
            return True
        title = normalize_title(item.title)
        if not title:
            return False
        if title in self._titles:
            return True
        return any(self._similar(title, seen) for seen in self._recent_titles)

    def filter_new(self, items: Iterable[NewsItem]) -> list[NewsItem]:
        """Return the items not seen before (also de-duplicated among themselves); remember them."""
        fresh: list[NewsItem] = []
        for item in items:
            if self.is_duplicate(item):
                continue
            self.mark_seen([item.url], [item.title])
            fresh.append(item)
        return fresh

    def _similar(self, title: str, seen: str) -> bool:
        matcher = difflib.SequenceMatcher(None, title, seen, autojunk=False)
        # quick_ratio is an upper bound; it prunes almost every pair before the real ratio.
        return matcher.quick_ratio() >= self.similarity and matcher.ratio() >= self.similarity

    def _remember(self, store: OrderedDict[str, None], key: str) -> None:
        store[key] = None
        store.move_to_end(key)
        while len(store) > self._max_items:
            store.popitem(last=False)
