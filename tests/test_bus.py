from __future__ import annotations

import pytest

from core.bus import Bus, Envelope, HistoryGap, NotPublished, PublishedNotStored
from core.protocol import PongMessage, SystemStatusMessage


class _Msg(PongMessage):
    seq: int | None = None
    epoch: str | None = None


def test_publish_assigns_strictly_increasing_seq_per_topic():
    bus = Bus()
    seqs = [bus.publish("news", _Msg()).seq for _ in range(3)]
    assert seqs == [1, 2, 3]
    assert bus.publish("market", _Msg(), key="BTC").seq == 1


def test_publish_encodes_once_and_every_listener_gets_the_same_text():
    bus = Bus()
    got: list[str] = []
    with bus.listen("news", lambda env: got.append(env.text)), bus.listen("news", lambda env: got.append(env.text)):
        env = bus.publish("news", _Msg())
    assert got[0] is got[1] is env.text
    assert '"seq":1' in env.text and f'"epoch":"{env.epoch}"' in env.text


def test_snapshot_keeps_latest_per_key():
    bus = Bus()
    bus.publish("market", _Msg(id="a"), key="BTC")
    bus.publish("market", _Msg(id="b"), key="ETH")
    bus.publish("market", _Msg(id="c"), key="BTC")
    assert [(e.key, e.seq) for e in bus.snapshot("market")] == [("ETH", 2), ("BTC", 3)]


def test_since_replays_in_order_and_raises_gap_past_history():
    bus = Bus(history_size=10)
    for _ in range(15):
        bus.publish("news", _Msg())
    assert [e.seq for e in bus.since("news", 12)] == [13, 14, 15]
    assert bus.since("news", 15) == []
    with pytest.raises(HistoryGap) as gap:
        bus.since("news", 3)
    assert gap.value.oldest == 6


def test_since_with_a_foreign_epoch_is_a_gap():
    bus = Bus()
    bus.publish("news", _Msg())
    with pytest.raises(HistoryGap):
        bus.since("news", 0, epoch="not-this-one")


def test_listener_that_raises_does_not_stop_fan_out():
    bus = Bus()
    got: list[int] = []

    def broken(_env):
        raise RuntimeError("boom")

    with bus.listen("news", broken), bus.listen("news", lambda env: got.append(env.seq)):
        bus.publish("news", _Msg())
    assert got == [1]


def test_unknown_topic_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="market"):
        Bus().publish("weather", _Msg())


def test_journal_restores_seq_and_epoch(tmp_path):
    from core.store import Store

    store = Store(data_dir=tmp_path)
    first = Bus(journal=store)
    for _ in range(3):
        first.publish("news", _Msg())
    second = Bus(journal=Store(data_dir=tmp_path))
    assert second.epoch("news") == first.epoch("news")
    assert second.last_seq("news") == 3
    assert [e.seq for e in second.since("news", 1)] == [2, 3]
    assert second.publish("news", _Msg()).seq == 4


class _DiskFull(Exception):
    pass


def _failing_commit(_envelope: Envelope) -> None:
    raise _DiskFull("no space left")


async def test_publish_durable_fans_out_only_after_the_commit():
    bus = Bus()
    order: list[str] = []
    bus.add_listener("news", lambda env: order.append(f"socket {env.seq}"))
    await bus.publish_durable("news", _Msg(), lambda env: order.append(f"commit {env.seq}"))
    assert order == ["commit 1", "socket 1"]


async def test_publish_durable_failed_commit_publishes_nothing_and_frees_the_seq():
    bus = Bus()
    got: list[int] = []
    bus.add_listener("news", lambda env: got.append(env.seq))
    with pytest.raises(_DiskFull):
        await bus.publish_durable("news", _Msg(), _failing_commit)
    envelope = await bus.publish_durable("news", _Msg(), lambda env: None)
    assert got == [1] and envelope.seq == 1


async def test_publish_durable_refused_by_the_relay_frees_the_seq():
    bus = Bus()

    async def refuse(_envelope: Envelope) -> None:
        raise NotPublished("queue full")

    bus.set_relay(lambda env: None, refuse)
    with pytest.raises(NotPublished):
        await bus.publish_durable("news", _Msg(), lambda env: None)
    assert bus.stamp("news", _Msg()).seq == 1


async def test_publish_durable_confirmed_but_not_committed_is_delivered_and_says_so():
    bus = Bus()
    got: list[int] = []
    bus.add_listener("news", lambda env: got.append(env.seq))

    async def confirm(_envelope: Envelope) -> None:
        return None

    bus.set_relay(lambda env: None, confirm)
    with pytest.raises(PublishedNotStored):
        await bus.publish_durable("news", _Msg(), _failing_commit)
    assert got == [1]  # the other processes stream it: this one agrees, and never reuses seq 1


def test_system_status_keeps_sections_at_top_level():
    assert {"ai_models", "data_sources", "database", "stats", "agent_running"} <= set(SystemStatusMessage.model_fields)


def test_package_exports_every_public_member():
    import core.bus

    # Submodules (the Redis backend is imported by name) and `annotations` are not API.
    public = {name for name, value in vars(core.bus).items()
              if not name.startswith("_") and type(value).__name__ not in ("module", "_Feature")}
    assert public == set(core.bus.__all__)
