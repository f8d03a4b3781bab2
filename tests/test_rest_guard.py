"""The REST guard against a real app: rate limits, the admin check and the body limit come before the body."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.token_bucket import ClientBudgets
from testbed.harness import MS, AppProcess, running_app

TOKEN = "test-admin-token"
BIG = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    """An app with a small burst and a 4 KB body limit, so a test reaches each limit in a few requests."""
    with running_app(tmp_path_factory.mktemp("guard"), REST_RATE_PER_S="0.5", REST_BURST="3",
                     MAX_BODY_BYTES="4096") as app:
        yield app


def _raw(app: AppProcess, head: str, body: bytes = b"", source: str = "127.0.0.1") -> tuple[int, str]:
    """Send a request head (and part of a body) from `source`; return the status and response text."""
    with socket.create_connection(("127.0.0.1", app.port), timeout=5000 * MS, source_address=(source, 0)) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        reply = sock.recv(65536).decode(errors="replace")
    return int(reply.split(" ", 2)[1]), reply


def _ingest_head(length: int, token: str | None = None, chunked: bool = False) -> str:
    lines = ["POST /api/news HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return "\r\n".join(lines) + "\r\n"


def _client_from(address: str) -> httpx.Client:
    # Each test is its own client (its own loopback address), so buckets do not carry over.
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=5000 * MS)


def test_rest_burst_is_refused_with_429_and_retry_after(guarded: AppProcess):
    with _client_from("127.0.0.2") as client:
        replies = [client.get(f"{guarded.http}/api/prices") for _ in range(5)]
    assert [r.status_code for r in replies[:3]] == [200, 200, 200]
    assert replies[-1].status_code == 429
    assert int(replies[-1].headers["Retry-After"]) >= 1


def test_admin_requests_are_not_rate_limited(guarded: AppProcess):
    codes = [guarded.post_news(title=f"operator {i}").status_code for i in range(6)]
    assert codes == [201] * 6


def test_anonymous_ingest_is_refused_401_before_its_body_is_read(guarded: AppProcess):
    """20 MB declared and not one byte sent: the answer comes from the headers alone."""
    status, reply = _raw(guarded, _ingest_head(BIG), source="127.0.0.3")
    assert status == 401 and "www-authenticate: bearer" in reply.lower()


def test_ingest_with_ingestion_disabled_is_refused_403_before_its_body_is_read(tmp_path: Path):
    with running_app(tmp_path, ADMIN_TOKEN="") as app:
        status, _ = _raw(app, _ingest_head(BIG), source="127.0.0.4")
    assert status == 403


def test_declared_oversized_body_is_refused_413_unread(guarded: AppProcess):
    status, _ = _raw(guarded, _ingest_head(BIG, TOKEN))
    assert status == 413


def test_streamed_oversized_body_is_cut_off_at_the_limit_with_413(guarded: AppProcess):
    """A chunked body with no end: the server answers once it has read past the limit."""
    chunk = b"x" * 2048
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4))  # 8 KB, no final chunk
    status, _ = _raw(guarded, _ingest_head(0, TOKEN, chunked=True), body)
    assert status == 413


def test_other_clients_are_served_while_one_is_refused(guarded: AppProcess):
    with _client_from("127.0.0.5") as greedy, _client_from("127.0.0.6") as bystander:
        for _ in range(5):
            greedy.get(f"{guarded.http}/api/prices")
        assert greedy.get(f"{guarded.http}/api/prices").status_code == 429
        assert bystander.get(f"{guarded.http}/api/prices").status_code == 200


def test_body_within_the_limit_is_ingested(guarded: AppProcess):
    assert guarded.post_news(title="small enough", description="d" * 1000).status_code == 201


def test_forgotten_clients_keep_memory_bounded():
    budgets = ClientBudgets(rate_per_s=1, burst=1, max_clients=3)
    for i in range(10):
        budgets.charge(f"10.0.0.{i}")
    assert len(budgets._buckets) == 3
