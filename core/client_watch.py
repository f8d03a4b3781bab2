"""Notice when every client seems to be one: all requests and sockets arriving from a single address.

Behind a proxy that is not in `TRUSTED_PROXIES`, every visitor arrives from the proxy's address, so
they all share one REST bucket and one per-address socket quota. Nothing else would tell: the app
works, only its limits are wrong. So the watch counts arrivals (HTTP requests and WebSocket
handshakes) from addresses other than loopback, and once `check_after` of them came from one address
it raises a warning with the fix (logged once, and shown in `system_status.clients`), unless trusted
proxies forwarded that address every time (then it is one visitor, not a proxy). A second address
clears it: there are distinct clients after all.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

__all__ = ["CHECK_AFTER", "ClientView", "ClientWatch"]

logger = logging.getLogger(__name__)

# Arrivals from one address before it is called suspicious: enough that a person trying the Space
# alone for a minute does not trip it, few enough that an operator sees it on the first day.
CHECK_AFTER = 200
# Distinct addresses remembered; the count only needs to say "one" or "many".
MAX_TRACKED = 1024


@dataclass(frozen=True)
class ClientView:
    """What the watch has seen, for `system_status.clients`."""

    trusted_proxies: tuple[str, ...]
    arrivals: int
    distinct_addresses: int
    forwarded_ignored: int
    single_address: str | None
    warning: str | None


class ClientWatch:
    """Counts arrivals per client address; warns when `check_after` arrivals all came from one address."""

    def __init__(self, trusted_proxies: tuple[str, ...], *, check_after: int = CHECK_AFTER) -> None:
        self.trusted_proxies = trusted_proxies
        self.check_after = check_after
        self.arrivals = 0
        self.forwarded_ignored = 0  # arrivals whose X-Forwarded-For came through a hop not trusted
        self.forwarded_believed = 0  # arrivals whose address trusted proxies forwarded
        self._addresses: set[str] = set()
        self.warning: str | None = None

    def observe(self, client: str, *, forwarded_ignored: bool, forwarded_believed: bool = False) -> None:
        """Count one arrival from `client`.

        Args:
            forwarded_ignored: it carried X-Forwarded-For entries that an untrusted hop (the peer itself,
                or a proxy between) forwarded, so they were not believed.
            forwarded_believed: `client` came from X-Forwarded-For through trusted proxies only.
        """
        if _is_loopback(client):
            return  # health checks and local tools, not visitors
        self.arrivals += 1
        if forwarded_ignored:
            self.forwarded_ignored += 1
        elif forwarded_believed:
            self.forwarded_believed += 1
        if len(self._addresses) < MAX_TRACKED:
            self._addresses.add(client)
        if len(self._addresses) > 1:
            if self.warning is not None:
                logger.info("clients: a second address arrived; the single-address warning is cleared")
                self.warning = None
            return
        # Addresses that trusted proxies forwarded, all alike, are one visitor so far: nothing to fix.
        suspicious = self.forwarded_ignored > 0 or self.forwarded_believed == 0
        if self.warning is None and self.arrivals >= self.check_after and suspicious:
            logger.warning("clients: %s", self._explain(client))
            # A visitor's public address is not published in the status; a proxy's private one is.
            self.warning = self._explain("<the address in the server log>" if _is_global(client) else client)

    def _explain(self, address: str) -> str:
        head = (f"all {self.arrivals} requests and sockets so far came from {address}, so every visitor shares "
                "one rate limit and one connection quota.")
        if self.forwarded_ignored:
            trusted = ",".join(self.trusted_proxies) or "empty"
            return (f"{head} They carry X-Forwarded-For, but {address} is not in TRUSTED_PROXIES ({trusted}): "
                    "if it is your proxy, add it or its network, e.g. TRUSTED_PROXIES="
                    + ",".join((*self.trusted_proxies, address)))
        return (f"{head} None carried X-Forwarded-For: if a proxy sits in front of the app, make it send "
                "X-Forwarded-For and add its address to TRUSTED_PROXIES (docs/limits.md)")

    def view(self) -> ClientView:
        """Return the counts, the single address (unless it is a public one) and the warning."""
        single = next(iter(self._addresses)) if len(self._addresses) == 1 else None
        if single is not None and _is_global(single):
            single = None  # a visitor's address is not published; the log names it
        return ClientView(
            trusted_proxies=self.trusted_proxies,
            arrivals=self.arrivals,
            distinct_addresses=len(self._addresses),
            forwarded_ignored=self.forwarded_ignored,
            single_address=single,
            warning=self.warning,
        )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_global(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return False
