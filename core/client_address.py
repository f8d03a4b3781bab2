"""Who the client is: the peer's address, or the address a trusted proxy forwarded in `X-Forwarded-For`.

One ASGI middleware, outermost, sets `scope["client"]` for every HTTP request and WebSocket, so the
REST guard's buckets and the sockets' per-address quota read the same address. `X-Forwarded-For` is
believed only from a peer in `TRUSTED_PROXIES` (addresses or networks), and the client is the
rightmost entry that is not itself a trusted proxy: each proxy appends the address it saw, so what
a client writes into the header itself stays to the left and cannot choose its identity
(uvicorn's `ProxyHeadersMiddleware` reads it the same way). `X-Forwarded-Proto` from a trusted peer
sets the scheme.

Hugging Face does not document how the Space proxy forwards client addresses. Reports from Spaces
(for example embeddings-benchmark/mteb#4754) show the app's peer is an internal address such as
`10.16.3.80`, with the visitor in `X-Forwarded-For`. So on a Space (`SPACE_ID` set) the default
trusts loopback and the private networks, where that proxy connects from; elsewhere only loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from core.asgi import ASGIApp, Receive, Scope, Send
from core.client_watch import ClientWatch

__all__ = [
    "LOOPBACK",
    "PRIVATE_NETWORKS",
    "ClientAddress",
    "TrustedProxies",
    "default_trusted_proxies",
]

LOOPBACK = ("127.0.0.1", "::1")
# RFC 1918 and RFC 4193: where a platform's own proxy connects from, never a visitor on the internet.
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def default_trusted_proxies(space_id: str | None) -> tuple[str, ...]:
    """Return the default `TRUSTED_PROXIES`: loopback, plus the private networks on a Space."""
    return LOOPBACK + PRIVATE_NETWORKS if space_id else LOOPBACK


class TrustedProxies:
    """The peers whose `X-Forwarded-For` is believed: addresses, networks (CIDR) or `*` for any.

    Raises:
        ValueError: an entry is neither an IP address, a network nor `*` (named in the message).
    """

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(entries)
        self.trust_all = "*" in self.entries
        self.networks: list[IpNetwork] = []
        for entry in self.entries:
            if entry == "*":
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"an IP address, a network such as 10.0.0.0/8, or *; got {entry!r}") from None

    def __contains__(self, host: object) -> bool:
        if self.trust_all:
            return True
        if not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client_from(self, peer: str, forwarded: str) -> tuple[str, bool]:
        """Return the client behind trusted `peer` (the rightmost untrusted `X-Forwarded-For` entry), and
        whether entries left of it were passed over (an untrusted hop forwarded them)."""
        hops = [_host_of(hop.strip()) for hop in forwarded.split(",") if hop.strip()]
        if not hops:
            return peer, False
        if self.trust_all:
            return hops[0], False
        for index in range(len(hops) - 1, -1, -1):
            if hops[index] not in self:
                return hops[index], index > 0
        return hops[0], False  # every hop is a trusted proxy: the first is as far as anyone saw


def _host_of(hop: str) -> str:
    """Strip a port (`1.2.3.4:5678`, `[::1]:80`) from one `X-Forwarded-For` entry."""
    if hop.startswith("["):
        return hop[1:hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:
        return hop.split(":", 1)[0]
    return hop


class ClientAddress:
    """ASGI middleware: set `scope["client"]` (and the scheme) from a trusted proxy's headers; tell `watch`."""

    def __init__(self, app: ASGIApp, *, trusted: TrustedProxies, watch: ClientWatch | None = None) -> None:
        self.app = app
        self.trusted = trusted
        self.watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        peer = client[0] if client else ""
        forwarded: list[bytes] = []
        proto: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded.append(value)
            elif name == b"x-forwarded-proto":
                proto = value
        believed = peer in self.trusted
        host, passed_over = peer, bool(forwarded) and not believed
        if believed and forwarded:
            host, passed_over = self.trusted.client_from(peer, b", ".join(forwarded).decode("latin-1"))
            if host != peer:
                scope["client"] = (host, 0)
        if believed and proto is not None:
            scheme = proto.decode("latin-1").strip().lower()
            if scheme in ("http", "https"):
                scope["scheme"] = scheme.replace("http", "ws") if scope["type"] == "websocket" else scheme
        if self.watch is not None:
            self.watch.observe(host, forwarded_ignored=passed_over,
                               forwarded_believed=believed and bool(forwarded) and not passed_over)
        await self.app(scope, receive, send)
