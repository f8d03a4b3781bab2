"""The message bus: topics with seq, epoch, snapshots and history in each process, Redis between processes.

- `local.py`: the in-process `Bus` that stamps, records and fans out every message.
- `redis_backplane.py`: carries the leader's envelopes to every other process (`RedisBackplane`).
- `redis_wire.py`: what it writes to Redis: the publish and settle scripts, an envelope's wire form.
- `leader.py`: elects the one process that publishes (`LeaderElection`).

Importing this package loads no Redis client; the Redis modules are imported by name.
"""

from __future__ import annotations

from core.bus.local import (
    TOPICS,
    AlreadyPublished,
    Bus,
    Envelope,
    HistoryGap,
    Journal,
    Listener,
    NotPublished,
    PublishedNotStored,
)

__all__ = [
    "TOPICS",
    "AlreadyPublished",
    "Bus",
    "Envelope",
    "HistoryGap",
    "Journal",
    "Listener",
    "NotPublished",
    "PublishedNotStored",
]
