"""News ingestion in a cluster: followers forward items to the leader, which alone assigns `seq`.

`POST /api/news` may land on any process behind a load balancer. A follower pushes the items on
the Redis list `<prefix>:news:inbox` with a reply key and a deadline, and waits for the answer;
the leader pops requests, runs them through its own desk (dedupe, score, persist, publish) and
pushes each item's seq back. One writer of seq keeps news in one order on every process, and the
leader's scoring models are the only ones that need to be loaded.

A request whose deadline passed before a leader picked it up is skipped, so a client that was
told 503 (no leader, e.g. during a failover) can safely retry: nothing was published behind its back.
A push whose answer comes late (past the socket timeout: Redis stored it, a leader may publish it)
is waited for like any other, so a slow Redis does not turn an item that goes out into a 503.

Every process keeps the news it receives from the backplane (`keep_received`): it remembers each
URL's seq at once, for dedupe, and stores the item under that seq in its own database soon after,
so a follower that takes over answers a repost as a duplicate, serves the history on `/api/news`,
and does not publish the feeds' items again. With a shared database the second store is skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError, TimeoutError as RedisTimeout

from core.bus import Envelope
from core.records import NewsItem
from core.store import StoreUnavailable
from desk.news import Ingested, NewsDesk, NewsUnavailable, news_item

__all__ = ["ClusterNewsDesk", "LeaderUnavailable"]

logger = logging.getLogger(__name__)

KEEP_QUEUE = 10_000  # received items waiting for the database; past it the oldest wait in Redis only
KEEP_BATCH = 200  # received items stored per transaction (one fsync each)


class LeaderUnavailable(NewsUnavailable):
    """No leader answered a forwarded request in time (failover in progress or Redis down)."""


def _item_to_json(item: NewsItem) -> dict[str, Any]:
    data = asdict(item)
    data["published_at"] = item.published_at.isoformat()
    return data


def _item_from_json(data: dict[str, Any]) -> NewsItem:
    return NewsItem(**{**data, "published_at": datetime.fromisoformat(data["published_at"])})


class ClusterNewsDesk(NewsDesk):
    """A NewsDesk that forwards `ingest()` to the leader when this process is a follower.

    Without `attach()` (no REDIS_URL) it is exactly a NewsDesk.
    """

    redis: Any = None
    is_leader: Callable[[], bool] = staticmethod(lambda: True)
    prefix = "hub"
    # A leader takes a request within `pickup_timeout_s` or the follower takes it back (503, nothing
    # published). One it took is waited for up to `reply_timeout_s`: longer than the leader's bound
    # on one publication (the backplane's confirmation and, after a lost answer, its settling: about
    # 7 x BACKPLANE_PUBLISH_TIMEOUT_S), so a follower never answers 503 for an item still going out.
    pickup_timeout_s = 10.0
    reply_timeout_s = 40.0
    forwarded = 0
    served = 0
    kept = 0  # received items stored here
    keep_failures = 0
    _to_keep: deque[tuple[NewsItem, Envelope]] | None = None
    _keep_wake: asyncio.Event | None = None

    def attach(
        self,
        redis: Any,
        is_leader: Callable[[], bool],
        *,
        prefix: str = "hub",
        pickup_timeout_s: float = 10.0,
        reply_timeout_s: float = 40.0,
    ) -> None:
        """Forward through `redis` whenever `is_leader()` is false."""
        self.redis = redis
        self.is_leader = is_leader
        self.prefix = prefix
        self.pickup_timeout_s = pickup_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self._to_keep = deque()
        self._keep_wake = asyncio.Event()

    def keep_received(self, envelope: Envelope) -> None:
        """Remember a news envelope another process published, and queue it for the database (never blocks)."""
        if envelope.topic != "news" or self._to_keep is None or self._keep_wake is None:
            return
        try:
            item = news_item(envelope)
        except (ValueError, TypeError) as exc:
            logger.error("news relay: seq %s is not a news message, not kept: %s", envelope.seq, exc)
            return
        self._remember(item.url, envelope.seq)
        if len(self._to_keep) >= KEEP_QUEUE:
            dropped, _ = self._to_keep.popleft()
            self.keep_failures += 1
            logger.error("news relay: %d received items wait for the database; %s not stored here",
                         KEEP_QUEUE, dropped.url)
        self._to_keep.append((item, envelope))
        self._keep_wake.set()

    async def keep_loop(self) -> None:
        """Store received items in order, in batches, in a thread, until cancelled; retry on failures."""
        assert self._to_keep is not None and self._keep_wake is not None, "attach() first"
        pending, wake = self._to_keep, self._keep_wake
        while True:
            while not pending:
                wake.clear()
                await wake.wait()
            batch = [pending[i] for i in range(min(KEEP_BATCH, len(pending)))]
            try:
                if self.store is not None:
                    self.kept += await asyncio.to_thread(self.store.keep_news, batch)
            except StoreUnavailable as exc:
                # Still remembered for dedupe, and in Redis's history: retry when the database is back.
                self.keep_failures += 1
                logger.error("news relay: %d received items not stored yet: %s", len(batch), exc)
                await asyncio.sleep(1.0)
                continue
            except Exception:
                self.keep_failures += 1
                logger.exception("news relay: storing %d received items failed; skipped", len(batch))
            for _ in batch:
                pending.popleft()

    @property
    def inbox(self) -> str:
        return f"{self.prefix}:news:inbox"

    async def ingest(self, items: list[NewsItem]) -> list[Ingested]:
        """Publish the items not seen before (here, or through the leader); return what became of each."""
        if self.redis is None or self.is_leader():
            return await super().ingest(items)
        return await self._forward(items)

    async def _forward(self, items: list[NewsItem]) -> list[Ingested]:
        request_id = uuid.uuid4().hex
        reply_key = f"{self.prefix}:news:reply:{request_id}"
        request = {
            "id": request_id,
            "reply": reply_key,
            "deadline": time.time() + self.pickup_timeout_s,
            "items": [_item_to_json(item) for item in items],
        }
        raw = json.dumps(request)
        try:
            await self.redis.rpush(self.inbox, raw)
        except (RedisTimeout, TimeoutError) as exc:
            # The push was sent and only its answer is late: a leader may take and publish it. Wait
            # for the outcome as for any pushed request (taken back at the pickup deadline if no
            # leader took it), rather than answer 503 for an item that may go out.
            logger.warning("news relay: Redis did not confirm request %s in time (%s); waiting for the leader",
                           request_id, type(exc).__name__)
        except (RedisError, OSError) as exc:
            raise LeaderUnavailable(
                f"cannot reach the leader through Redis: {type(exc).__name__}; if Redis took the item before it "
                "failed it may still go out: retry with the same URL (if it went out, the retry answers with its seq)"
            ) from exc
        self.forwarded += 1
        reply = await self._await_reply(raw, reply_key)
        answer = json.loads(reply[1])
        if "error" in answer:
            raise LeaderUnavailable(f"the leader could not publish: {answer['error']}")
        results: list[Ingested] = []
        for item, result in zip(items, answer["results"], strict=True):
            scored = replace(
                item,
                sentiment=result.get("sentiment"),
                sentiment_score=result.get("sentiment_score"),
                sentiment_model=result.get("sentiment_model"),
            )
            results.append(Ingested(scored, result.get("seq"), bool(result.get("duplicate"))))
        return results

    async def _await_reply(self, raw: str, reply_key: str) -> Any:
        """Wait for the leader's answer; take the request back if no leader picked it up in time.

        Raises:
            LeaderUnavailable: no leader picked it up (nothing was published), or no answer came
                within `reply_timeout_s` of a request a leader took (the outcome is unknown).
        """
        started = time.monotonic()
        taken = False
        while time.monotonic() - started < self.reply_timeout_s:
            try:
                if not taken and time.monotonic() - started >= self.pickup_timeout_s:
                    if await self.redis.lrem(self.inbox, 1, raw):
                        raise LeaderUnavailable(
                            f"no leader took the item within {self.pickup_timeout_s:g} s; nothing was "
                            "published, retry shortly"
                        )
                    taken = True  # a leader has it: wait for its answer, however slow
                reply = await self.redis.blpop([reply_key], timeout=1)
            except (RedisError, OSError) as exc:
                logger.warning("news relay: waiting for the leader's answer: %s; still waiting", type(exc).__name__)
                await asyncio.sleep(0.2)
                continue
            if reply is not None:
                return reply
        raise LeaderUnavailable(
            f"the leader took the item but did not answer within {self.reply_timeout_s:g} s; the outcome is "
            "unknown: retry with the same URL (if it went out, the retry answers with its seq)"
        )

    async def serve_forwarded(self) -> None:
        """Answer forwarded requests until cancelled (the leader runs this while in office)."""
        while True:
            try:
                popped = await self.redis.blpop([self.inbox], timeout=1)
            except (RedisError, OSError) as exc:
                logger.warning("news relay: cannot read the inbox (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            if popped is None:
                continue
            await self._serve_one(popped[1])

    async def _serve_one(self, raw: bytes) -> None:
        try:
            request = json.loads(raw)
            reply_key = request["reply"]
            expired = time.time() > float(request["deadline"])
            items = [_item_from_json(data) for data in request["items"]]
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("news relay: malformed request dropped: %s", exc)
            return
        if expired:
            # Its sender is about to take it back: say at once that nothing was published.
            logger.warning("news relay: skipping request %s, taken too late", request.get("id"))
            await self._answer(reply_key, {"error": "no leader took the item in time; nothing was published"})
            return
        try:
            done = await super().ingest(items)
            answer: dict[str, Any] = {
                "results": [
                    {
                        "seq": result.seq,
                        "duplicate": result.duplicate,
                        "sentiment": result.item.sentiment,
                        "sentiment_score": result.item.sentiment_score,
                        "sentiment_model": result.item.sentiment_model,
                    }
                    for result in done
                ]
            }
        except NewsUnavailable as exc:
            answer = {"error": str(exc)}
        except Exception as exc:
            logger.exception("news relay: publishing a forwarded request failed")
            answer = {"error": f"{type(exc).__name__}"}
        self.served += 1
        await self._answer(reply_key, answer)

    async def _answer(self, reply_key: str, answer: dict[str, Any]) -> None:
        try:
            await self.redis.rpush(reply_key, json.dumps(answer))
            await self.redis.expire(reply_key, int(self.reply_timeout_s) + 5)
        except (RedisError, OSError) as exc:
            logger.warning("news relay: could not answer %s (%s)", reply_key, type(exc).__name__)
