"""How the benchmarks run an app of their own: its quiet settings, and stopping it when the run ends."""

from __future__ import annotations

import subprocess

__all__ = ["QUIET_APP_ENV", "stop_process"]

# Demo data only, no UI, models or upstreams, one price a second, warnings only: what a benchmark
# measures is the part it switches on.
QUIET_APP_ENV = {
    "DATA_MODE": "demo",
    "ENABLE_UI": "0",
    "ENABLE_INFERENCE": "0",
    "ENABLE_SOURCES": "0",
    "PRICE_INTERVAL_S": "1",
    "LOG_LEVEL": "WARNING",
    "HF_HUB_OFFLINE": "1",
}


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stop a child with SIGTERM, or SIGKILL when it has not exited within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
