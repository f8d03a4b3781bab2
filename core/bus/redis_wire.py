"""What the Redis backplane writes: its two Lua scripts and their answers, an envelope's wire form, the client.

The key layout and why each script is one atomic step are in `redis_backplane.py`'s docstring.
"""

from __future__ import annotations

import json
from typing import Any

from core.bus.local import TOPICS, Envelope

__all__ = [
    "ALREADY",
    "DEDUPE_WINDOW",
    "FENCED",
    "PUBLISHED",
    "PUBLISH_SCRIPT",
    "SETTLE_SCRIPT",
    "STALE",
    "connect_redis",
    "decode_envelope",
    "encode_envelope",
    "parse_seen",
]

# KEYS: lock, meta, history, latest, ids, id order. ARGV: token, seq, epoch, key, payload, history
# size, channel, dedupe key ("" for none), dedupe window. Returns {code, seq, epoch}: {1, seq} stored
# and published; {2, seq, epoch} the dedupe key went out already (as that seq and epoch); {-1}
# fenced (not the leader's token); {-2, seq} seq not newer than Redis's. The dedupe key is looked
# up first, without the fence: a retry whose first try went out learns so even after losing office.
PUBLISH_SCRIPT = """
if ARGV[8] ~= '' then
  local seen = redis.call('HGET', KEYS[5], ARGV[8])
  if seen then
    local at = string.find(seen, ':', 1, true)
    return {2, tonumber(string.sub(seen, 1, at - 1)), string.sub(seen, at + 1)}
  end
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1, 0} end
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
if epoch == ARGV[3] then
  if tonumber(ARGV[2]) <= seq then return {-2, seq} end
else
  redis.call('DEL', KEYS[3], KEYS[4])
end
redis.call('HSET', KEYS[2], 'epoch', ARGV[3], 'seq', ARGV[2])
redis.call('RPUSH', KEYS[3], ARGV[5])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[6]), -1)
redis.call('HSET', KEYS[4], ARGV[4], ARGV[5])
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[5], ARGV[8], ARGV[2] .. ':' .. ARGV[3])
  redis.call('RPUSH', KEYS[6], ARGV[8])
  if redis.call('LLEN', KEYS[6]) > tonumber(ARGV[9]) then redis.call('HDEL', KEYS[5], redis.call('LPOP', KEYS[6])) end
end
redis.call('PUBLISH', ARGV[7], ARGV[5])
return {1, tonumber(ARGV[2])}
"""
# KEYS: lock, ids. ARGV: token, dedupe key. Settles the fate of a publication whose answer was lost:
# once the lock no longer holds this token, no earlier try of it can still be stored (each one
# checks the token), so the dedupe key's entry is the final word. Returns "seq:epoch" or nil.
SETTLE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('HGET', KEYS[2], ARGV[2])
"""

PUBLISHED, ALREADY, FENCED, STALE = 1, 2, -1, -2
DEDUPE_WINDOW = 5000  # dedupe keys Redis remembers per topic (the journal keeps as many news items)


def connect_redis(url: str, *, socket_timeout_s: float = 3.0) -> Any:
    """Return an asyncio Redis client that fails fast when the server is gone."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    return Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=1.0,
        health_check_interval=5,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
    )


def parse_seen(seen: bytes | str) -> tuple[int, str]:
    """Split a dedupe entry "seq:epoch" (as the publish script writes it)."""
    text = seen.decode() if isinstance(seen, bytes) else seen
    seq, _, epoch = text.partition(":")
    return int(seq), epoch


def encode_envelope(envelope: Envelope, origin: str) -> str:
    """Serialise an envelope (without its in-process model) for Redis."""
    return json.dumps(
        {
            "o": origin,
            "t": envelope.topic,
            "s": envelope.seq,
            "e": envelope.epoch,
            "k": envelope.key,
            "m": envelope.match_text,
            "c": envelope.source,
            "x": envelope.text,
        },
        separators=(",", ":"),
    )


def decode_envelope(payload: bytes | str) -> tuple[Envelope, str]:
    """Return the envelope and the process id that published it.

    Raises:
        ValueError: the payload is not an envelope (wrong JSON, missing field, unknown topic).
    """
    raw = json.loads(payload)
    try:
        envelope = Envelope(
            topic=str(raw["t"]),
            seq=int(raw["s"]),
            epoch=str(raw["e"]),
            text=str(raw["x"]),
            key=raw.get("k"),
            match_text=str(raw.get("m", "")),
            source=str(raw.get("c", "")),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a backplane envelope: {exc!r}") from exc
    if envelope.topic not in TOPICS:
        raise ValueError(f"unknown topic {envelope.topic!r}, expected one of {', '.join(TOPICS)}")
    return envelope, str(raw.get("o", ""))
