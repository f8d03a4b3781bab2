"""What the application needs from the layers above it, as narrow interfaces.

The socket registry is a transport (`ws/`), built in `app.py` and handed down: the application reads
its counters for `system_status` and `/metrics` and closes it at shutdown, and never imports `ws/`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

__all__ = ["EndpointView", "OpenSockets", "OutboxView", "SessionView", "SocketStatsView"]


class SocketStatsView(Protocol):
    """The registry's running counters."""

    @property
    def connections(self) -> Mapping[str, int]: ...

    @property
    def messages_sent(self) -> int: ...

    @property
    def messages_sent_direct(self) -> int: ...

    @property
    def messages_received(self) -> int: ...

    @property
    def errors_sent(self) -> int: ...

    @property
    def slow_consumer_closes(self) -> int: ...

    @property
    def refused_connections(self) -> int: ...

    @property
    def idle_closes(self) -> int: ...

    @property
    def coalesced(self) -> int: ...

    @property
    def dropped_on_close(self) -> int: ...


class EndpointView(Protocol):
    """The endpoint a session serves."""

    @property
    def path(self) -> str: ...


class OutboxView(Protocol):
    """A session's queue of frames waiting to be sent."""

    @property
    def coalesced(self) -> int: ...

    def __len__(self) -> int: ...


class SessionView(Protocol):
    """One open socket, as monitoring sees it."""

    @property
    def spec(self) -> EndpointView: ...

    @property
    def outbox(self) -> OutboxView: ...


class OpenSockets(Protocol):
    """The open sockets of this process: counted for monitoring, closed at shutdown."""

    @property
    def sessions(self) -> Collection[SessionView]: ...

    @property
    def stats(self) -> SocketStatsView: ...

    async def close_all(self, code: int = ..., reason: str = ...) -> None: ...
