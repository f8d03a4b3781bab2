"""Coverage-guided fuzzing of the client-message parser with atheris (libFuzzer for Python).

    python -m fuzz.fuzz_parser -max_total_time=60 -dict=fuzz/protocol.dict /tmp/corpus fuzz/seeds

`parse_client_message` may only ever raise ProtocolError with a documented code and a message;
anything else (a KeyError, a RecursionError, a pydantic error that escaped) crashes the run and
libFuzzer saves the input as `crash-*`. Accepted messages must encode back to JSON. A bounded run
is part of the tests (tests/test_fuzz_atheris.py); longer runs are for before a release.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["ws", "core"]):  # our code; pydantic-core is native anyway
    from core.protocol import ErrorCode, ProtocolError, parse_client_message


def check_frame(data: bytes) -> None:
    """Parse `data` as a binary and as a text frame; raise on anything but a documented refusal."""
    for frame in (data, data.decode("utf-8", "replace")):
        try:
            message = parse_client_message(frame)
        except ProtocolError as exc:
            if exc.code not in ErrorCode or not exc.message:
                raise AssertionError(f"undocumented refusal {exc.code!r} {exc.message!r}") from exc
            continue
        message.model_dump_json()


def main() -> None:
    atheris.Setup(sys.argv, check_frame)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
