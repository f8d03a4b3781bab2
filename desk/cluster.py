"""What `REDIS_URL` adds to one app process: election, backplane, news forwarding and the outage notice.

With `REDIS_URL` set, `compose.py` has the runtime join one (handing it the runtime's producer
switch) and the runtime calls `start()`/`stop()`; the Cluster calls back `start_producers()` when
this process is elected and `stop_producers()` when it is not the leader any more. Every process
serves sockets either way.

While Redis is unreachable there is no leader (the lock cannot be renewed), so no producer runs;
every process keeps its sockets, snapshots and history, and publishes a local `system_status`
every `status_interval_s` that says the backplane is down. Those local messages carry a
process-local epoch, so the cluster's stream (and its seq) takes over cleanly when Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from pydantic import BaseModel
from redis.exceptions import RedisError

from core.bus import Bus, Envelope
from core.bus.leader import LeaderElection, new_process_id
from core.bus.redis_backplane import RedisBackplane
from core.bus.redis_wire import connect_redis
from core.clock import utc_now
from core.periodic import TaskSupervisor
from core.records import SourceHealth
from desk.news_relay import ClusterNewsDesk

__all__ = ["Cluster"]

logger = logging.getLogger(__name__)


class Cluster:
    """One process's membership in a group of app processes sharing a Redis.

    Args:
        redis_url: the Redis server.
        bus: the local bus; its relay is set to the backplane.
        news: the news desk; followers forward ingestion through it.
        start_producers, stop_producers: the runtime's producer switch.
        build_status: returns a fresh `system_status` message built from this process's view.
        prefix: key namespace (REDIS_PREFIX).
        history_size: envelopes Redis keeps per topic.
        status_interval_s: cadence of the local outage status.
        lock_ttl_s, renew_interval_s: the leader lease (see LeaderElection).
        heartbeat_ttl_s: a process missing this long is no longer counted as a member.
        max_pending, publish_timeout_s: the backplane's bounds (see RedisBackplane).
    """

    def __init__(
        self,
        redis_url: str,
        bus: Bus,
        news: ClusterNewsDesk,
        *,
        start_producers: Callable[[], Awaitable[None]],
        stop_producers: Callable[[], Awaitable[None]],
        build_status: Callable[[], Awaitable[BaseModel]],
        prefix: str = "hub",
        history_size: int = 1000,
        status_interval_s: float = 5.0,
        lock_ttl_s: float = 5.0,
        renew_interval_s: float | None = None,
        heartbeat_ttl_s: float = 10.0,
        flush_timeout_s: float = 2.0,
        max_pending: int = 1000,
        publish_timeout_s: float = 3.0,
    ) -> None:
        self.process_id = new_process_id()
        self.prefix = prefix
        self.redis = connect_redis(redis_url)
        # Settling a publication whose answer was lost waits longer than other calls: a late answer
        # still tells 201 from 503 (see RedisBackplane.confirm).
        self.patient_redis = connect_redis(redis_url, socket_timeout_s=publish_timeout_s * 3)
        self.bus = bus
        self.news = news
        self._start_producers = start_producers
        self._stop_producers = stop_producers
        self._build_status = build_status
        self.status_interval_s = status_interval_s
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self.flush_timeout_s = flush_timeout_s
        self.election = LeaderElection(
            self.redis,
            process_id=self.process_id,
            on_elected=self._take_office,
            on_deposed=self._leave_office,
            key=f"{prefix}:leader",
            lock_ttl_s=lock_ttl_s,
            renew_interval_s=renew_interval_s or lock_ttl_s / 5,
        )
        self.backplane = RedisBackplane(
            self.redis,
            bus,
            process_id=self.process_id,
            current_token=lambda: self.election.token,
            on_fenced=self.election.step_down,
            prefix=prefix,
            lock_key=self.election.key,
            history_size=history_size,
            max_pending=max_pending,
            publish_timeout_s=publish_timeout_s,
            patient_redis=self.patient_redis,
            on_received=news.keep_received,
        )
        bus.set_relay(self.backplane.relay, self.backplane.confirm)
        news.attach(self.redis, lambda: self.election.is_leader, prefix=prefix)
        self.members = 0
        self._tasks = TaskSupervisor("cluster", logger)
        self._office: asyncio.Task[None] | None = None
        self._outage_epoch: str | None = None
        self._last_local_status = 0.0

    @property
    def is_leader(self) -> bool:
        """Whether this process runs the producers now."""
        return self.election.is_leader

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start listening, campaigning and relaying; returns at once."""
        self._tasks.spawn("backplane-listen", self.backplane.listen_loop())
        self._tasks.spawn("backplane-write", self.backplane.write_loop())
        self._tasks.spawn("news-keep", self.news.keep_loop())
        self._tasks.spawn("leader-election", self.election.run())
        self._tasks.every(min(1.0, self.status_interval_s), self._watch_once, "watch")
        logger.info("cluster: process %s joined (prefix %s)", self.process_id, self.prefix)

    async def stop(self) -> None:
        """Stop producing, flush what is pending (bounded), release the lock and disconnect."""
        if self.election.token is not None:
            await self._stop_producers()
            deadline = time.monotonic() + self.flush_timeout_s
            while self.backplane.pending and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        await self.election.resign()
        await self._tasks.cancel_all()
        with suppress(RedisError, OSError):
            await self.redis.zrem(f"{self.prefix}:members", self.process_id)
        for client in (self.redis, self.patient_redis):
            with suppress(RedisError, OSError):
                await client.aclose()
        logger.info("cluster: process %s left", self.process_id)

    # ------------------------------------------------------------ office

    async def _take_office(self) -> None:
        await self.backplane.prepare_leadership()
        await self._start_producers()
        self._office = asyncio.create_task(self.news.serve_forwarded(), name="news-relay")

    async def _leave_office(self, reason: str) -> None:
        if self._office is not None:
            self._office.cancel()
            with suppress(asyncio.CancelledError):
                await self._office
            self._office = None
        await self._stop_producers()
        self.backplane.drop_pending(reason)

    # ------------------------------------------------------------ membership and outage notice

    async def _watch_once(self) -> None:
        """Refresh this process's membership; publish the local outage status while Redis is gone."""
        key = f"{self.prefix}:members"
        try:
            now = time.time()
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zadd(key, {self.process_id: now + self.heartbeat_ttl_s})
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zcard(key)
                self.members = int((await pipe.execute())[-1])
        except (RedisError, OSError):
            pass
        if self.backplane.online or self.backplane.last_error is None:
            self._outage_epoch = None  # connected, or still making the first attempt
        elif time.monotonic() - self._last_local_status >= self.status_interval_s:
            try:
                await self._publish_local_status()
            except Exception:
                logger.exception("cluster: local status failed")

    async def _publish_local_status(self) -> None:
        self._last_local_status = time.monotonic()
        if self._outage_epoch is None:
            self._outage_epoch = f"local-{uuid.uuid4().hex[:8]}"
        message = await self._build_status()
        seq = self.bus.last_seq("system") + 1
        stamped = message.model_copy(update={"seq": seq, "epoch": self._outage_epoch})
        self.bus.ingest(
            Envelope(
                topic="system",
                seq=seq,
                epoch=self._outage_epoch,
                text=stamped.model_dump_json(),
            )
        )

    def health(self) -> SourceHealth:
        """Describe the backplane as an entry of `system_status.data_sources.sources`."""
        bp = self.backplane
        role = "leader" if self.is_leader else "follower"
        if bp.online:
            leader = self.election.leader_id or "none yet"
            return SourceHealth(
                name="redis",
                category="backplane",  # type: ignore[arg-type]  # shown beside the providers
                status="active",
                last_success=utc_now(),
                reason=f"{role} {self.process_id}; leader {leader}; {self.members} processes; "
                f"{bp.reconnects} reconnects",
            )
        since = time.strftime("%H:%M:%SZ", time.gmtime(bp.offline_since)) if bp.offline_since else "start"
        return SourceHealth(
            name="redis",
            category="backplane",  # type: ignore[arg-type]
            status="inactive",
            last_error=bp.last_error,
            reason=f"Redis unreachable since {since}; serving local snapshots and history, "
            f"no producer runs until it is back; reconnecting ({self.process_id})",
        )

    def describe(self) -> dict[str, Any]:
        """Return counters for /metrics."""
        bp = self.backplane
        return {
            "process_id": self.process_id,
            "leader": self.is_leader,
            "fence": self.election.fence,
            "online": bp.online,
            "members": self.members,
            "terms": self.election.terms,
            "relayed": bp.relayed,
            "received": bp.received,
            "resyncs": bp.resyncs,
            "dropped": bp.dropped,
            "refused": bp.refused,
            "pending": bp.pending,
            "reconnects": bp.reconnects,
            "forwarded": self.news.forwarded,
            "served": self.news.served,
            "settled": bp.settled,
            "kept": self.news.kept,
            "keep_failures": self.news.keep_failures,
        }
