"""Who the client is behind proxies, on a real app: trusted hops, spoofed headers, the single-address warning."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from core.client_address import TrustedProxies
from core.client_watch import CHECK_AFTER, ClientWatch
from core.config import Settings
from testbed.harness import AppProcess, recv_json, running_app
from testbed.services import wait_for

# The Space proxy's address as reports from Spaces show it (an internal 10.x peer).
SPACE_PROXY = "10.16.3.80"


def _from(forwarded: str) -> dict[str, dict[str, str]]:
    return {"additional_headers": {"X-Forwarded-For": forwarded}}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    # The test client is the loopback peer, trusted by default: it plays the proxy next to the app.
    with running_app(tmp_path_factory.mktemp("clients"), MAX_CONNECTIONS_PER_IP="1", REST_BURST="1",
                     REST_RATE_PER_S="0.1") as proc:
        yield proc


async def test_forwarded_clients_behind_a_trusted_proxy_are_told_apart(app):
    async with websockets.connect(app.ws("/ws/news"), **_from("203.0.113.1")):
        async with websockets.connect(app.ws("/ws/sentiment"), **_from("203.0.113.2")) as second:
            assert (await recv_json(second))["type"] == "sentiment_update"


async def test_an_address_the_client_prepends_does_not_choose_its_identity(app):
    # Both came through the untrusted hop 198.51.100.9, which appended what it saw; the left entry is made up.
    async with websockets.connect(app.ws("/ws/news"), **_from("203.0.113.7, 198.51.100.9")):
        async with websockets.connect(app.ws("/ws/news"), **_from("203.0.113.8, 198.51.100.9")) as second:
            error = await recv_json(second)
    assert error["error"]["code"] == "TOO_MANY_CONNECTIONS"


def test_rest_buckets_follow_the_forwarded_client(app):
    def status(forwarded: str) -> int:
        return httpx.get(f"{app.http}/api/prices", headers={"X-Forwarded-For": forwarded}, timeout=10).status_code

    assert [status("203.0.113.20"), status("203.0.113.20"), status("203.0.113.21")] == [200, 429, 200]
    assert status("203.0.113.99, 198.51.100.30") == 200 and status("203.0.113.98, 198.51.100.30") == 429


def _arrive_through_an_untrusted_proxy(app: AppProcess, count: int) -> None:
    with httpx.Client(base_url=app.http, timeout=10) as client:
        for i in range(count):
            client.get("/health", headers={"X-Forwarded-For": f"203.0.113.{i % 250}, {SPACE_PROXY}"})


def _clients(app: AppProcess) -> dict[str, Any]:
    return httpx.get(f"{app.http}/api/status", timeout=10).json()["clients"]  # type: ignore[no-any-return]


def test_every_client_from_one_untrusted_proxy_raises_a_warning_with_the_fix(tmp_path):
    with running_app(tmp_path) as app:
        _arrive_through_an_untrusted_proxy(app, CHECK_AFTER)
        clients = wait_for(lambda: (c := _clients(app))["warning"] and c, 10)
    assert clients["single_address"] == SPACE_PROXY and clients["forwarded_ignored"] == CHECK_AFTER
    assert f"TRUSTED_PROXIES=127.0.0.1,::1,{SPACE_PROXY}" in clients["warning"]


def test_trusting_the_proxy_network_clears_the_single_address_case(tmp_path):
    with running_app(tmp_path, TRUSTED_PROXIES="127.0.0.1,10.0.0.0/8") as app:
        _arrive_through_an_untrusted_proxy(app, CHECK_AFTER)
        clients = wait_for(lambda: (c := _clients(app))["arrivals"] >= CHECK_AFTER and c, 10)
    assert clients["warning"] is None and clients["distinct_addresses"] > 1


def test_the_space_default_trusts_the_space_proxy_address():
    assert SPACE_PROXY in TrustedProxies(Settings(space_id="owner/hub").trusted_proxies)
    assert SPACE_PROXY not in TrustedProxies(Settings().trusted_proxies)


def test_a_public_single_address_is_not_published():
    watch = ClientWatch(("127.0.0.1",), check_after=3)
    for _ in range(3):
        watch.observe("8.8.8.8", forwarded_ignored=False)
    view = watch.view()
    assert view.warning is not None and "8.8.8.8" not in view.warning and view.single_address is None


def test_a_second_address_clears_the_warning():
    watch = ClientWatch(("127.0.0.1",), check_after=2)
    for address in ("10.0.0.5", "10.0.0.5", "10.0.0.6"):
        watch.observe(address, forwarded_ignored=True)
    assert watch.view().warning is None and watch.view().distinct_addresses == 2


def test_one_visitor_forwarded_by_trusted_proxies_raises_no_warning():
    watch = ClientWatch(("127.0.0.1",), check_after=2)
    for _ in range(3):
        watch.observe("203.0.113.4", forwarded_ignored=False, forwarded_believed=True)
    assert watch.view().warning is None and watch.view().distinct_addresses == 1


def test_start_on_a_space_warns_when_the_private_networks_are_not_trusted(tmp_path):
    with running_app(tmp_path, SPACE_ID="owner/hub", TRUSTED_PROXIES="127.0.0.1") as app:
        log = wait_for(lambda: "leaves out the private networks" in app.log() and app.log(), 10)
    assert "X-Forwarded-For believed from 127.0.0.1" in log
