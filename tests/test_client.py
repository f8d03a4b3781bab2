"""crypto_hub_client (clients/python/) against the real app, plus its backoff and watchdog in isolation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from crypto_hub_client import (
    Backoff,
    ConnectionRejected,
    ConnectionState,
    HubClient,
    StateChange,
)
from testbed.harness import FAST_ENV, MS, ROOT, AppProcess, free_port, running_app

TIMEOUT = 10_000 * MS
QUICK = Backoff(initial=20 * MS, factor=2.0, cap=200 * MS)


class GateProxy:
    """A TCP forwarder before the app: the test decides when clients may connect, and sees their requests."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.accepting = True
        self.request_lines: list[str] = []
        self._transports: set[asyncio.Transport] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def start(self) -> GateProxy:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def drop_all(self) -> None:
        """Cut every open link abruptly, as a network failure would."""
        for transport in list(self._transports):
            transport.abort()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        self.drop_all()
        await self._server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.transport.abort()  # the client's handshake fails and it backs off
            return
        try:
            head = await reader.read(65536)
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.request_lines.append(head.split(b"\r\n", 1)[0].decode())
        links = {writer.transport, up_writer.transport}
        self._transports |= links  # type: ignore[arg-type]
        up_writer.write(head)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._transports -= links  # type: ignore[arg-type]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.transport.abort()


@pytest.fixture
async def restartable_app(tmp_path: Path) -> AsyncIterator[AppProcess]:
    app = AppProcess(port=free_port(), data_dir=tmp_path, env=dict(FAST_ENV))
    await asyncio.to_thread(app.start)
    try:
        yield app
    finally:
        await asyncio.to_thread(app.stop)


@pytest.fixture
async def proxy(restartable_app: AppProcess) -> AsyncIterator[GateProxy]:
    gate = await GateProxy(restartable_app.port).start()
    try:
        yield gate
    finally:
        await gate.close()


async def post_news(app: AppProcess, title: str) -> int:
    response = await asyncio.to_thread(app.post_news, title=title)
    assert response.status_code == 201, response.text
    return int(response.json()["seq"])


async def next_message(client: HubClient, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT):
        while True:
            message = await client.recv()
            if wanted(message):
                return message


async def wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(10 * MS)


def is_news(message: dict[str, Any]) -> bool:
    return message["type"] == "news"


def is_filter_ack(message: dict[str, Any]) -> bool:
    return message["type"] == "ack" and message["action"] == "filter"


# ---------------------------------------------------------------- streams


async def test_client_receives_prices_for_its_symbols(app_server: AppProcess) -> None:
    async with HubClient(app_server.ws("/ws/market_data"), symbols=["BTC", "eth"]) as client:
        prices = [await next_message(client, lambda m: m["type"] == "price_update") for _ in range(8)]
    assert {m["data"]["symbol"] for m in prices} == {"BTC", "ETH"}
    assert all(m["source"] == "simulator" for m in prices)


async def test_client_resumes_news_across_a_server_restart(
    restartable_app: AppProcess, proxy: GateProxy
) -> None:
    """News published while the client is away are replayed; every item arrives once, in seq order."""
    app = restartable_app
    async with HubClient(proxy.ws("/ws/news"), backoff=QUICK) as client:
        await client.wait_connected(TIMEOUT)
        await post_news(app, "before restart")
        received = [await next_message(client, is_news)]
        proxy.accepting = False  # hold the client off until the gap news exist
        await asyncio.to_thread(app.stop)
        await asyncio.to_thread(app.start)
        await post_news(app, "while away 1")
        await post_news(app, "while away 2")
        proxy.accepting = True
        await wait_until(lambda: client.stats.connects == 2 and client.state is ConnectionState.OPEN)
        await post_news(app, "after reconnect")
        while received[-1]["data"]["title"] != "after reconnect":
            received.append(await next_message(client, is_news))
        with contextlib.suppress(TimeoutError):  # a duplicate would show up now
            received.append(await client.recv(timeout=300 * MS))
    titles = [m["data"]["title"] for m in received]
    assert titles == ["before restart", "while away 1", "while away 2", "after reconnect"]
    assert [m["seq"] for m in received] == [1, 2, 3, 4]
    assert f"since=1&epoch={received[0]['epoch']}" in proxy.request_lines[-1]


async def test_client_resends_its_filter_after_a_reconnect(
    restartable_app: AppProcess, proxy: GateProxy
) -> None:
    client = HubClient(proxy.ws("/ws/news"), keywords=["Bitcoin"], backoff=QUICK, filter_locally=False)
    async with client:
        await next_message(client, is_filter_ack)
        proxy.drop_all()
        ack = await next_message(client, is_filter_ack)
        await post_news(restartable_app, "ethereum only")
        await post_news(restartable_app, "bitcoin rallies")
        news = await next_message(client, is_news)
    assert client.stats.connects == 2
    assert ack["data"]["keywords"] == ["bitcoin"]
    assert news["data"]["title"] == "bitcoin rallies"


def test_cli_prints_the_market_stream_as_json_lines(app_server: AppProcess) -> None:
    command = [sys.executable, "-m", "crypto_hub_client", "market", "--symbols", "BTC",
               "--url", f"ws://127.0.0.1:{app_server.port}", "--count", "3"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT * 3)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stderr
    assert [m["type"] for m in lines] == ["ack", "price_update", "price_update"]
    assert {m["data"]["symbol"] for m in lines[1:]} == {"BTC"}


async def test_client_drops_replayed_duplicates_and_follows_a_new_epoch() -> None:
    """A server that replays too much (2 again) and then loses its history (epoch B) is handled."""
    paths: list[str] = []

    async def replay(connection: ServerConnection) -> None:
        assert connection.request is not None
        paths.append(connection.request.path)
        frames = [(1, "A"), (2, "A")] if len(paths) == 1 else [(2, "A"), (3, "A"), (1, "B")]
        for seq, epoch in frames:
            await connection.send(json.dumps({"type": "news", "seq": seq, "epoch": epoch, "data": {}}))
        if len(paths) == 1:
            await connection.close(1012, "restarting")
        await connection.wait_closed()

    async with serve(replay, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with HubClient(f"ws://127.0.0.1:{port}/ws/news", backoff=QUICK) as client:
            got = [await client.recv(timeout=TIMEOUT) for _ in range(4)]
    assert [(m["seq"], m["epoch"]) for m in got] == [(1, "A"), (2, "A"), (3, "A"), (1, "B")]
    assert paths == ["/ws/news", "/ws/news?since=2&epoch=A"]
    assert client.stats.duplicates_dropped == 1


# ---------------------------------------------------------------- reconnect policy


def test_backoff_delays_have_full_jitter_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.5, factor=2.0, cap=8.0)
    delays = [backoff.delay(n, random.Random(1234)) for n in range(12)]
    expected = [random.Random(1234).uniform(0.0, min(8.0, 0.5 * 2**n)) for n in range(12)]
    assert delays == expected
    assert all(0.0 <= d <= min(8.0, 0.5 * 2**n) for n, d in enumerate(delays))


def test_backoff_spreads_capped_delays_over_the_whole_window() -> None:
    rng = random.Random(7)
    samples = [Backoff(cap=8.0).delay(40, rng) for _ in range(2000)]
    assert max(samples) <= 8.0
    assert min(samples) < 0.2 and max(samples) > 7.8
    assert 3.6 < sum(samples) / len(samples) < 4.4


def test_backoff_ceiling_survives_huge_attempt_counts() -> None:
    assert Backoff(initial=1.0, factor=10.0, cap=30.0).ceiling(100_000) == 30.0


async def test_client_backs_off_with_seeded_jitter_while_the_server_is_down() -> None:
    changes: list[StateChange] = []
    backoff = Backoff(initial=5 * MS, factor=2.0, cap=40 * MS)
    client = HubClient(f"ws://127.0.0.1:{free_port()}/ws/news", backoff=backoff, rng=random.Random(99),
                       on_state_change=changes.append)
    async with client:
        await wait_until(lambda: sum(c.state is ConnectionState.BACKING_OFF for c in changes) >= 6)
    delays = [c.delay for c in changes if c.state is ConnectionState.BACKING_OFF][:6]
    reference = random.Random(99)
    assert delays == [backoff.delay(n, reference) for n in range(6)]
    assert changes[-1].state is ConnectionState.CLOSED


async def test_client_gives_up_when_the_server_refuses_its_token(tmp_path: Path) -> None:
    with running_app(tmp_path, API_TOKENS="s3cret") as app:
        async with HubClient(app.ws("/ws/news"), backoff=QUICK) as client:
            refusal = await client.recv(timeout=TIMEOUT)
            with pytest.raises(ConnectionRejected) as rejected:
                await client.recv(timeout=TIMEOUT)
        async with HubClient(app.ws("/ws/news"), token="s3cret") as client:
            await client.wait_connected(TIMEOUT)
    assert refusal["error"]["code"] == "AUTH_ERROR"
    assert rejected.value.close_code == 1008


def test_client_package_exports_what_it_names() -> None:
    import crypto_hub_client

    assert all(hasattr(crypto_hub_client, name) for name in crypto_hub_client.__all__)


# ---------------------------------------------------------------- heartbeat and close


async def test_watchdog_drops_a_silent_connection_and_reconnects() -> None:
    handshakes = 0

    async def say_nothing(connection: ServerConnection) -> None:
        nonlocal handshakes
        handshakes += 1
        await connection.wait_closed()

    async with serve(say_nothing, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        client = HubClient(f"ws://127.0.0.1:{port}/ws/news", ping_interval=None,
                           heartbeat_timeout=200 * MS, backoff=QUICK)
        async with client:
            await wait_until(lambda: client.stats.heartbeat_timeouts >= 2)
    assert handshakes >= 2


async def test_watchdog_counts_pongs_on_a_quiet_stream(app_server: AppProcess) -> None:
    client = HubClient(app_server.ws("/ws/news"), ping_interval=100 * MS, ping_timeout=200 * MS,
                       heartbeat_timeout=300 * MS)
    async with client:
        await client.wait_connected(TIMEOUT)
        await asyncio.sleep(1200 * MS)
        assert client.state is ConnectionState.OPEN
    assert client.stats.heartbeat_timeouts == 0 and client.stats.connects == 1


async def test_close_ends_iteration_without_reconnecting(app_server: AppProcess) -> None:
    changes: list[StateChange] = []
    client = HubClient(app_server.ws("/ws/sentiment"), on_state_change=changes.append)
    await client.start()
    await client.wait_connected(TIMEOUT)
    await client.close()
    assert [message async for message in client] == []
    states = [c.state for c in changes]
    assert states == [ConnectionState.CONNECTING, ConnectionState.OPEN, ConnectionState.CLOSED]
