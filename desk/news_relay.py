"""News ingestion in a cluster: followers forward items to the leader, which alone assigns `seq`.

`POST /api/news` may land on any process behind a load balancer. A follower pushes the items on
the Redis list `<prefix>:news:inbox` with a reply key and a deadline, and waits for the answer;
the leader pops requests, runs them through its own desk (dedupe, score, persist, publish) and
pushes each item's seq back. One writer of seq keeps news in one order on every process, and the
leader's scoring models are the only ones that need to be loaded.

A request whose deadline passed before a leader picked it up is skipped, so a client that was
told 503 (no leader, e.g. during a failover) can safely retry: nothing was published behind its back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError

from core.records import NewsItem
from desk.news import Ingested, NewsDesk, NewsUnavailable

__all__ = ["ClusterNewsDesk", "LeaderUnavailable"]

logger = logging.getLogger(__name__)


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
    reply_timeout_s = 10.0
    forwarded = 0
    served = 0

    def attach(
        self, redis: Any, is_leader: Callable[[], bool], *, prefix: str = "hub", reply_timeout_s: float = 10.0
    ) -> None:
        """Forward through `redis` whenever `is_leader()` is false."""
        self.redis = redis
        self.is_leader = is_leader
        self.prefix = prefix
        self.reply_timeout_s = reply_timeout_s

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
            "deadline": time.time() + self.reply_timeout_s,
            "items": [_item_to_json(item) for item in items],
        }
        try:
            await self.redis.rpush(self.inbox, json.dumps(request))
            self.forwarded += 1
            deadline = time.monotonic() + self.reply_timeout_s
            while time.monotonic() < deadline:
                reply = await self.redis.blpop([reply_key], timeout=1)
                if reply is not None:
                    break
            else:
                raise LeaderUnavailable(
                    f"no leader answered within {self.reply_timeout_s:g} s; retry shortly"
                )
        except (RedisError, OSError) as exc:
            raise LeaderUnavailable(f"cannot reach the leader through Redis: {type(exc).__name__}") from exc
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
            if time.time() > float(request["deadline"]):
                logger.warning(
                    "news relay: skipping request %s, its sender stopped waiting", request.get("id")
                )
                return
            items = [_item_from_json(data) for data in request["items"]]
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("news relay: malformed request dropped: %s", exc)
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
        try:
            await self.redis.rpush(reply_key, json.dumps(answer))
            await self.redis.expire(reply_key, int(self.reply_timeout_s) + 5)
        except (RedisError, OSError) as exc:
            logger.warning("news relay: could not answer %s (%s)", reply_key, type(exc).__name__)
