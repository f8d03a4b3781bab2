"""ws/direct.py: frames built once are the bytes websockets itself would write."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from ws.direct import DirectWriter, text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 70_001])
def test_text_frame_matches_websockets_serialisation_at_every_length_boundary(size: int) -> None:
    text = "é" * (size // 2) + "a" * (size % 2)  # two UTF-8 bytes per é: lengths are in bytes
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert text_frame(text) == expected


def test_direct_writer_is_refused_without_the_servers_own_send() -> None:
    assert DirectWriter.for_scope({"type": "websocket"}) is None

    async def plain_send(message: object) -> None: ...

    assert DirectWriter.for_scope({"type": "websocket", "hub.raw_send": plain_send}) is None
