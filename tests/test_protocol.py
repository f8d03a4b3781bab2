from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from core.protocol import (
    ErrorCode,
    FilterRequest,
    PingRequest,
    ProtocolError,
    SubscribeRequest,
    error_frame,
    parse_client_message,
)


def test_subscribe_parses_symbols():
    msg = parse_client_message('{"action": "subscribe", "symbols": ["BTC", "ETH"]}')
    assert isinstance(msg, SubscribeRequest) and msg.symbols == ["BTC", "ETH"]


def test_ping_keeps_its_id():
    msg = parse_client_message('{"type": "ping", "id": "abc"}')
    assert isinstance(msg, PingRequest) and msg.id == "abc"


def test_filter_accepts_empty_keywords():
    assert isinstance(parse_client_message('{"action": "filter", "keywords": []}'), FilterRequest)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", ErrorCode.INVALID_MESSAGE),
        ("[1, 2]", ErrorCode.INVALID_MESSAGE),
        ('{"action": "subscribe", "symbols": "BTC"}', ErrorCode.INVALID_MESSAGE),
        ('{"action": "subscribe", "symbols": [1]}', ErrorCode.INVALID_MESSAGE),
        ('{"action": "subscribe", "symbols": []}', ErrorCode.INVALID_MESSAGE),
        ('{"action": "launch"}', ErrorCode.UNKNOWN_ACTION),
        ('{"type": "hello"}', ErrorCode.UNKNOWN_ACTION),
        ("{}", ErrorCode.INVALID_MESSAGE),
    ],
)
def test_bad_frames_raise_protocol_error_with_code(frame, code):
    with pytest.raises(ProtocolError) as err:
        parse_client_message(frame)
    assert err.value.code is code
    assert err.value.message


def test_error_frame_has_documented_shape():
    import json

    frame = json.loads(error_frame(ErrorCode.AUTH_ERROR, "no", "why"))
    assert frame["type"] == "error" and frame["timestamp"].endswith("Z")
    assert frame["error"] == {"code": "AUTH_ERROR", "message": "no", "details": "why"}


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                              max_leaves=12).map(lambda v: __import__("json").dumps(v))))
def test_parser_never_raises_anything_but_protocol_error(frame):
    try:
        parse_client_message(frame)
    except ProtocolError as exc:
        assert exc.code in ErrorCode
