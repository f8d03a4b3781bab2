"""The Redis backplane: carries bus envelopes between app processes.

The leader's bus hands every published envelope to `relay()`. A writer task stores it in Redis
with one fenced script (refused unless the lock still holds this leader's token), which appends
it to the topic's capped history list, stores it as the latest value of its key, records the
topic's `seq`/`epoch` and publishes it on one channel. Only then does the leader deliver it to its
own sockets, so no process ever shows a message that the cluster does not have.

Every process listens on the channel and calls `Bus.ingest()`. A message that skips a seq of the
lossless topic (news), or arrives under a new epoch, makes the listener fill the gap from the
Redis history first, so `?since=` resumes on any process. After a reconnect the listener re-reads
every topic the same way.

Redis layout (`<p>` is the prefix):
    <p>:bus                   channel of every envelope
    <p>:t:<topic>:meta        hash: epoch, seq
    <p>:t:<topic>:history     list of the newest `history_size` envelopes
    <p>:t:<topic>:latest      hash: key ("" when unkeyed) -> newest envelope of that key
    <p>:t:<topic>:ids         hash: dedupe key (news: URL) -> "seq:epoch" it went out as
    <p>:t:<topic>:idorder     list of those keys, oldest first, capped at DEDUPE_WINDOW

A publish whose answer was lost (a socket timeout) is retried; the dedupe key makes the retry
answer "went out as seq N" instead of publishing twice or reporting a failure that did not happen.
When the leader gives up (it steps down), a waiter settles its envelope's fate with one script that
releases the lock and reads the dedupe key: after it, no earlier try can still land.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from core.bus.local import TOPICS, AlreadyPublished, Bus, Envelope, NotPublished
from core.bus.redis_wire import (
    ALREADY,
    DEDUPE_WINDOW,
    PUBLISH_SCRIPT,
    PUBLISHED,
    SETTLE_SCRIPT,
    STALE,
    decode_envelope,
    encode_envelope,
    parse_seen,
)

__all__ = ["BackplaneRefused", "BackplaneUnconfirmed", "RedisBackplane"]

logger = logging.getLogger(__name__)

class BackplaneRefused(NotPublished):
    """The envelope was not stored in Redis (queue full, not the leader, fenced, stale seq)."""


class BackplaneUnconfirmed(Exception):
    """Redis did not answer for the envelope in time: it may or may not be stored (the leader steps down)."""


class RedisBackplane:
    """Relays this process's publications to Redis and feeds everyone else's into the local bus.

    Args:
        redis: an asyncio Redis client.
        bus: the local bus (its relay is set by the caller).
        process_id: this process's name; its own envelopes coming back on the channel are skipped.
        current_token: returns the leader token while this process leads, else None.
        on_fenced: awaited when Redis refused a write because another process now leads.
        prefix: namespace of every key, so several deployments can share one Redis.
        history_size: envelopes kept per topic in Redis.
        lossless: topics whose every seq must reach every process (gaps are filled from history).
        on_received: called with each envelope of a lossless topic that another process published
            and this one recorded (live or caught up from history), so it can keep it as well.
        max_batch: envelopes written in one pipelined round trip.
        reconnect_max_s: longest pause between reconnect attempts.
        max_pending: envelopes waiting for Redis; past it new ones are refused (counted in `dropped`,
            and `confirm()` raises), so a leader cut off from Redis cannot grow without bound.
        publish_timeout_s: a leader whose oldest pending envelope could not be stored for this
            long steps down (`on_fenced`) and drops what is pending: another process may publish.
        patient_redis: a client with a longer socket timeout (default `redis`); a waiter whose
            envelope's fate is unknown settles it through this one, for up to `settle_timeout_s`
            (default 4 x `publish_timeout_s`), since a late answer still decides 201 against 503.

    Trade-off: the leader's own sockets see a message one Redis round trip later than they would
    without a backplane; in exchange a leader that loses Redis never shows messages the others lack.
    """

    def __init__(
        self,
        redis: Any,
        bus: Bus,
        *,
        process_id: str,
        current_token: Callable[[], str | None],
        on_fenced: Callable[[str], Awaitable[None]],
        prefix: str = "hub",
        lock_key: str = "hub:leader",
        history_size: int = 1000,
        lossless: tuple[str, ...] = ("news",),
        max_batch: int = 100,
        reconnect_max_s: float = 2.0,
        max_pending: int = 1000,
        publish_timeout_s: float = 3.0,
        patient_redis: Any = None,
        settle_timeout_s: float | None = None,
        on_received: Callable[[Envelope], None] | None = None,
    ) -> None:
        self._redis = redis
        self.bus = bus
        self.process_id = process_id
        self._current_token = current_token
        self._on_fenced = on_fenced
        self.prefix = prefix
        self.lock_key = lock_key
        self.channel = f"{prefix}:bus"
        self.history_size = history_size
        self.lossless = lossless
        self.max_batch = max_batch
        self.reconnect_max_s = reconnect_max_s
        self.max_pending = max_pending
        self.publish_timeout_s = publish_timeout_s
        self.settle_timeout_s = settle_timeout_s if settle_timeout_s is not None else publish_timeout_s * 4
        self._on_received = on_received
        self._publish_sha = hashlib.sha1(PUBLISH_SCRIPT.encode()).hexdigest()
        self._settle_fate = (patient_redis or redis).register_script(SETTLE_SCRIPT)
        self._pending: deque[Envelope] = deque()
        self._waiters: dict[int, asyncio.Future[None]] = {}  # id(envelope) -> its confirm() future
        self._failing_since: float | None = None  # monotonic; the head of the queue could not be stored
        self.refused = 0
        self._wake = asyncio.Event()
        self.online = False
        self.offline_since: float | None = time.time()
        self.last_error: str | None = None
        self.reconnects = 0
        self.settled = 0  # publications whose lost answer was settled from the dedupe key
        self.relayed = 0
        self.received = 0
        self.resyncs = 0
        self.dropped = 0
        self._ever_online = False

    def _key(self, topic: str, part: str) -> str:
        return f"{self.prefix}:t:{topic}:{part}"

    # ------------------------------------------------------------ leader side

    def relay(self, envelope: Envelope) -> None:
        """Queue a freshly published envelope for Redis (the bus's relay; never blocks).

        Past `max_pending` the envelope is dropped and counted: its topic is not lossless (news
        goes through `confirm()`), and its readers see the next value instead.
        """
        if not self._admit(envelope):
            return
        self._pending.append(envelope)
        self._wake.set()

    def _admit(self, envelope: Envelope) -> bool:
        if len(self._pending) < self.max_pending:
            return True
        self.refused += 1
        self.dropped += 1
        if self.refused == 1 or self.refused % 1000 == 0:
            logger.error("backplane: %d envelopes wait for Redis (the bound); %s seq %s refused (%d so far)",
                         len(self._pending), envelope.topic, envelope.seq, self.refused)
        return False

    async def confirm(self, envelope: Envelope) -> None:
        """Store an envelope in Redis and return once it is there, without delivering it locally.

        The bus's `publish_durable()` awaits this, commits, then delivers. Bounded: the write loop
        resolves every waiter within about `publish_timeout_s` (stored, refused, or stepped down);
        when the leader gave up without an answer, an envelope with a dedupe key is settled from
        Redis (`settle_timeout_s` more at most), so it is reported as stored exactly when it went out.

        Raises:
            BackplaneRefused: it was not stored (queue full, not the leader, fenced, stale).
            AlreadyPublished: its dedupe key went out earlier under another seq.
            BackplaneUnconfirmed: Redis did not answer in time and could not be asked since: it may
                or may not be stored (the leader steps down).
        """
        token = self._current_token()
        if token is None:
            raise BackplaneRefused("this process is not the leader")
        if not self._admit(envelope):
            raise BackplaneRefused(f"{len(self._pending)} envelopes already wait for Redis")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[id(envelope)] = future
        self._pending.append(envelope)
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(future), self.publish_timeout_s * 3)
        except TimeoutError:
            self._waiters.pop(id(envelope), None)  # nobody reads the future any more
            await self._on_fenced(f"Redis did not confirm {envelope.topic} seq {envelope.seq} in time")
            self.drop_pending("confirmation timed out")
            await self._settle_unknown(envelope, token)
        except BackplaneUnconfirmed:
            await self._settle_unknown(envelope, token)
        finally:
            self._waiters.pop(id(envelope), None)

    async def _settle_unknown(self, envelope: Envelope, token: str) -> None:
        """Decide whether an envelope whose answer was lost went out; raise unless it did as itself."""
        if envelope.dedupe_key is None:
            raise BackplaneUnconfirmed(f"Redis did not confirm {envelope.topic} seq {envelope.seq}")
        ids = self._key(envelope.topic, "ids")
        deadline = time.monotonic() + self.settle_timeout_s
        while True:
            try:
                seen = await self._settle_fate(keys=[self.lock_key, ids], args=[token, envelope.dedupe_key])
                break
            except (RedisError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise BackplaneUnconfirmed(
                        f"Redis did not confirm {envelope.topic} seq {envelope.seq}, and could not be asked "
                        f"since ({type(exc).__name__}); retry with the same URL: if it went out, the retry "
                        "answers with its seq"
                    ) from exc
                await asyncio.sleep(0.2)
        self.settled += 1
        if seen is None:
            raise BackplaneRefused(f"{envelope.topic} seq {envelope.seq} did not reach Redis")
        seq, epoch = parse_seen(seen)
        logger.warning("backplane: a lost answer settled: %s seq %s went out as seq %s",
                       envelope.topic, envelope.seq, seq)
        if (seq, epoch) != (envelope.seq, envelope.epoch):
            raise AlreadyPublished(envelope, seq)

    def _settle(self, envelope: Envelope, error: BaseException | None) -> bool:
        """Resolve the envelope's waiter; return False when nobody waits (deliver it here instead)."""
        future = self._waiters.pop(id(envelope), None)
        if future is None or future.done():
            return False
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
        return True

    @property
    def pending(self) -> int:
        """Return how many published envelopes wait for Redis."""
        return len(self._pending)

    def drop_pending(self, reason: str) -> None:
        """Discard envelopes that were never stored (leadership lost); nobody has seen them."""
        if self._pending:
            logger.warning("backplane: dropping %d unconfirmed envelopes: %s", len(self._pending), reason)
            self.dropped += len(self._pending)
            for envelope in self._pending:
                self._settle(envelope, BackplaneUnconfirmed(f"dropped: {reason}"))
            self._pending.clear()
        self._failing_since = None
        self.bus.discard_unconfirmed()

    async def write_loop(self) -> None:
        """Store pending envelopes in order, retrying on Redis errors, until cancelled."""
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            token = self._current_token()
            if token is None:
                self.drop_pending("this process is not the leader")
                continue
            batch = [self._pending[i] for i in range(min(self.max_batch, len(self._pending)))]
            try:
                results = await self._store(batch, token)
            except (RedisError, OSError) as exc:
                # The listener owns `online`; a failed write waits and retries the same batch, for a
                # bounded time: a leader that cannot publish makes way for one that can.
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                now = time.monotonic()
                self._failing_since = self._failing_since or now
                if now - self._failing_since >= self.publish_timeout_s:
                    reason = f"cannot publish to Redis for {now - self._failing_since:.1f} s ({self.last_error})"
                    logger.error("backplane: %s; stepping down", reason)
                    await self._on_fenced(reason)
                    self.drop_pending(reason)
                    continue
                await asyncio.sleep(0.2)
                continue
            except Exception as exc:
                # Not an outage but a bug (an envelope Redis cannot take): drop the batch, keep relaying.
                logger.exception("backplane: storing %d envelopes failed; dropped", len(batch))
                self.dropped += len(batch)
                for envelope in batch:
                    if self._pending and self._pending[0] is envelope:
                        self._pending.popleft()
                    self._settle(envelope, BackplaneUnconfirmed(f"storing failed: {type(exc).__name__}"))
                continue
            self._failing_since = None
            for envelope, (code, seq, epoch) in zip(batch, results, strict=True):
                if self._pending and self._pending[0] is envelope:
                    self._pending.popleft()
                if code == ALREADY and (seq, epoch) == (envelope.seq, envelope.epoch):
                    code = PUBLISHED  # a retry: the first try went out, its answer was lost
                if code == PUBLISHED:
                    self.relayed += 1
                    if self._settle(envelope, None):
                        continue  # its publisher commits it, then delivers it
                    if envelope.dedupe_key is not None:
                        continue  # its publisher gave up waiting and settles its fate itself
                    try:
                        self.bus.deliver(envelope)
                    except Exception:
                        logger.exception(
                            "backplane: delivering %s seq %s locally failed", envelope.topic, envelope.seq
                        )
                elif code == ALREADY:
                    self._settle(envelope, AlreadyPublished(envelope, seq))
                elif code == STALE:
                    stale = BackplaneRefused(f"Redis already has {envelope.topic} seq >= {envelope.seq}")
                    self._settle(envelope, stale)
                    self.dropped += 1
                    logger.error(
                        "backplane: Redis already has %s seq >= %s; dropped, resyncing",
                        envelope.topic,
                        envelope.seq,
                    )
                    try:
                        await self.resync(envelope.topic)
                    except (RedisError, OSError) as exc:
                        self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                else:
                    self._settle(envelope, BackplaneRefused("fenced: another process holds the lock"))
                    await self._on_fenced("Redis refused a write: another process holds the lock")
                    self.drop_pending("fenced")
                    break

    async def _store(self, batch: list[Envelope], token: str) -> list[tuple[int, int, str]]:
        """Run the publish script for each envelope; return (code, seq, epoch) per envelope.

        EVALSHA straight away: a registered script in a pipeline asks `SCRIPT EXISTS` first, one more
        round trip per batch. A Redis that lost its script cache answers NOSCRIPT without running
        anything; the script is loaded and the batch sent again.
        """
        try:
            replies = await self._evalsha(batch, token)
        except NoScriptError:
            await self._redis.script_load(PUBLISH_SCRIPT)
            replies = await self._evalsha(batch, token)
        out = []
        for reply in replies:
            epoch = reply[2].decode() if len(reply) > 2 and isinstance(reply[2], bytes) else ""
            out.append((int(reply[0]), int(reply[1]), epoch))
        return out

    async def _evalsha(self, batch: list[Envelope], token: str) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for envelope in batch:
                meta, history, latest, ids, order = (
                    self._key(envelope.topic, p) for p in ("meta", "history", "latest", "ids", "idorder")
                )
                pipe.evalsha(
                    self._publish_sha, 6, self.lock_key, meta, history, latest, ids, order,
                    token,
                    envelope.seq,
                    envelope.epoch,
                    envelope.key or "",
                    encode_envelope(envelope, self.process_id),
                    self.history_size,
                    self.channel,
                    envelope.dedupe_key or "",
                    DEDUPE_WINDOW,
                )
            return list(await pipe.execute())

    async def prepare_leadership(self) -> None:
        """Catch up with Redis before producing; start a new epoch for topics Redis has lost."""
        for topic in TOPICS:
            if await self._redis.exists(self._key(topic, "meta")):
                await self.resync(topic)
            elif self.bus.last_seq(topic) > 0:
                # Redis lost (or never had) this topic's history, and another process may hold
                # messages this one missed: only a new epoch keeps seq unambiguous.
                epoch = self.bus.restart_epoch(topic)
                logger.warning("backplane: Redis has no %s history; new epoch %s", topic, epoch)
        self.bus.discard_unconfirmed()

    # ------------------------------------------------------------ every process

    async def listen_loop(self) -> None:
        """Subscribe, catch up, and ingest the channel until cancelled; reconnect on errors."""
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                for topic in TOPICS:
                    await self.resync(topic)
                self._set_online()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await self._on_message(message["data"])
            except (RedisError, OSError) as exc:
                self._note_error(exc)
            finally:
                try:
                    await pubsub.aclose()
                except (RedisError, OSError):
                    pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.reconnect_max_s)

    async def _on_message(self, payload: bytes) -> None:
        try:
            envelope, origin = decode_envelope(payload)
        except ValueError as exc:
            logger.error("backplane: ignoring a malformed message on %s: %s", self.channel, exc)
            return
        if origin == self.process_id:
            return  # our own publication; the writer delivered it already
        self.received += 1
        topic = envelope.topic
        same_epoch = envelope.epoch == self.bus.epoch(topic)
        last = self.bus.last_seq(topic)
        if same_epoch and envelope.seq <= last:
            return
        if topic not in self.lossless or (same_epoch and envelope.seq == last + 1):
            self._record(envelope)
            return
        await self.resync(topic)  # a gap or a new epoch: fill from the retained history

    async def resync(self, topic: str) -> None:
        """Bring the local topic up to Redis's state (history for lossless topics, else latest values)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._key(topic, "meta"))
            if topic in self.lossless:
                pipe.lrange(self._key(topic, "history"), 0, -1)
            else:
                pipe.hvals(self._key(topic, "latest"))
            meta, payloads = await pipe.execute()
        if not meta or b"epoch" not in meta:
            return
        epoch = meta[b"epoch"].decode()
        envelopes = []
        for payload in payloads:
            try:
                envelope, _ = decode_envelope(payload)
            except ValueError:
                continue
            if envelope.epoch == epoch:
                envelopes.append(envelope)
        envelopes.sort(key=lambda env: env.seq)
        if epoch == self.bus.epoch(topic):
            last = self.bus.last_seq(topic)
            envelopes = [env for env in envelopes if env.seq > last]
            if topic in self.lossless and envelopes and envelopes[0].seq > last + 1:
                # Redis no longer retains the whole gap: drop ours so `?since=` reports HISTORY_GAP.
                self.bus.restart_epoch(topic)
        if envelopes:
            self.resyncs += 1
            for envelope in envelopes:
                self._record(envelope)

    def _record(self, envelope: Envelope) -> None:
        """Ingest an envelope another process published; hand a new lossless one to `on_received`."""
        if self.bus.ingest(envelope) and self._on_received is not None and envelope.topic in self.lossless:
            try:
                self._on_received(envelope)
            except Exception:
                logger.exception("backplane: keeping %s seq %s failed", envelope.topic, envelope.seq)

    def _set_online(self) -> None:
        if not self.online:
            if self._ever_online:
                self.reconnects += 1
                logger.info("backplane: reconnected to Redis and caught up (reconnect %d)", self.reconnects)
            else:
                logger.info("backplane: subscribed to %s and caught up with Redis", self.channel)
        self._ever_online = True
        self.online, self.offline_since, self.last_error = True, None, None

    def _note_error(self, exc: BaseException) -> None:
        if self.online:
            logger.warning(
                "backplane: lost Redis (%s: %s); serving local state, reconnecting", type(exc).__name__, exc
            )
            self.offline_since = time.time()
        self.online = False
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]
