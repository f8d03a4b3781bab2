"""The in-process message bus: topics with sequence numbers, snapshots, history and encode-once fan-out.

Producers call `Bus.publish()`; the bus stamps `seq` and `epoch`, serialises the message once and
hands the same text to every listener of the topic. Listeners are plain callables that must not
block (a socket session puts the text in its bounded outbox and returns), so one slow client can
never delay the others or the producer. A Redis backplane (redis_backplane.py) can carry published
envelopes between processes; it calls `Bus.ingest()` on the receiving side.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

logger = logging.getLogger(__name__)

TOPICS = ("market", "news", "sentiment", "models", "system")


@dataclass(frozen=True)
class Envelope:
    """One published message: the encoded text every socket receives, plus what routing needs."""

    topic: str
    seq: int
    epoch: str
    text: str
    key: str | None = None
    match_text: str = ""  # lower-case text that keyword filters look at (news: title + description)
    source: str = ""  # lower-case name of the message's provider, for source filters
    # What makes two publications the same message (news: its URL). A backplane publishes one
    # dedupe key once, so a retried publication whose first try went out returns that try's seq.
    dedupe_key: str | None = None


class HistoryGap(Exception):
    """The requested `seq` is older than the retained history; some messages cannot be replayed."""

    def __init__(self, topic: str, since: int, oldest: int | None) -> None:
        super().__init__(f"{topic}: history starts at seq {oldest}, asked to resume after {since}")
        self.topic = topic
        self.since = since
        self.oldest = oldest


class NotPublished(Exception):
    """A relay refused an envelope before storing it anywhere: its seq is free again."""


class AlreadyPublished(NotPublished):
    """The envelope's dedupe key went out earlier under another seq; this envelope was not published."""

    def __init__(self, envelope: Envelope, seq: int) -> None:
        super().__init__(f"{envelope.topic} {envelope.dedupe_key!r} was published already as seq {seq}")
        self.envelope = envelope
        self.seq = seq


class PublishedNotStored(Exception):
    """The backplane confirmed an envelope (other processes stream it) but the local commit failed."""

    def __init__(self, envelope: Envelope, cause: BaseException) -> None:
        super().__init__(f"{envelope.topic} seq {envelope.seq} is published but not stored: {cause}")
        self.envelope = envelope


Listener = Callable[[Envelope], None]
Confirm = Callable[[Envelope], Awaitable[None]]


class Journal(Protocol):
    """Persists a topic's history so `seq` and `epoch` survive a restart (the store implements it)."""

    def load_topic(self, topic: str, limit: int) -> tuple[str | None, int, list[Envelope]]: ...

    def append(self, envelope: Envelope) -> None: ...


@dataclass
class _Topic:
    name: str
    epoch: str
    history: deque[Envelope]
    keyed: bool
    seq: int = 0
    assigned: int = 0  # the last seq publish() handed out; ahead of `seq` while a relay confirms it
    snapshot: dict[str | None, Envelope] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)


class Bus:
    """Topics with strictly increasing `seq`, an `epoch`, the latest message per key and a history ring.

    Args:
        history_size: messages kept per topic for `?since=` replay.
        journal: persists the topics named in `journaled` (news by default), restoring their
            seq, epoch and history at start.
        journaled: topics whose history outlives a restart.

    Trade-off: fan-out is synchronous and never awaits; listeners own their backpressure policy.
    """

    def __init__(
        self,
        *,
        history_size: int = 1000,
        journal: Journal | None = None,
        journaled: tuple[str, ...] = ("news",),
    ) -> None:
        self._journal = journal
        self._journaled = journaled if journal is not None else ()
        self._topics: dict[str, _Topic] = {}
        self._relay: Callable[[Envelope], None] | None = None
        self._confirm: Confirm | None = None
        for name in TOPICS:
            topic = _Topic(
                name=name,
                epoch=uuid.uuid4().hex[:12],
                history=deque(maxlen=history_size),
                keyed=name == "market",
            )
            if journal is not None and name in self._journaled:
                epoch, last_seq, recent = journal.load_topic(name, history_size)
                if epoch is not None:
                    topic.epoch = epoch
                    topic.seq = last_seq
                    topic.history.extend(recent)
                    for env in recent:
                        topic.snapshot[env.key] = env
            self._topics[name] = topic

    def _topic(self, name: str) -> _Topic:
        try:
            return self._topics[name]
        except KeyError:
            raise ValueError(f"unknown topic {name!r}, expected one of {', '.join(TOPICS)}") from None

    def epoch(self, topic: str) -> str:
        """Return the topic's epoch: it changes only when the topic's history was lost."""
        return self._topic(topic).epoch

    def last_seq(self, topic: str) -> int:
        """Return the `seq` of the topic's newest message (0 before the first)."""
        return self._topic(topic).seq

    def publish(
        self, topic: str, message: BaseModel, *, key: str | None = None, match_text: str = "", source: str = ""
    ) -> Envelope:
        """Stamp `seq`/`epoch` on a message, encode it once and deliver it to every listener.

        With a relay set (a Redis backplane), the envelope is handed to the relay instead and
        delivered here only once the relay confirms it (`deliver()`). Fire and forget: a journaled
        topic whose messages are acknowledged to someone goes through `publish_durable()` instead.
        """
        envelope = self.stamp(topic, message, key=key, match_text=match_text, source=source)
        if self._relay is not None:
            self._relay(envelope)
        else:
            self.deliver(envelope)
        return envelope

    def stamp(
        self,
        topic: str,
        message: BaseModel,
        *,
        key: str | None = None,
        match_text: str = "",
        source: str = "",
        dedupe_key: str | None = None,
    ) -> Envelope:
        """Assign the topic's next `seq` and encode the message, delivering nothing yet."""
        state = self._topic(topic)
        seq = max(state.seq, state.assigned) + 1
        state.assigned = seq
        stamped = message.model_copy(update={"seq": seq, "epoch": state.epoch})
        return Envelope(
            topic=topic,
            seq=seq,
            epoch=state.epoch,
            text=stamped.model_dump_json(),
            key=key,
            match_text=match_text.lower(),
            source=source.lower(),
            dedupe_key=dedupe_key,
        )

    async def publish_durable(
        self,
        topic: str,
        message: BaseModel,
        commit: Callable[[Envelope], None],
        *,
        key: str | None = None,
        match_text: str = "",
        source: str = "",
        dedupe_key: str | None = None,
        executor: Executor | None = None,
    ) -> Envelope:
        """Publish so that no socket ever sees a `seq` that a crash could hand out again.

        Order: stamp -> (with a backplane) wait for its confirmation -> `commit(envelope)` in a
        worker thread (the caller stores the item and journals the envelope in one transaction)
        -> fan out here. The caller acknowledges only after this returns. One caller at a time per
        topic (the news desk holds a lock): a refused envelope gives its seq back.

        Args:
            commit: persists the item and the envelope atomically; raises when it cannot.
            dedupe_key: what makes two publications the same message (news: its URL).
            executor: the thread `commit` runs on; None: the loop's default pool. Give it one of
                its own so that no other work queued there delays an acknowledgement.

        Raises:
            NotPublished: the relay refused it; nothing was published and the seq is free again.
            AlreadyPublished: (a NotPublished) the relay holds `dedupe_key` under an earlier seq.
            Exception: whatever else the relay's confirmation raised (the envelope may be on the
                backplane; the relay steps down) or `commit` raised (nothing was published).
            PublishedNotStored: the backplane published it (other processes stream it) but the
                commit failed; it is fanned out here too, so this process agrees with the others.

        Trade-off: a message reaches sockets one commit (and one Redis round trip) later than
        with `publish()`; in exchange a journal that lags or a SIGKILL can never make a seq name
        two messages, and a locked database stops acknowledgements instead of losing them.
        """
        envelope = self.stamp(topic, message, key=key, match_text=match_text, source=source, dedupe_key=dedupe_key)
        if self._confirm is not None:
            try:
                await self._confirm(envelope)
            except NotPublished:
                self.release(envelope)
                raise
            # Any other failure leaves the envelope's fate unknown: the relay steps down, and the
            # next leader continues from what the backplane really holds.
        try:
            await asyncio.get_running_loop().run_in_executor(executor, commit, envelope)
        except Exception as exc:
            if self._confirm is None:
                self.release(envelope)
                raise
            self.deliver(envelope, journaled=True)
            raise PublishedNotStored(envelope, exc) from exc
        self.deliver(envelope, journaled=True)
        return envelope

    def release(self, envelope: Envelope) -> None:
        """Give back the seq of an envelope that was stamped but never published."""
        state = self._topic(envelope.topic)
        if state.assigned == envelope.seq and state.epoch == envelope.epoch:
            state.assigned = max(state.seq, envelope.seq - 1)

    def deliver(self, envelope: Envelope, *, journaled: bool = False) -> None:
        """Record, journal and fan out an envelope this process published (the relay's confirmation).

        Args:
            journaled: the caller has journaled it already (`publish_durable`).
        """
        self.ingest(envelope)
        if not journaled and self._journal is not None and envelope.topic in self._journaled:
            self._journal.append(envelope)

    def ingest(self, envelope: Envelope) -> bool:
        """Record an already-stamped envelope and fan it out (used by publish and by a backplane).

        Returns False (and does nothing) for an envelope the topic holds already.
        """
        state = self._topic(envelope.topic)
        if envelope.epoch != state.epoch:
            logger.info("bus %s: epoch %s -> %s, history reset", envelope.topic, state.epoch, envelope.epoch)
            state.epoch = envelope.epoch
            state.history.clear()
            state.snapshot.clear()
        elif envelope.seq <= state.seq and envelope.seq != 0:
            return False  # a duplicate delivered twice by a backplane
        state.seq = envelope.seq
        state.history.append(envelope)
        state.snapshot[envelope.key] = envelope
        for listener in tuple(state.listeners):
            try:
                listener(envelope)
            except Exception:
                logger.exception("bus %s: listener %r failed; it stays registered", envelope.topic, listener)
        return True

    def set_relay(self, relay: Callable[[Envelope], None] | None, confirm: Confirm | None = None) -> None:
        """Hand every published envelope to `relay`, which calls `deliver()` once it is durable.

        Args:
            confirm: awaited by `publish_durable()`; returns once the envelope is stored on the
                backplane (without delivering it), raises when it was not.
        """
        self._relay = relay
        self._confirm = confirm

    @property
    def relayed(self) -> bool:
        """Return whether messages travel through a relay (a cluster), so this bus may lag another's."""
        return self._relay is not None

    def discard_unconfirmed(self) -> None:
        """Forget seqs handed out but never confirmed by the relay (a leader stepping down)."""
        for state in self._topics.values():
            state.assigned = state.seq

    def restart_epoch(self, topic: str) -> str:
        """Start a new epoch for `topic`: its history was lost (e.g. the backplane lost its state)."""
        state = self._topic(topic)
        state.epoch = uuid.uuid4().hex[:12]
        state.history.clear()
        state.snapshot.clear()
        return state.epoch

    def add_listener(self, topic: str, listener: Listener) -> None:
        """Register a non-blocking listener until `remove_listener`."""
        self._topic(topic).listeners.append(listener)

    def remove_listener(self, topic: str, listener: Listener) -> None:
        """Unregister a listener added with `add_listener`."""
        self._topic(topic).listeners.remove(listener)

    @contextmanager
    def listen(self, topic: str, listener: Listener) -> Iterator[None]:
        """Register a non-blocking listener for the duration of the `with` block."""
        self.add_listener(topic, listener)
        try:
            yield
        finally:
            self.remove_listener(topic, listener)

    def snapshot(self, topic: str) -> list[Envelope]:
        """Return the latest message per key, oldest first."""
        return sorted(self._topic(topic).snapshot.values(), key=lambda env: env.seq)

    def latest(self, topic: str, key: str | None = None) -> Envelope | None:
        """Return the latest message of a topic (for keyed topics, of one key)."""
        return self._topic(topic).snapshot.get(key)

    def history(self, topic: str) -> list[Envelope]:
        """Return the retained history, oldest first."""
        return list(self._topic(topic).history)

    def since(self, topic: str, seq: int, epoch: str | None = None) -> list[Envelope]:
        """Return retained messages with `seq` greater than `seq`, in order.

        Raises:
            HistoryGap: `seq` is older than the history kept, or `epoch` names a lost history.
        """
        state = self._topic(topic)
        if epoch is not None and epoch != state.epoch:
            raise HistoryGap(topic, seq, state.history[0].seq if state.history else None)
        if seq >= state.seq:
            return []
        oldest = state.history[0].seq if state.history else state.seq + 1
        if seq < oldest - 1:
            raise HistoryGap(topic, seq, oldest)
        return [env for env in state.history if env.seq > seq]

    def replay_snapshot_since(self, topic: str, seq: int, epoch: str | None = None) -> list[Envelope]:
        """Return the snapshot entries newer than `seq` (the whole snapshot if `epoch` changed)."""
        entries = self.snapshot(topic)
        if epoch is not None and epoch != self._topic(topic).epoch:
            return entries
        return [env for env in entries if env.seq > seq]

    def describe(self) -> dict[str, Any]:
        """Return per-topic seq, epoch, history length and listener count (for /metrics and tests)."""
        return {
            name: {
                "seq": t.seq,
                "epoch": t.epoch,
                "history": len(t.history),
                "listeners": len(t.listeners),
            }
            for name, t in self._topics.items()
        }
