"""Run a coroutine synchronously as far as it goes, and hand over the rest only if it suspends.

An ASGI `websocket.send` is a coroutine, but uvicorn's implementations finish it without suspending
while the transport takes data (websockets-sansio awaits an already-set `writable` event, then calls
`transport.write`). Stepping it once from plain code writes the frame with no task, no future and no
queue; only a send that meets a paused transport (a full socket buffer) suspends, and its remainder
is then awaited by whoever takes the returned `Pending`.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["Pending", "step"]


class Pending:
    """The rest of a coroutine that suspended in `step()`: await it (once) to finish it.

    Awaiting re-yields the future the coroutine suspended on to the awaiting task, then forwards
    values and exceptions (cancellation included) in both directions, as `await coro` would have.
    """

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, None], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, None]:
        coro, value = self._coro, self._yielded
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # forwarded into the coroutine, as `await` would
                try:
                    value = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coro.send(sent)
                except StopIteration:
                    return

    def close(self) -> None:
        """Abandon the rest of the coroutine (it sees GeneratorExit where it suspended)."""
        self._coro.close()


def step(coro: Coroutine[Any, Any, None]) -> Pending | None:
    """Run `coro` until it finishes (return None) or first suspends (return its `Pending` rest).

    Raises:
        Exception: whatever `coro` raised before suspending.
    """
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    return Pending(coro, yielded)
